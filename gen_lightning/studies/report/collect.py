"""The numbers of a study report, read from its files: ``study.json``, each run's ``config.yaml`` and
``metrics.json``, and the evaluation results; mean and sample standard deviation over seeds.

``build_report`` returns the report (what ``report.json`` holds, and what ``markdown`` and ``wandb_run`` show) and
the per-seed results (with their histories, for the plots); for text studies that swept the sampling temperature,
the report's ``frontier`` holds each run's BLEU-5 / Self-BLEU-5 curve and the verdicts of report/frontier.py.
"""

from __future__ import annotations

import json
import math
import statistics
from dataclasses import asdict, dataclass, field
from pathlib import Path

from omegaconf import OmegaConf

from gen_lightning.callbacks.directions import read_directions
from gen_lightning.run_dir import RunDir
from gen_lightning.studies.index import load_index
from gen_lightning.studies.report.frontier import CARD_KEYS, FIGURE, pairs, place, temperature_points

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
    directions: dict = field(default_factory=dict)  # the run's metrics.json: "min"/"max" per ranked metric
    protocol: dict = field(default_factory=dict)  # the card of the metric protocol's final evaluation


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
    from gen_lightning.run.checkpoint import CheckpointError, load_module

    try:
        module = load_module(RunDir(run_dir).last)
    except CheckpointError:
        return None
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


def read_seed(study_dir: Path, key: str, entry: dict) -> SeedResult:
    run_dir = study_dir / entry["dir"]
    layout = RunDir(run_dir)
    summary = json.loads(layout.metrics.read_text()) if layout.metrics.is_file() else {}
    if summary.get("status") == "completed":
        status = "completed"
    else:
        status = "failed" if entry.get("status") == "failed" or summary.get("status") == "failed" else "incomplete"
    result = SeedResult(key, entry["run"], entry["seed"], entry["dir"], status)
    if layout.config.is_file():
        cfg = OmegaConf.load(layout.config)
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
    result.directions = summary.get("directions", {})
    result.protocol = summary.get("protocol") or {}
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


def text_baseline(study_dir: Path, results: list[SeedResult]) -> dict | None:
    """The unigram baseline of a text study (``TextDataModule.unigram_bpc``) on the validation windows the runs
    were scored on; None when the runs are not text models, or when they differ in data or validation windows."""
    from hydra.utils import instantiate

    configs = [
        OmegaConf.load(RunDir(study_dir / r.dir).config) for r in results if RunDir(study_dir / r.dir).config.is_file()
    ]
    if not configs or not str(configs[0].data.get("_target_", "")).endswith("TextDataModule"):
        return None
    # The same text and windows; the seed only orders the training windows (it differs run by run).
    data = {json.dumps({k: v for k, v in OmegaConf.to_container(c.data, resolve=True).items() if k != "seed"},
                       sort_keys=True) for c in configs}  # fmt: skip
    limits = {c.trainer.get("limit_val_batches") for c in configs}
    if len(data) > 1 or len(limits) > 1:
        return None
    cfg, limit = configs[0], limits.pop()
    datamodule = instantiate(cfg.data)
    datamodule.setup("fit")
    windows = limit * cfg.data.batch_size if isinstance(limit, int) else None
    return {"unigram_bpc": datamodule.unigram_bpc(windows), "validation_windows": windows or len(datamodule.val_set)}


def frontier_curves(results: list[SeedResult], runs: list[str]) -> dict[str, dict]:
    """Run (in study order) -> its main temperature and, per temperature (ascending), Self-BLEU-5 and BLEU-5 over
    its completed seeds, with each seed's ``[seed, Self-BLEU-5, BLEU-5]``."""
    curves = {}
    for run in runs:
        seeds = [(r, temperature_points(r.final, r.protocol)) for r in results if r.run == run]
        seeds = [(r, points) for r, points in seeds if r.status == "completed" and points]
        if not seeds:
            continue
        temperatures = sorted({t for _, points in seeds for t in points})
        curves[run] = {
            "main_temperature": float(seeds[0][0].protocol["temperature"]),
            "points": [
                {
                    "temperature": t,
                    "self_bleu5": stats([points[t][0] for _, points in seeds if t in points]),
                    "bleu5": stats([points[t][1] for _, points in seeds if t in points]),
                    "seeds": [[r.seed, *points[t]] for r, points in seeds if t in points],
                }
                for t in temperatures
            ],
        }
    return curves


def frontier(results: list[SeedResult], spec: dict) -> dict | None:
    """The quality/diversity frontier (report/frontier.py): each run's curve through its temperatures, and where
    each run's main-temperature point lies against the other runs' curves (the declared baselines' only, where
    ``report.frontier.baselines`` names them). None when no run swept temperatures."""
    curves = frontier_curves(results, run_order(spec))
    if not any(len(c["points"]) > 1 for c in curves.values()):
        return None
    declared = ((spec.get("report") or {}).get("frontier") or {}).get("baselines") or []
    cards = [r.protocol for r in results if r.run in curves and r.status == "completed"]
    comparisons = []
    for run, other in pairs(list(curves), declared):
        main = next((p for p in curves[run]["points"] if p["temperature"] == curves[run]["main_temperature"]), None)
        if main is None:
            continue
        curve = [(p["self_bleu5"]["mean"], p["bleu5"]["mean"]) for p in curves[other]["points"]]
        point = (main["self_bleu5"]["mean"], main["bleu5"]["mean"])
        comparisons.append(
            {"run": run, "against": other, "temperature": main["temperature"], "self_bleu5": point[0],
             "bleu5": point[1], "bleu5_std": main["bleu5"]["std"], **place(point, curve)}
        )  # fmt: skip
    return {
        "figure": FIGURE,
        "curves": [{"run": run, **curve} for run, curve in curves.items()],  # a list: report.json sorts keys
        "baselines": declared,
        "missing_baselines": [b for b in declared if b not in curves],
        "protocol": {k: sorted({c[k] for c in cards if c.get(k) is not None}) for k in CARD_KEYS},
        "comparisons": comparisons,
    }


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
        "directions": read_directions({"directions": r.directions} for r in results),
        "evaluations": evaluation_rows(study_dir, index, spec),
        "baseline": text_baseline(study_dir, results),
        "seed_results": [
            {k: v for k, v in asdict(r).items() if k not in ("history", "logger", "directions", "protocol")}
            for r in results
        ],
    }
    front = frontier(results, spec)
    if front:  # only text studies with a temperature sweep: other studies' report.json stay as they were
        report["frontier"] = front
    return report, results
