"""Figures of a study report: ``plots/<metric>.png`` (validation curves of every run), ``samples.png`` (the
final samples of every run and evaluation variant side by side) and, for text studies that swept the sampling
temperature, ``plots/frontier_bleu5.png`` (quality against diversity, Caccia et al. 2020; report/frontier.py).

Drawn with matplotlib's object API on the Agg canvas (no pyplot, no display, no global backend change). PNGs are
saved without the software tag, so the same data always gives the same bytes (a re-run report is identical).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patheffects import withStroke
from PIL import Image

from gen_lightning.run_dir import RunDir
from gen_lightning.studies.report.collect import SAMPLE_TIME, SeedResult, in_study_order

COLORS = [f"C{i}" for i in range(10)]
PNG_META = {"Software": None}
TEXT_LINES, TEXT_WIDTH = 18, 48  # how much text a cell of the sample figure shows


def _save(fig: Figure, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    FigureCanvasAgg(fig)
    fig.savefig(path, dpi=100, metadata=PNG_META)
    return path


# Metrics logged in one unit and read in another: the plot shows them as the report's tables do.
UNITS = {SAMPLE_TIME: ("ms/sample", 1000.0)}  # val/sample_time is logged in seconds per image
MIN_SPAN = 0.02  # the y axis spans at least 2% of the values' size: a constant is drawn flat, not as a jump


def metric_curves(metric: str, curves: dict[str, list[tuple[int, list[dict]]]], path: Path, note: str = "") -> Path:
    """``metric`` against the training step and the training time, one line per run and seed.

    ``curves``: run name -> [(seed, history rows with "step", "time_s" and the metric)], in report order.
    """
    return _save(curves_figure(metric, curves, note), path)


def curves_figure(metric: str, curves: dict[str, list[tuple[int, list[dict]]]], note: str = "") -> Figure:
    unit, scale = UNITS.get(metric, ("", 1.0))
    fig = Figure(figsize=(11, 4), layout="constrained")
    by_step, by_time = fig.subplots(1, 2)
    for color, (run, seeds) in zip(COLORS * 10, curves.items()):
        for i, (_seed, rows) in enumerate(seeds):
            rows = [r for r in rows if metric in r and np.isfinite(r[metric])]
            if not rows:
                continue
            label = run if i == 0 else None
            values = [r[metric] * scale for r in rows]
            by_step.plot([r["step"] for r in rows], values, color=color, alpha=0.85, marker=".", label=label)
            by_time.plot([r["time_s"] for r in rows], values, color=color, alpha=0.85, marker=".", label=label)
    values = [v for line in by_step.get_lines() for v in line.get_ydata()]
    # A metric spanning decades (FID falls from ~1,000 to ~10): a log axis shows the end of the curves too.
    log = bool(values) and min(values) > 0 and max(values) / min(values) > 20
    name = f"{metric} ({unit})" if unit else metric
    for ax, xlabel in ((by_step, "training step (trainer.global_step)"), (by_time, "training time (s)")):
        ax.set_xlabel(xlabel)
        ax.set_ylabel(name + (" (log scale)" if log else ""))
        ax.grid(alpha=0.3)
        if log:
            ax.set_yscale("log")
        elif values:
            ax.ticklabel_format(axis="y", useOffset=False, style="plain")  # no "+0.99259" above the axis
            ax.set_ylim(*value_range(min(values), max(values)))
    by_step.legend(fontsize=8)
    fig.suptitle(name + (f"  ({note})" if note else ""), fontsize=10)
    return fig


def value_range(low: float, high: float) -> tuple[float, float]:
    """The y limits: the values with a 5% margin, and at least MIN_SPAN of their size (a metric constant to 1e-8,
    e.g. an accuracy of 0.99259 on a fixed set, is a flat line, not a jump across the whole axis)."""
    centre, span = (low + high) / 2, high - low
    half = max(span * 0.55, MIN_SPAN / 2 * max(abs(low), abs(high))) or 0.5
    return centre - half, centre + half


def _text_cell(ax, text: str) -> None:
    """The start of ``text``, its lines wrapped (not cut) at TEXT_WIDTH characters."""
    lines = []
    for line in text.expandtabs(4).splitlines():
        lines += [line[i : i + TEXT_WIDTH] for i in range(0, max(1, len(line)), TEXT_WIDTH)]
    shown = "\n".join(lines[:TEXT_LINES])
    ax.text(0.01, 0.99, shown, va="top", ha="left", family="monospace", fontsize=6, clip_on=True)


def sample_panel(rows: dict[str, list[tuple[str, Path | str | None]]], path: Path, title: str) -> Path:
    """A grid of cells: one row per run (or evaluation), one column per seed.

    Each cell is ``(caption, content)``: a PNG path (an image grid), a ``.txt`` path (text samples), a string
    (shown as text, e.g. an error) or None (empty).
    """
    n_rows = max(1, len(rows))
    n_cols = max([1, *(len(cells) for cells in rows.values())])
    fig = Figure(figsize=(2.6 * n_cols + 1.2, 2.6 * n_rows + 0.4), layout="constrained")
    axes = np.atleast_2d(fig.subplots(n_rows, n_cols, squeeze=False))
    for r, (name, cells) in enumerate(rows.items()):
        for c in range(n_cols):
            ax = axes[r, c]
            ax.set_xticks([])
            ax.set_yticks([])
            caption, content = cells[c] if c < len(cells) else ("", None)
            ax.set_title(caption, fontsize=7)
            if c == 0:
                ax.set_ylabel(name, fontsize=9)
            if isinstance(content, Path) and content.suffix == ".png":
                ax.imshow(np.asarray(Image.open(content).convert("RGB")), interpolation="nearest")
            elif isinstance(content, Path):  # text samples, separated by a line of dashes as the callback saves them
                _text_cell(ax, content.read_text(encoding="utf-8").replace("\n\n---\n\n", "\n" + "-" * 8 + "\n"))
            elif content:
                _text_cell(ax, content)
    fig.suptitle(title, fontsize=10)
    return _save(fig, path)


# ---------------------------------------------------------------------------------------------- the report's figures


def metric_file(metric: str) -> str:
    return metric.replace("/", "_") + ".png"


def write_plots(study_dir: Path, results: list[SeedResult], runs: list[str]) -> list[str]:
    metrics = sorted({k for r in results for row in r.history for k in row if k.startswith("val/")})
    curves = {run: [(r.seed, r.history) for r in results if r.run == run] for run in runs}
    for metric in metrics:
        metric_curves(metric, curves, study_dir / "plots" / metric_file(metric))
    return metrics


HALO = [withStroke(linewidth=2, foreground="white")]  # a temperature label stays legible over a line or a dot


def card_text(protocol: dict) -> str:
    """The protocol of the frontier's numbers, from the runs' cards (a value per key, or every value if they differ)."""

    def value(key: str) -> str:
        values = protocol.get(key) or ["?"]
        return str(values[0]) if len(values) == 1 else "/".join(map(str, values)) + " (differ between runs)"

    return (
        f"{value('hypotheses')} generated sentences, BLEU-5 against {value('references')} references, "
        f"Self-BLEU-5 among {value('self_bleu_hypotheses')}"
    )


def frontier_figure(frontier: dict, title: str) -> Figure:
    """BLEU-5 against Self-BLEU-5: a line per run through its temperatures (mean over seeds, each point labelled
    with its temperature, error bars of one sample standard deviation over seeds both ways), the main temperature's
    point larger."""
    fig = Figure(figsize=(8.5, 6.5), layout="constrained")
    ax = fig.subplots()
    baselines, mains = set(frontier["baselines"]), set()
    for color, curve in zip(COLORS * 10, frontier["curves"]):
        run, points = curve["run"], curve["points"]  # points in ascending temperature
        xs, ys = [p["self_bleu5"]["mean"] for p in points], [p["bleu5"]["mean"] for p in points]
        xerr, yerr = [p["self_bleu5"]["std"] for p in points], [p["bleu5"]["std"] for p in points]
        ax.errorbar(xs, ys, xerr=xerr, yerr=yerr, fmt="none", ecolor=color, alpha=0.45, elinewidth=1, capsize=2)
        style = "--" if run in baselines else "-"
        ax.plot(xs, ys, style, color=color, marker="o", markersize=4, label=run + (" (baseline)" * (run in baselines)))
        for p, x, y in zip(points, xs, ys):
            main = p["temperature"] == curve["main_temperature"]
            if main:
                ax.plot([x], [y], "o", color=color, markersize=11, markeredgecolor="black", zorder=3)
                mains.add(f"{p['temperature']:g}")
            offset = (8, 5) if main else (5, 3)
            ax.annotate(f"{p['temperature']:g}", (x, y), xytext=offset, textcoords="offset points", fontsize=7,
                        color=color, zorder=4, path_effects=HALO)  # fmt: skip
    handles, _ = ax.get_legend_handles_labels()
    handles.append(
        Line2D([], [], ls="none", marker="o", markersize=11, markerfacecolor="white", markeredgecolor="black",
               label=f"main temperature ({', '.join(sorted(mains))})")
    )  # fmt: skip
    ax.legend(handles=handles, fontsize=8, loc="lower right")
    ax.set_xlabel("Self-BLEU-5 (diversity: lower is more diverse)")
    ax.set_ylabel("BLEU-5 (quality: higher is better)")
    ax.text(0.01, 0.99, "better: up and to the left", transform=ax.transAxes, va="top", fontsize=8, color="gray")
    ax.grid(alpha=0.3)
    ax.set_title(title, fontsize=9)
    fig.suptitle("Quality against diversity through the sampling temperature (numbers beside the points)", fontsize=10)
    return fig


def write_frontier(study_dir: Path, report: dict) -> Path | None:
    """``plots/frontier_bleu5.png`` when the study's runs swept the sampling temperature (``report["frontier"]``)."""
    frontier = report.get("frontier")
    if not frontier:
        return None
    seeds = ", ".join(str(s) for s in report["spec"]["seeds"])
    title = f"study {report['study']}: {card_text(frontier['protocol'])}\nmean over seeds {seeds}, error bars ± 1 std"
    return _save(frontier_figure(frontier, title), study_dir / frontier["figure"])


def final_samples(run_dir: Path) -> Path | None:
    """The last sample grid (or text file) the run wrote, preferring the ``samples`` preview."""
    root = RunDir(run_dir).samples
    if not root.is_dir():
        return None
    names = sorted(p for p in root.iterdir() if p.is_dir())
    for folder in sorted(names, key=lambda p: p.name != "samples"):
        files = sorted([*folder.glob("step*.png"), *folder.glob("step*.txt")])
        if files:
            return files[-1]
    return None


RUN_SAMPLE_SIDE = 220  # pixels a run's sample grid is scaled up to (nearest neighbour) in the results table


def write_run_samples(study_dir: Path, results: list[SeedResult], runs: list[str]) -> dict[str, tuple[str, str]]:
    """Each run's final samples of its first completed seed, for the results table: ``("image", "samples/<run>.png")``
    (the grid scaled up, so that 8x8 digits can be read) or ``("text", <the first text sample>)``."""
    out = {}
    for run in runs:
        done = [r for r in results if r.run == run and r.status == "completed"]
        path = next((p for p in (final_samples(study_dir / r.dir) for r in done) if p is not None), None)
        if path is None:
            continue
        if path.suffix == ".txt":
            out[run] = ("text", path.read_text(encoding="utf-8").split("\n\n---\n\n")[0])
            continue
        image = Image.open(path).convert("RGB")
        scale = max(1, RUN_SAMPLE_SIDE // max(image.size))
        target = study_dir / "samples" / f"{run}.png"
        target.parent.mkdir(parents=True, exist_ok=True)
        image.resize((image.width * scale, image.height * scale), Image.NEAREST).save(target)
        out[run] = ("image", f"samples/{run}.png")
    return out


def write_samples(study_dir: Path, results: list[SeedResult], index: dict, name: str) -> Path:
    rows: dict[str, list] = {}
    for r in results:
        error = (r.error or "").splitlines()[0] if r.error else ""
        content = final_samples(study_dir / r.dir) if r.status == "completed" else f"{r.status}: {error}"
        rows.setdefault(r.run, []).append((f"seed {r.seed}", content))
    for _, entry in in_study_order(index.get("evaluations", {}), index["spec"]):
        result_file = study_dir / entry["file"]
        result = json.loads(result_file.read_text()) if result_file.is_file() else {}
        content = study_dir / entry["dir"] / result["samples"] if result.get("samples") else result.get("error")
        rows.setdefault(f"{entry['run']}: {entry['evaluation']}", []).append((f"seed {entry['seed']}", content))
    return sample_panel(rows, study_dir / "samples.png", f"final samples of study {name}")
