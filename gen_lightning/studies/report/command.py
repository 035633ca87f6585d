"""``gen-lightning report experiments/NAME.yaml | STUDY_DIR [study_dir=DIR] [wandb=auto|true|false]``.

Reads a study from disk (``study.json``, each run's ``metrics.json``, samples and evaluations; no W&B server) and
writes into the study directory:

- ``report.md``: the comparison table (mean ± sample standard deviation over seeds of every final validation
  metric, parameters, training time, sampling time per image), the evaluation variants, published reference
  numbers, failed runs with their error, and the figures below;
- ``report.json``: the same numbers, machine-readable;
- ``plots/<metric>.png``: each validation metric against training step and training time, for every run;
- ``samples.png``: the final samples (image grids or text) of every run side by side;
- ``plots/frontier_bleu5.png``: for text studies whose protocol swept the sampling temperature, BLEU-5 against
  Self-BLEU-5 of every run through its temperatures (report/frontier.py).

With W&B (``wandb=auto``: when the study's runs logged to W&B) the comparison also goes, as W&B Tables, to a
``job_type=report`` run in the study's group; it is logged again only when the numbers changed. The same results
always give the same files.
"""

from __future__ import annotations

from pathlib import Path

from gen_lightning.config import parse_kv
from gen_lightning.files import write_json
from gen_lightning.loggers import wandb_config
from gen_lightning.studies.index import default_study_dir, load_index
from gen_lightning.studies.report.collect import build_report, run_order
from gen_lightning.studies.report.markdown import render
from gen_lightning.studies.report.plots import (
    metric_file,
    write_frontier,
    write_plots,
    write_run_samples,
    write_samples,
)
from gen_lightning.studies.report.wandb_run import log_wandb
from gen_lightning.studies.spec import StudyError, find_study_file, load_spec


def write_report(study_dir: str | Path, wandb: str = "auto") -> Path:
    """Write report.md, report.json, plots/ and samples.png into ``study_dir``; returns report.md."""
    study_dir = Path(study_dir)
    report, results = build_report(study_dir)
    index = load_index(study_dir)
    plot_metrics = write_plots(study_dir, results, run_order(report["spec"]))
    write_frontier(study_dir, report)
    write_samples(study_dir, results, index, report["study"])
    run_samples = write_run_samples(study_dir, results, run_order(report["spec"]))
    write_json(study_dir / "report.json", report)
    (study_dir / "report.md").write_text(render(report, plot_metrics, metric_file, run_samples), encoding="utf-8")
    used_wandb = any(wandb_config(r.logger) is not None for r in results)
    if wandb == "true" or (wandb == "auto" and used_wandb):
        log_wandb(study_dir, report, results, plot_metrics)
    return study_dir / "report.md"


def report_command(args: list[str]) -> Path:
    """``gen-lightning report experiments/NAME.yaml | STUDY_DIR [study_dir=DIR] [wandb=auto|true|false]``."""
    if not args or "=" in args[0]:
        raise StudyError("usage: gen-lightning report experiments/NAME.yaml | STUDY_DIR [study_dir=DIR] [wandb=...]")
    try:
        options, unknown = parse_kv(args[1:], own=("study_dir", "wandb"))
    except ValueError as err:
        raise StudyError(str(err)) from None
    if unknown:
        raise StudyError(f"unknown report options {unknown}; valid: study_dir, wandb")
    wandb = options.get("wandb", "auto")
    options["wandb"] = {True: "true", False: "false"}.get(wandb, wandb) if isinstance(wandb, bool) else str(wandb)
    if options["wandb"] not in ("auto", "true", "false"):
        raise StudyError(f"wandb must be auto, true or false, got {options['wandb']!r}")
    target = Path(args[0])
    if target.is_dir():
        study_dir = target
    else:
        spec = load_spec(find_study_file(args[0]))
        study_dir = Path(options.get("study_dir") or default_study_dir(spec.name))
    path = write_report(study_dir, options.get("wandb", "auto"))
    print(f"wrote {path}, {study_dir / 'report.json'}, {study_dir / 'plots'}/ and {study_dir / 'samples.png'}")
    return path
