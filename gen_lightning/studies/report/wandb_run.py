"""The W&B side of a study report: the comparison as W&B Tables (and the plots, the quality/diversity frontier's
too) in a ``job_type=report`` run of the study's group, logged through ``gen_lightning.tracking`` and only when the
numbers changed since the last time (their digest is kept in ``STUDY_DIR/wandb_report.json``).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from gen_lightning import tracking
from gen_lightning.files import write_json
from gen_lightning.loggers import wandb_config
from gen_lightning.studies.report.collect import SeedResult
from gen_lightning.studies.report.plots import metric_file

STATE_FILE = "wandb_report.json"


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


def frontier_tables(frontier: dict) -> dict[str, tuple[list[str], list[list]]]:
    """Each run's points through its temperatures, and where each main point lies against the curves."""
    points = [
        [curve["run"], p["temperature"], p["temperature"] == curve["main_temperature"], p["self_bleu5"]["mean"],
         p["bleu5"]["mean"], p["bleu5"]["std"], p["bleu5"]["n"]]
        for curve in frontier["curves"]
        for p in curve["points"]
    ]  # fmt: skip
    columns = ["run", "temperature", "main", "self_bleu5 mean", "bleu5 mean", "bleu5 std", "seeds"]
    verdicts = [
        [c["run"], c["temperature"], c["self_bleu5"], c["bleu5"], c["against"], c["curve_bleu5"], c["verdict"]]
        for c in frontier["comparisons"]
    ]
    verdict_columns = ["run", "temperature", "self_bleu5", "bleu5", "against", "curve bleu5", "verdict"]
    return {"frontier": (columns, points), "frontier_verdicts": (verdict_columns, verdicts)}


def log_wandb(study_dir: Path, report: dict, results: list[SeedResult], plot_metrics: list[str]) -> str | None:
    """Log the comparison to a ``job_type=report`` run of the study's W&B group; returns its run id."""
    digest = hashlib.sha256(json.dumps(report, sort_keys=True, default=str).encode()).hexdigest()
    state_path = study_dir / STATE_FILE
    state = json.loads(state_path.read_text()) if state_path.is_file() else {}
    if state.get("digest") == digest:
        print(f"W&B report run {state.get('id')} already holds these results (not logged again)")
        return state.get("id")
    logger = next((dict(c) for r in results if (c := wandb_config(r.logger)) is not None), {})
    per_seed = [[s["key"], s["run"], s["seed"], s["status"], s["error"]] for s in report["seed_results"]]
    tables = {"comparison": wandb_table_rows(report), "runs": (["key", "run", "seed", "status", "error"], per_seed)}
    if report["evaluations"]:
        tables["evaluations"] = evaluation_table(report["evaluations"])
    images = {f"plots/{m}": study_dir / "plots" / metric_file(m) for m in plot_metrics}
    if report.get("frontier"):
        tables.update(frontier_tables(report["frontier"]))
        images["plots/frontier_bleu5"] = study_dir / report["frontier"]["figure"]
    run_id = tracking.log_report(
        study_dir,
        logger,
        tables,
        images=images,
        group=report["study"],
        name=f"{report['study']}-report",
        tags=[report["study"], "report"],
        config={"study": report["spec"]},
    )
    if run_id is not None:
        write_json(state_path, {"digest": digest, "id": run_id})
    return run_id
