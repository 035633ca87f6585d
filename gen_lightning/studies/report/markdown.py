"""The Markdown of a study report (``report.md``), from the numbers ``collect.py`` gathered."""

from __future__ import annotations

from collections.abc import Callable

ERROR_LINES = 12


def number(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.4g}"


def mean_std(st: dict | None, scale: float = 1.0) -> str:
    """``mean ± std`` (sample std over seeds); just the value for one seed; ``-`` for none."""
    if not st or not st.get("n"):
        return "-"
    if st["n"] == 1:
        return number(st["mean"] * scale)
    return f"{number(st['mean'] * scale)} ± {st['std'] * scale:.2g}"


def parameters(n: int | None) -> str:
    if not n:
        return "-"
    for unit, size in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if n >= size:
            return f"{n / size:.3g}{unit}"
    return str(n)


def arrow(metric: str, directions: dict[str, str]) -> str:
    """↑ or ↓ as the runs' own metrics.json record the metric's direction; nothing for a diagnostic."""
    return {"max": "↑", "min": "↓"}.get(directions.get(metric), "")


def table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    return lines + ["| " + " | ".join(cells) + " |" for cells in rows]


def best_rows(rows: list[dict], metric: str, directions: dict[str, str]) -> set[int]:
    """Indices of the rows with the best mean of ``metric`` (bold in the table), when two or more compete and the
    metric is ranked (has a direction)."""
    means = [(i, r["metrics"].get(metric, {}).get("mean")) for i, r in enumerate(rows)]
    means = [(i, m) for i, m in means if m is not None]
    if len(means) < 2 or metric not in directions:
        return set()
    best = (max if directions[metric] == "max" else min)(m for _, m in means)
    return {i for i, m in means if m == best}


def overview(report: dict) -> list[str]:
    spec = report["spec"]
    seeds = report["seed_results"]
    done = sum(s["status"] == "completed" for s in seeds)
    failed = sum(s["status"] == "failed" for s in seeds)
    budget = ", ".join(f"{k}={v}" for k, v in spec["budget"].items())
    lines = [f"# Study `{report['study']}`", ""]
    if spec.get("description"):
        lines += [spec["description"], ""]
    info = [
        ["study file", f"`{spec.get('source') or '-'}`"],
        ["seeds", ", ".join(str(s) for s in spec["seeds"])],
        ["budget (every run)", budget],
        ["common overrides", f"`{' '.join(spec['common'])}`" if spec["common"] else "-"],
        ["evaluation protocol", f"`{' '.join(spec['protocol'])}`" if spec["protocol"] else "-"],
        ["runs", f"{len(seeds)}: {done} completed, {failed} failed, {len(seeds) - done - failed} incomplete"],
    ]
    return lines + table(["", ""], info) + [""]


def ranked(rows: list[dict], metric: str | None, directions: dict[str, str]) -> list[dict]:
    """Rows by the mean of ``metric``, best first (its declared direction; lower first without one), runs
    without a value last, ties in study order."""
    if metric is None:
        return list(rows)
    sign = -1.0 if directions.get(metric) == "max" else 1.0

    def key(row):
        mean = row["metrics"].get(metric, {}).get("mean")
        return (mean is None, sign * mean if mean is not None else 0.0)

    return sorted(rows, key=key)


def cell_text(text: str, width: int = 60) -> str:
    """The start of a text sample inside a table cell: one line, ``⏎`` for line breaks, no Markdown syntax."""
    flat = text.strip().replace("\n", "⏎").replace("|", "\\|").replace("`", "'")
    return f"`{flat[:width]}`" + ("…" if len(flat) > width else "")


def results(report: dict, samples: dict[str, tuple[str, str]]) -> list[str]:
    """The comparison at a glance: a row per study run, best first by the primary metric (the first of the main
    table's), with its final samples, the main metrics and the training time."""
    directions, metrics = report.get("directions", {}), report["main_metrics"]
    rows = ranked(report["rows"], metrics[0] if metrics else None, directions)
    header = ["", "run", "samples (final, first seed)", *(f"{m} {arrow(m, directions)}".rstrip() for m in metrics)]
    header += ["train time (s)", "parameters"]
    bold = {m: best_rows(rows, m, directions) for m in metrics}
    body = []
    for i, row in enumerate(rows):
        kind, content = samples.get(row["run"], ("", ""))
        shown = f"![{row['run']}]({content})" if kind == "image" else cell_text(content) if kind == "text" else "-"
        cells = [str(i + 1), f"`{row['run']}` ({row['model'] or '-'})", shown]
        for m in metrics:
            cell = mean_std(row["metrics"].get(m))
            cells.append(f"**{cell}**" if i in bold[m] else cell)
        body.append(cells + [mean_std(row["train_time_s"]), parameters(row["num_params"])])
    seeds = ", ".join(str(s) for s in report["spec"]["seeds"])
    order = f"Best first by `{metrics[0]}`. " if metrics else ""
    lines = ["## Results", ""]
    lines += [
        f"{order}Final values, mean ± sample standard deviation over seeds {seeds}; ↑ higher is better, ↓ lower is "
        "better, the best mean in bold. Training time excludes start-up and the final evaluation. Every metric of "
        "every run: the appendix.",
        "",
    ]
    lines += table(header, body) + [""]
    baseline = report.get("baseline")
    if baseline:
        lines += [
            "Baseline: a unigram model of the training text (each token's frequency, add-one smoothed) scores "
            f"**{baseline['unigram_bpc']:.3f} bits per token** on the same {baseline['validation_windows']} "
            "validation windows; a model below it has learned more than the letter frequencies.",
            "",
        ]
    return lines


def verdict(c: dict) -> str:
    if c["verdict"] == "outside":
        low, high = c["curve_self_bleu5_range"]
        return f"outside the curve's Self-BLEU-5 range ({number(low)} to {number(high)})"
    return {"beyond": "**beyond**", "inside": "inside", "on": "on the curve"}[c["verdict"]]


def frontier(report: dict) -> list[str]:
    """The quality/diversity figure, each run's points, and where each run's main point lies against the curves."""
    front = report.get("frontier")
    if not front:
        return []
    lines = ["## Quality against diversity", "", f"![BLEU-5 against Self-BLEU-5]({front['figure']})", ""]
    lines += [
        "BLEU-5 of each run's generated sentences against the references (quality: up is better) and their "
        "Self-BLEU-5, each sentence against the others (diversity: lower, to the left, is more diverse), at each "
        "sampling temperature (the number beside a point), mean over seeds; the larger point is the main temperature "
        "of the tables, the error bars one standard deviation over seeds. A cooler sampler buys quality with "
        "diversity, so one point says little: a model is better than another where its point lies above the other's "
        "curve at the same "
        "Self-BLEU-5 (Caccia et al., ICLR 2020).",
        "",
    ]
    temperatures = sorted({p["temperature"] for c in front["curves"] for p in c["points"]})
    body = []
    for curve in front["curves"]:
        at = {p["temperature"]: p for p in curve["points"]}
        cells = [f"{number(at[t]['bleu5']['mean'])} / {number(at[t]['self_bleu5']['mean'])}" if t in at else "-"
                 for t in temperatures]  # fmt: skip
        body.append([f"`{curve['run']}`", *cells])
    lines += ["BLEU-5 / Self-BLEU-5 by temperature, mean over seeds:", ""]
    lines += table(["run", *(f"T={t:g}" for t in temperatures)], body) + [""]
    return lines + frontier_verdicts(front)


def frontier_verdicts(front: dict) -> list[str]:
    against = "each baseline's curve" if front["baselines"] else "each other run's curve"
    lines = [
        f"Each run's main-temperature point against {against}: **beyond** it (BLEU-5 above the curve's, interpolated "
        "linearly between its two temperatures around the same Self-BLEU-5), inside it (below), or outside the "
        "curve's Self-BLEU-5 range (no extrapolation). Means over seeds; ± the point's BLEU-5 standard deviation "
        "over seeds.",
        "",
    ]
    if front["missing_baselines"]:
        missing = ", ".join(f"`{b}`" for b in front["missing_baselines"])
        lines += [f"Baselines without a curve (no completed seed with these metrics): {missing}.", ""]
    body = []
    for c in front["comparisons"]:
        difference = "-" if c["difference"] is None else f"{c['difference']:+.3g}"
        point = f"{number(c['bleu5'])} ± {c['bleu5_std']:.2g}"
        body.append([f"`{c['run']}` (T={c['temperature']:g})", number(c["self_bleu5"]), point, f"`{c['against']}`",
                     number(c["curve_bleu5"]), difference, verdict(c)])  # fmt: skip
    header = ["run (temperature)", "Self-BLEU-5", "BLEU-5", "against"]
    header += ["that curve's BLEU-5 at this Self-BLEU-5", "difference", "verdict"]
    return lines + table(header, body) + [""]


def text_samples(samples: dict[str, tuple[str, str]], limit: int = 600) -> list[str]:
    texts = [(run, content) for run, (kind, content) in samples.items() if kind == "text"]
    if not texts:
        return []
    fence = "~~~~"  # not backticks: code in the samples may hold them
    lines = ["## Text samples", "", "The final preview of each run's first seed (from an empty prompt).", ""]
    for run, content in texts:
        shown = content[:limit] + ("\n…" if len(content) > limit else "")
        lines += [f"`{run}`:", "", fence + "text", *shown.replace(fence, "~~~").splitlines(), fence, ""]
    return lines


def curves(report: dict, plot_metrics: list[str], metric_file: Callable[[str], str]) -> list[str]:
    """The main metrics' curves first (in the main table's order), then the others."""
    if not plot_metrics:
        return []
    main = [m for m in report["main_metrics"] if m in plot_metrics]
    lines = ["## Learning curves", ""]
    lines += [
        "Every seed of every run, against `trainer.global_step` (GANs count the steps of both optimizers) and "
        "training time.",
        "",
    ]
    lines += [f"![{m}](plots/{metric_file(m)})" for m in main] + [""]
    others = [m for m in plot_metrics if m not in main]
    if others:
        lines += ["Other validation metrics:", ""] + [f"![{m}](plots/{metric_file(m)})" for m in others] + [""]
    return lines


def comparison(report: dict) -> list[str]:
    rows, metrics, directions = report["rows"], report["main_metrics"], report.get("directions", {})
    header = ["run", "model", "seeds", "parameters", *(f"{m} {arrow(m, directions)}".rstrip() for m in metrics)]
    header += ["train time (s)", "sample time (ms/sample)"]
    bold = {m: best_rows(rows, m, directions) for m in metrics}
    body = []
    for i, row in enumerate(rows):
        cells = [f"`{row['run']}`", row["model"] or "-", f"{row['completed']}/{row['seeds']}"]
        cells.append(parameters(row["num_params"]))
        for m in metrics:
            cell = mean_std(row["metrics"].get(m))
            cells.append(f"**{cell}**" if i in bold[m] else cell)
        cells += [mean_std(row["train_time_s"]), mean_std(row["sample_time_s"], 1000.0)]
        body.append(cells)
    lines = ["## Appendix: every metric", ""]
    lines += [
        "Final validation metrics, mean ± sample standard deviation over the completed seeds (seeds: completed/"
        "planned), in the study's order; ↑ higher is better, ↓ lower is better, the best mean in bold. Training "
        "time excludes start-up; sample time is the model's own `val/sample_time` where it logs one.",
        "",
    ]
    lines += table(header, body) + [""]
    others = [
        [f"`{row['run']}`", f"`{m}` {arrow(m, directions)}".rstrip(), mean_std(st), str(st["n"])]
        for row in rows
        for m, st in row["metrics"].items()
        if m not in metrics
    ]
    if others:
        lines += ["### Other metrics", ""] + table(["run", "metric", "mean ± std", "seeds"], others) + [""]
    return lines


def evaluations(report: dict) -> list[str]:
    rows = report["evaluations"]
    if not rows:
        return []
    present = sorted({m for r in rows for m in r["metrics"]})
    metrics = [m for m in report["main_metrics"] if m in present] or present  # the comparison's columns
    directions = report.get("directions", {})
    header = [
        "run",
        "evaluation",
        "overrides",
        "sampler",
        "seeds",
        *(f"{m} {arrow(m, directions)}".rstrip() for m in metrics),
    ]
    header.append("sample time (ms/sample)")
    body = []
    for row in rows:
        info = ", ".join(f"{k}={v}" for k, v in row["sample_info"].items() if v is not None)
        cells = [f"`{row['run']}`", f"`{row['evaluation']}`", f"`{' '.join(row['overrides'])}`", info or "-"]
        cells.append(f"{row['completed']}/{row['seeds']}")
        cells += [mean_std(row["metrics"].get(m)) for m in metrics]
        body.append(cells + [mean_std(row["sample_time_s"], 1000.0)])
    lines = ["## Evaluations of the trained checkpoints", ""]
    lines += [
        f"Each trained `{report['spec'].get('evaluate_checkpoint', 'last')}.ckpt` rebuilt with the overrides and "
        "evaluated under the study's protocol; sample time: one batch of samples from a fixed generator.",
        "",
    ]
    return lines + table(header, body) + [""]


def references(report: dict) -> list[str]:
    refs = report["spec"].get("references") or []
    if not refs:
        return []
    rows = {(row["run"], None): row for row in report["rows"]}
    rows.update({(row["run"], row["evaluation"]): row for row in report["evaluations"]})
    body = []
    for ref in refs:  # {run, metric, value, source} and, for an evaluation variant, its name under "evaluation"
        st = rows.get((ref.get("run"), ref.get("evaluation")), {}).get("metrics", {}).get(ref.get("metric"))
        name = ref.get("run") + (f": {ref['evaluation']}" if ref.get("evaluation") else "")
        body.append([f"`{name}`", f"`{ref.get('metric')}`", mean_std(st), number(ref.get("value"))])
        body[-1].append(str(ref.get("source", "")))
    return ["## Published numbers", ""] + table(["run", "metric", "ours", "published", "source"], body) + [""]


def failures(report: dict) -> list[str]:
    bad = [s for s in report["seed_results"] if s["status"] != "completed"]
    bad_evals = [(row, key, err) for row in report["evaluations"] for key, err in row["errors"].items()]
    if not bad and not bad_evals:
        return []
    lines = ["## Failed and incomplete runs", ""]
    by_error: dict[tuple[str, str], list[str]] = {}
    for s in bad:  # runs that failed alike (e.g. every seed of a model that is not installed) are listed once
        by_error.setdefault((s["status"], (s["error"] or "").expandtabs(4)), []).append(f"`{s['key']}`")
    for (status, error), keys in by_error.items():
        shown = error.splitlines()[:ERROR_LINES]
        lines += [f"- {', '.join(keys)} ({status}):", "", "  ```", *(f"  {x}".rstrip() for x in shown), "  ```"]
    for row, key, err in bad_evals:
        lines += [f"- evaluation `{row['evaluation']}` of `{key}`: {err}"]
    return lines + [""]


def render(
    report: dict, plot_metrics: list[str], metric_file: Callable[[str], str], samples: dict[str, tuple[str, str]]
) -> str:
    lines = overview(report) + results(report, samples) + frontier(report) + curves(report, plot_metrics, metric_file)
    lines += text_samples(samples) + evaluations(report) + references(report) + failures(report)
    lines += ["## Samples of every seed", "", "![final samples of every run](samples.png)", ""]
    return "\n".join(lines + comparison(report))
