"""``gen-lightning report experiments/NAME.yaml | STUDY_DIR [study_dir=DIR] [wandb=auto|true|false]``.

Reads a study from disk (``study.json``, each run's ``metrics.json``, samples and evaluations; no W&B server) and
writes into the study directory:

- ``report.md``: the comparison table (mean ± sample standard deviation over seeds of every final validation
  metric, parameters, training time, sampling time per image), the evaluation variants, published reference
  numbers, failed runs with their error, and the figures below;
- ``report.json``: the same numbers, machine-readable;
- ``plots/<metric>.png``: each validation metric against training step and training time, for every run;
- ``samples.png``: the final samples (image grids or text) of every run side by side.

With W&B (``wandb=auto``: when the study's runs logged to W&B) the comparison also goes, as W&B Tables, to a
``job_type=report`` run in the study's group; it is logged again only when the numbers changed. The same results
always give the same files.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import statistics
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path

from omegaconf import OmegaConf

from gen_lightning import plots
from gen_lightning.callbacks.summary import write_json
from gen_lightning.report_md import render
from gen_lightning.study import StudyError, default_study_dir, find_study_file, load_index, load_spec

SAMPLE_TIME = "val/sample_time"


@dataclass
class SeedResult:
    key: str
    run: str
    seed: int
    dir: str
    status: str  # completed | failed | incomplete
    model: str = ""
    error: str | None = None
    final: dict = field(default_factory=dict)
    history: list = field(default_factory=list)
    global_step: int | None = None
    train_time_s: float | None = None
    num_params: int | None = None
    logger: dict = field(default_factory=dict)


def run_order(spec: dict) -> list[str]:
    return spec.get("run_order") or list(spec["runs"])


def in_study_order(entries: dict, spec: dict) -> list[tuple[str, dict]]:
    """Index entries (study.json keeps them sorted by name) in the study file's order: run, evaluation, seed."""
    runs, evals, seeds = run_order(spec), spec.get("evaluation_order", list(spec["evaluations"])), spec["seeds"]

    def position(item):
        entry = item[1]
        return (
            runs.index(entry["run"]) if entry["run"] in runs else len(runs),
            evals.index(entry["evaluation"]) if entry.get("evaluation") in evals else -1,
            seeds.index(entry["seed"]) if entry["seed"] in seeds else len(seeds),
        )

    return sorted(entries.items(), key=position)


def count_parameters(run_dir: Path) -> int | None:
    """Trainable parameters of the run's model (EMA copies excluded), from its last checkpoint."""
    from gen_lightning.checkpoint import CheckpointError, load_module

    try:
        module = load_module(run_dir / "checkpoints" / "last.ckpt")
    except CheckpointError:
        return None
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


def read_seed(study_dir: Path, key: str, entry: dict) -> SeedResult:
    run_dir = study_dir / entry["dir"]
    summary = json.loads((run_dir / "metrics.json").read_text()) if (run_dir / "metrics.json").is_file() else {}
    if summary.get("status") == "completed":
        status = "completed"
    else:
        status = "failed" if entry.get("status") == "failed" or summary.get("status") == "failed" else "incomplete"
    result = SeedResult(key, entry["run"], entry["seed"], entry["dir"], status)
    if (run_dir / "config.yaml").is_file():
        cfg = OmegaConf.load(run_dir / "config.yaml")
        result.model = str(cfg.model.get("_target_", "")).rsplit(".", 1)[-1]
        result.logger = OmegaConf.to_container(cfg.logger, resolve=True) if cfg.get("logger") else {}
    if status != "completed":
        stopped = f"stopped at step {summary['global_step']}" if summary else "not started"
        result.error = summary.get("error") or entry.get("error") or stopped
    result.final = {k: v for k, v in summary.get("final", {}).items() if math.isfinite(v)}
    result.history = summary.get("history", [])
    result.global_step = summary.get("global_step")
    result.train_time_s = summary.get("train_time_s")
    if status == "completed":
        result.num_params = summary.get("num_params") or count_parameters(run_dir)
    return result


def stats(values: list[float]) -> dict:
    """Mean and sample standard deviation (n - 1) over seeds."""
    values = [float(v) for v in values if v is not None and math.isfinite(v)]
    if not values:
        return {"mean": None, "std": None, "n": 0, "values": []}
    std = statistics.stdev(values) if len(values) > 1 else 0.0
    return {"mean": statistics.fmean(values), "std": std, "n": len(values), "values": values}


def aggregate(results: list[SeedResult], runs: list[str]) -> list[dict]:
    """One row per study run: statistics over its completed seeds."""
    rows = []
    for run in runs:
        seeds = [r for r in results if r.run == run]
        done = [r for r in seeds if r.status == "completed"]
        names = sorted({k for r in done for k in r.final})
        rows.append(
            {
                "run": run,
                "model": next((r.model for r in seeds if r.model), ""),
                "seeds": len(seeds),
                "completed": len(done),
                "not_completed": [r.key for r in seeds if r.status != "completed"],
                "num_params": next((r.num_params for r in done if r.num_params), None),
                "metrics": {m: stats([r.final.get(m) for r in done]) for m in names if m != SAMPLE_TIME},
                "train_time_s": stats([r.train_time_s for r in done]),
                "sample_time_s": stats([r.final.get(SAMPLE_TIME) for r in done]),
            }
        )
    return rows


def evaluation_rows(study_dir: Path, index: dict, spec: dict) -> list[dict]:
    """One row per (run, evaluation variant): statistics over seeds of the evaluated metrics."""
    groups: dict[tuple[str, str], list[dict]] = {}
    for _, entry in in_study_order(index.get("evaluations", {}), spec):
        path = study_dir / entry["file"]
        result = json.loads(path.read_text()) if path.is_file() else {"status": "missing", "error": f"{path} missing"}
        groups.setdefault((entry["run"], entry["evaluation"]), []).append({**result, "key": entry["dir"]})
    rows = []
    for (run, name), results in groups.items():
        done = [r for r in results if r.get("status") == "completed"]
        metrics = sorted({k for r in done for k in r.get("metrics", {})})
        rows.append(
            {
                "run": run,
                "evaluation": name,
                "overrides": spec.get("evaluations", {}).get(name, []),
                "sample_info": done[0].get("sample_info", {}) if done else {},
                "seeds": len(results),
                "completed": len(done),
                "errors": {r["key"]: r.get("error") for r in results if r.get("status") != "completed"},
                "metrics": {m: stats([r["metrics"].get(m) for r in done]) for m in metrics},
                "sample_time_s": stats([r.get("sample_time") for r in done]),
            }
        )
    return rows


def main_metrics(rows: list[dict], requested: list[str] | None) -> list[str]:
    """The main table's columns: the requested metrics, else those every run with results logged."""
    if requested:
        return list(requested)
    with_results = [set(r["metrics"]) for r in rows if r["completed"]]
    if not with_results:
        return []
    shared = set.intersection(*with_results)
    return sorted(shared or set.union(*with_results))


# ---------------------------------------------------------------------------------------------- figures


def metric_file(metric: str) -> str:
    return metric.replace("/", "_") + ".png"


def write_plots(study_dir: Path, results: list[SeedResult], runs: list[str]) -> list[str]:
    metrics = sorted({k for r in results for row in r.history for k in row if k.startswith("val/")})
    curves = {run: [(r.seed, r.history) for r in results if r.run == run] for run in runs}
    for metric in metrics:
        plots.metric_curves(metric, curves, study_dir / "plots" / metric_file(metric))
    return metrics


def final_samples(run_dir: Path) -> Path | None:
    """The last sample grid (or text file) the run wrote, preferring the ``samples`` preview."""
    root = run_dir / "samples"
    if not root.is_dir():
        return None
    names = sorted(p for p in root.iterdir() if p.is_dir())
    for folder in sorted(names, key=lambda p: p.name != "samples"):
        files = sorted([*folder.glob("step*.png"), *folder.glob("step*.txt")])
        if files:
            return files[-1]
    return None


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
    return plots.sample_panel(rows, study_dir / "samples.png", f"final samples of study {name}")


# ---------------------------------------------------------------------------------------------- W&B


def wandb_table_rows(report: dict) -> tuple[list[str], list[list]]:
    metrics = sorted({m for row in report["rows"] for m in row["metrics"]})
    columns = ["run", "model", "seeds", "completed", "num_params"]
    columns += [f"{m} {s}" for m in metrics for s in ("mean", "std")] + ["train_time_s mean", "sample_time_s mean"]
    data = []
    for row in report["rows"]:
        values = [row["run"], row["model"], row["seeds"], row["completed"], row["num_params"]]
        for m in metrics:
            st = row["metrics"].get(m, {})
            values += [st.get("mean"), st.get("std")]
        data.append(values + [row["train_time_s"]["mean"], row["sample_time_s"]["mean"]])
    return columns, data


def evaluation_table(rows: list[dict]) -> tuple[list[str], list[list]]:
    metrics = sorted({m for row in rows for m in row["metrics"]})
    columns = ["run", "evaluation", "overrides", "completed", *(f"{m} mean" for m in metrics), "sample_time_s mean"]
    data = [
        [row["run"], row["evaluation"], " ".join(row["overrides"]), row["completed"]]
        + [row["metrics"].get(m, {}).get("mean") for m in metrics]
        + [row["sample_time_s"]["mean"]]
        for row in rows
    ]
    return columns, data


def log_wandb(study_dir: Path, report: dict, results: list[SeedResult], plot_metrics: list[str]) -> str | None:
    """Log the comparison to a ``job_type=report`` run of the study's W&B group; returns its run id."""
    from gen_lightning import tracking

    digest = hashlib.sha256(json.dumps(report, sort_keys=True, default=str).encode()).hexdigest()
    state_path = study_dir / "wandb_report.json"
    state = json.loads(state_path.read_text()) if state_path.is_file() else {}
    if state.get("digest") == digest:
        print(f"W&B report run {state.get('id')} already holds these results (not logged again)")
        return state.get("id")
    logger = next((r.logger for r in results if str(r.logger.get("_target_", "")).endswith("make_wandb_logger")), {})
    import wandb

    run_id = tracking.run_id(study_dir)
    try:
        run = wandb.init(
            project=logger.get("project", "gen-lightning"),
            entity=logger.get("entity"),
            group=report["study"],
            job_type="report",
            name=f"{report['study']}-report",
            tags=[report["study"], "report"],
            id=run_id,
            resume="allow",
            dir=str(study_dir),
            mode=logger.get("mode") or os.environ.get("WANDB_MODE") or "offline",
            config={"study": report["spec"]},
            settings=tracking._settings(),
        )
        columns, data = wandb_table_rows(report)
        per_seed = [[s["key"], s["run"], s["seed"], s["status"], s["error"]] for s in report["seed_results"]]
        tables = {
            "comparison": wandb.Table(columns=columns, data=data),
            "runs": wandb.Table(columns=["key", "run", "seed", "status", "error"], data=per_seed),
        }
        if report["evaluations"]:
            tables["evaluations"] = wandb.Table(*evaluation_table(report["evaluations"]))
        images = {f"plots/{m}": wandb.Image(str(study_dir / "plots" / metric_file(m))) for m in plot_metrics}
        run.log({**tables, **images})
        run.finish()
    except Exception as err:
        warnings.warn(f"the W&B report run could not be written ({type(err).__name__}: {err})", stacklevel=2)
        return None
    write_json(state_path, {"digest": digest, "id": run_id})
    return run_id


# ---------------------------------------------------------------------------------------------- command


def build_report(study_dir: Path) -> tuple[dict, list[SeedResult]]:
    index = load_index(study_dir)
    spec = index["spec"]
    runs = run_order(spec)
    results = [read_seed(study_dir, key, entry) for key, entry in in_study_order(index["runs"], spec)]
    rows = aggregate(results, runs)
    report = {
        "study": index["study"],
        "spec": spec,
        "rows": rows,
        "main_metrics": main_metrics(rows, (spec.get("report") or {}).get("metrics")),
        "evaluations": evaluation_rows(study_dir, index, spec),
        "seed_results": [{k: v for k, v in asdict(r).items() if k not in ("history", "logger")} for r in results],
    }
    return report, results


def write_report(study_dir: str | Path, wandb: str = "auto") -> Path:
    """Write report.md, report.json, plots/ and samples.png into ``study_dir``; returns report.md."""
    study_dir = Path(study_dir)
    report, results = build_report(study_dir)
    index = load_index(study_dir)
    plot_metrics = write_plots(study_dir, results, run_order(report["spec"]))
    write_samples(study_dir, results, index, report["study"])
    write_json(study_dir / "report.json", report)
    (study_dir / "report.md").write_text(render(report, plot_metrics, metric_file), encoding="utf-8")
    used_wandb = any(str(r.logger.get("_target_", "")).endswith("make_wandb_logger") for r in results)
    if wandb == "true" or (wandb == "auto" and used_wandb):
        log_wandb(study_dir, report, results, plot_metrics)
    return study_dir / "report.md"


def report_command(args: list[str]) -> Path:
    """``gen-lightning report experiments/NAME.yaml | STUDY_DIR [study_dir=DIR] [wandb=auto|true|false]``."""
    if not args or "=" in args[0]:
        raise StudyError("usage: gen-lightning report experiments/NAME.yaml | STUDY_DIR [study_dir=DIR] [wandb=...]")
    options = dict(arg.partition("=")[::2] for arg in args[1:])
    unknown = set(options) - {"study_dir", "wandb"}
    if unknown:
        raise StudyError(f"unknown report options {sorted(unknown)}; valid: study_dir, wandb")
    if options.get("wandb", "auto") not in ("auto", "true", "false"):
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
