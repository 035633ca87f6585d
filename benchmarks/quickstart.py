"""The README's quickstart, run and pictured: ``gen-lightning study experiments/image_families_quick.yaml`` from
scratch, timed, and what it produces written to ``docs/quickstart/`` and into the README.

    PYTHONPATH=. python benchmarks/quickstart.py [--threads N] [--study-dir runs/quickstart] [--reuse]

- runs the study in a fresh study directory (``--reuse``: render an existing one without training) as a new user
  does: one ``gen-lightning study`` command with its defaults (a run per core at a time, torch threads chosen by the
  project; ``--threads N`` pins ``OMP_NUM_THREADS`` instead), and records its wall time, its CPU time (user + system
  of the process and its children), the CPU's model and the load average before and after;
- writes ``docs/quickstart/``: ``samples.png`` (each run's final samples of the first seed, best first),
  ``val_fid_clf.png`` (the FID curves against step and training time) and ``results.json`` (the numbers, the study
  it ran, the timing);
- rewrites the README between its quickstart markers from ``results.json``. ``tests/test_quickstart.py`` checks
  that the README shows what ``results.json`` holds, that ``results.json`` was made by the current study file, and
  that its numbers meet the quickstart's targets (per family, mean over seeds: FID_clf <= 100, IS_clf >= 6,
  precision_clf >= 0.3, recall_clf >= 0.2).

The numbers of the last refresh are in ``docs/quickstart/results.json`` and in the README.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import shutil
import sys
import time
from datetime import date
from pathlib import Path

from cli_runs import ROOT, command, load_average, run

STUDY_FILE = ROOT / "experiments" / "image_families_quick.yaml"
OUT = ROOT / "docs" / "quickstart"
README = ROOT / "README.md"
BEGIN = "<!-- quickstart: written by benchmarks/quickstart.py from docs/quickstart/results.json -->"
END = "<!-- quickstart: end -->"
CURVE = "val/fid_clf"
# Per family, mean over seeds: what a person reads as digits (issue 15); the digits themselves: FID 0, IS 9.7.
TARGETS = {"val/fid_clf": ("max", 100.0), "val/is_clf": ("min", 6.0), "val/precision_clf": ("min", 0.3),
           "val/recall_clf": ("min", 0.2)}  # fmt: skip


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=None, help="pin OMP_NUM_THREADS (default: the study's own)")
    parser.add_argument("--study-dir", type=Path, default=ROOT / "runs" / "quickstart")
    parser.add_argument("--reuse", action="store_true", help="render an existing study directory, train nothing")
    return parser.parse_args()


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            return next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        import platform

        return platform.processor() or "an unknown CPU"


def run_study(study_dir: Path, threads: int | None) -> dict:
    """The study from scratch in ``study_dir``; its wall time, CPU time and the load around it."""
    if study_dir.exists():
        shutil.rmtree(study_dir)
    before, load_before = resource.getrusage(resource.RUSAGE_CHILDREN), load_average()
    wall = run(
        command("study", str(STUDY_FILE), f"study_dir={study_dir}"), threads, study_dir.parent / "quickstart.log"
    )
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {"wall_s": round(wall, 1), "cpu_s": round(cpu, 1), "threads": threads, "load_before": load_before,
            "load_after": load_average(), "cores": os.cpu_count(), "cpu": cpu_model(),
            "date": date.today().isoformat()}  # fmt: skip


def results(study_dir: Path, timing: dict) -> dict:
    report = json.loads((study_dir / "report.json").read_text())
    rows = [
        {
            "run": row["run"],
            "model": row["model"],
            "seeds": row["completed"],
            "num_params": row["num_params"],
            "metrics": {m: {k: row["metrics"][m][k] for k in ("mean", "std")} for m in report["main_metrics"]},
            "train_time_s": {k: row["train_time_s"][k] for k in ("mean", "std")},
        }
        for row in report["rows"]
    ]
    spec = {k: v for k, v in report["spec"].items() if k != "source"}
    return {"study": spec, "main_metrics": report["main_metrics"], "directions": report["directions"],
            "rows": rows, "timing": timing}  # fmt: skip


def ranked(data: dict) -> list[dict]:
    sign = -1.0 if data["directions"].get(CURVE) == "max" else 1.0
    return sorted(data["rows"], key=lambda row: sign * row["metrics"][CURVE]["mean"])


def draw_samples(study_dir: Path, data: dict, path: Path) -> None:
    """The first seed's final samples of every run in one row, best first, each titled with its FID_clf."""
    import numpy as np
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from PIL import Image

    rows = ranked(data)
    fig = Figure(figsize=(2.2 * len(rows), 2.5), layout="constrained")
    for ax, row in zip(fig.subplots(1, len(rows), squeeze=False)[0], rows):
        ax.imshow(np.asarray(Image.open(study_dir / "samples" / f"{row['run']}.png").convert("L")), cmap="gray")
        ax.set_title(f"{row['run']}: FID_clf {row['metrics'][CURVE]['mean']:.0f}", fontsize=9)
        ax.set_axis_off()
    FigureCanvasAgg(fig)
    fig.savefig(path, dpi=80, metadata={"Software": None})


def cell(stat: dict) -> str:
    return f"{stat['mean']:.3g} ± {stat['std']:.2g}"


def how(timing: dict) -> str:
    """How the study was run: its own defaults, or torch threads pinned by OMP_NUM_THREADS."""
    if timing.get("threads") is None:
        return "the study's defaults (a run per core at a time, one torch thread each)"
    return f"OMP_NUM_THREADS={timing['threads']}, the study's runs one after another"


def render_block(data: dict) -> str:
    """The README's quickstart block: the samples, the table (best first) and the FID curves."""
    t = data["timing"]
    arrows = {"min": "↓", "max": "↑"}
    metrics = data["main_metrics"]
    header = ["run", *(f"{m.removeprefix('val/')} {arrows.get(data['directions'].get(m), '')}" for m in metrics)]
    lines = [
        BEGIN,
        f"What it makes (`benchmarks/quickstart.py`, {t['date']}: {t['wall_s'] / 60:.1f} min wall and "
        f"{t['cpu_s'] / 60:.1f} min of CPU, {how(t)}, on a {t['cores']}-core {t.get('cpu', 'machine')}, load "
        f"average {t['load_before']} before, {t['load_after']} after; other CPUs give other digits within the "
        "± spread, `tests/test_quickstart.py` holds the targets). The final samples of each family's first seed:",
        "",
        "![final samples of each family](docs/quickstart/samples.png)",
        "",
        "| " + " | ".join([*header, "train time (s)", "parameters"]) + " |",
        "|" + "---|" * (len(header) + 2),
    ]
    for row in ranked(data):
        cells = [f"`{row['run']}` ({row['model']})", *(cell(row["metrics"][m]) for m in metrics)]
        lines.append("| " + " | ".join([*cells, cell(row["train_time_s"]), f"{row['num_params'] / 1e3:.0f}k"]) + " |")
    seeds = ", ".join(str(s) for s in data["study"]["seeds"])
    lines += [
        "",
        f"Mean ± standard deviation over seeds {seeds}; the metrics use a digit classifier's features "
        "(`metrics=classifier`), on which the digits themselves score FID_clf 0 and IS_clf 9.7. The learning "
        "curves (`plots/` of the report):",
        "",
        "![FID_clf against training step and time](docs/quickstart/val_fid_clf.png)",
        END,
    ]
    return "\n".join(lines)


def update_readme(block: str) -> None:
    text = README.read_text()
    pattern = re.compile(re.escape(BEGIN) + ".*?" + re.escape(END), re.S)
    if not pattern.search(text):
        raise SystemExit(f"README.md has no quickstart block ({BEGIN} ... {END}) to replace")
    README.write_text(pattern.sub(lambda _: block, text))


def misses(data: dict) -> list[str]:
    """The quickstart targets a family misses (empty: all met)."""
    out = []
    for row in data["rows"]:
        for metric, (kind, bound) in TARGETS.items():
            mean = row["metrics"][metric]["mean"]
            if (kind == "max" and mean > bound) or (kind == "min" and mean < bound):
                out.append(f"{row['run']}: {metric} {mean:.3g} ({'<=' if kind == 'max' else '>='} {bound} wanted)")
    return out


def main() -> None:
    args = parse_args()
    study_dir = args.study_dir.resolve()
    if args.reuse:
        if not (OUT / "results.json").exists():
            raise SystemExit("--reuse keeps the timing of docs/quickstart/results.json, which is missing: drop --reuse")
        timing = json.loads((OUT / "results.json").read_text())["timing"]
    else:
        start = time.strftime("%H:%M")
        timing = run_study(study_dir, args.threads)
        print(f"study from {start}: {timing}")
    data = results(study_dir, timing)
    OUT.mkdir(parents=True, exist_ok=True)
    draw_samples(study_dir, data, OUT / "samples.png")
    shutil.copyfile(study_dir / "plots" / (CURVE.replace("/", "_") + ".png"), OUT / "val_fid_clf.png")
    (OUT / "results.json").write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    update_readme(render_block(data))
    print(render_block(data))
    missed = misses(data)
    print("targets: " + ("all met" if not missed else "missed: " + "; ".join(missed)))
    sys.exit(1 if missed else 0)


if __name__ == "__main__":
    main()
