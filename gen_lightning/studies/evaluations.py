"""Evaluation variants of a study: every trained checkpoint sampled and evaluated again with other settings.

The ``diffusion_samplers`` study trains one DDPM (Ho et al. 2020) and evaluates it with the ancestral sampler
(all T steps) and with DDIM (Song et al. 2021, Table 1: FID against 10/20/50/100 steps) under one metric
protocol. A variant is a list of ``model.<parameter>=value`` overrides: the module is rebuilt from the checkpoint
with those constructor arguments (``sampler``, ``sample_steps``, ``eta``, ``guidance`` ...) and the trained
weights, so ``sample()`` and ``sample_info()`` (the protocol card) both use them. Metrics come from
``gen_lightning.metrics.evaluate_module`` with the run's own ``metrics`` protocol; with ``metrics=none`` only the
sampling time and a sample grid are recorded. Results: ``RUN_DIR/evaluations/<name>.json`` (+ ``.png``/``.txt``).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import torch
import yaml

from gen_lightning.files import write_json, write_texts
from gen_lightning.run import checkpoint as ckpt_io
from gen_lightning.run.build import build_datamodule
from gen_lightning.run.prepare import SavedRun
from gen_lightning.run_dir import RunDir
from gen_lightning.studies.index import StudyIndex
from gen_lightning.studies.plan import PlannedRun
from gen_lightning.studies.spec import StudySpec
from gen_lightning.tasks import task_of

GRID = 64  # images timed and saved per variant (text: TEXTS samples of TEXT_LENGTH tokens)
TEXTS, TEXT_LENGTH = 8, 200


def model_parameters(overrides: list[str]) -> dict:
    """``["model.sample_steps=10"]`` -> ``{"sample_steps": 10}`` (values parsed as YAML scalars)."""
    out = {}
    for item in overrides:
        key, _, value = item.partition("=")
        out[key.removeprefix("model.")] = yaml.safe_load(value) if value else None
    return out


def run_device(cfg) -> torch.device:
    accelerator = str(cfg.trainer.get("accelerator", "cpu"))
    return torch.device("cuda" if accelerator in ("gpu", "cuda", "auto") and torch.cuda.is_available() else "cpu")


def timed_samples(module, device: torch.device):
    """Samples from a fixed generator and the wall-clock seconds per sample."""
    generator = torch.Generator(device=device).manual_seed(0)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    sync()
    start = time.perf_counter()
    if getattr(module, "modality", "image") == "text":
        samples = module.sample(TEXTS, length=TEXT_LENGTH, generator=generator)
    else:
        samples = module.sample(GRID, generator=generator)
    sync()
    return samples, (time.perf_counter() - start) / len(samples)


def save_samples(samples, path: Path) -> Path:
    from torchvision.utils import save_image

    from gen_lightning.callbacks.samples import image_grid

    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(samples, torch.Tensor):
        save_image(image_grid(samples), path.with_suffix(".png"))
        return path.with_suffix(".png")
    return write_texts(path.with_suffix(".txt"), samples)


def metric_values(module, cfg) -> dict:
    """``{"metrics": ..., "protocol": ...}`` under the run's metric protocol; empty with ``metrics=none``."""
    if not cfg.get("metrics") or "_target_" not in cfg.metrics:
        return {"metrics": {}, "protocol": None, "note": "metrics=none: sampling time and samples only"}
    try:
        from gen_lightning.metrics import evaluate_module
    except ImportError as err:
        raise RuntimeError(
            f"the run's protocol is metrics={cfg.metrics.get('features', '?')}, but gen_lightning.metrics."
            f"evaluate_module cannot be imported ({err}): install the metrics package of gen-lightning"
        ) from err
    return evaluate_module(module, build_datamodule(cfg.data, stage=None), cfg.metrics)


def evaluate_variant(run_dir: Path, name: str, overrides: list[str], checkpoint: str = "last") -> dict:
    """Evaluate one variant of one trained run; the result is also written to ``RUN_DIR/evaluations/``."""
    run = RunDir(run_dir)
    cfg = SavedRun.at(run_dir).cfg  # every _target_ declared (run/declared.py)
    device = run_device(cfg)
    ckpt = run.checkpoint(checkpoint)
    result = {
        "evaluation": name,
        "overrides": list(overrides),
        "checkpoint": str(ckpt.relative_to(run.path)),
        "checkpoint_mtime_ns": ckpt.stat().st_mtime_ns if ckpt.exists() else None,
        "metrics": {},
    }
    start = time.perf_counter()
    try:
        module = ckpt_io.load_module(ckpt, model_parameters(overrides), map_location=device)
        result["global_step"] = ckpt_io.global_step(ckpt)
        result["sample_info"] = module.sample_info() if hasattr(module, "sample_info") else {}
        if task_of(module)[0] == "unconditional":
            samples, result["sample_time"] = timed_samples(module, device)
            result["samples"] = str(save_samples(samples, run.evaluation(name, "")).relative_to(run.path))
        result.update(metric_values(module, cfg))
        outputs = result.pop("outputs", None)
        result.pop("figures", None)
        if outputs is not None:  # conditional models: their first outputs, and the time per output
            shown = [str(o) for o in outputs[:TEXTS]]
            result["samples"] = str(save_samples(shown, run.evaluation(name, "")).relative_to(run.path))
            result["sample_time"] = result["protocol"]["seconds"] / max(1, len(outputs))
        result["status"] = "completed"
    except Exception as err:
        result.update(status="failed", error=f"{type(err).__name__}: {err}")
    result["seconds"] = round(time.perf_counter() - start, 3)
    write_json(_result_path(run_dir, name), result)
    return result


def _result_path(run_dir: Path, name: str) -> Path:
    path = RunDir(run_dir).evaluation(name)
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def is_current(run_dir: Path, name: str, overrides: list[str], checkpoint: str) -> dict | None:
    """The stored result, if it was made from the present checkpoint with the same overrides."""
    path = RunDir(run_dir).evaluation(name)
    if not path.is_file():
        return None
    old = json.loads(path.read_text())
    ckpt = RunDir(run_dir).checkpoint(checkpoint)
    same = (
        old.get("status") == "completed"
        and old.get("overrides") == list(overrides)
        and old.get("checkpoint") == str(ckpt.relative_to(RunDir(run_dir).path))
        and ckpt.exists()
        and old.get("checkpoint_mtime_ns") == ckpt.stat().st_mtime_ns
    )
    return old if same else None


def run_evaluations(spec: StudySpec, index: StudyIndex, planned: list[PlannedRun]) -> None:
    """Every evaluation variant of every completed run, skipping results already made from the same checkpoint."""
    keys = {pr.key for pr in planned}
    old = index.data["evaluations"]  # drop variants and runs the study no longer has
    index.data["evaluations"] = {
        k: v for k, v in old.items() if v.get("evaluation") in spec.evaluations and v.get("dir") in keys
    }
    if not spec.evaluations:
        return
    todo = [pr for pr in planned if index.data["runs"][pr.key].get("status") == "completed"]
    total, i = len(todo) * len(spec.evaluations), 0
    for pr in todo:
        for name, overrides in spec.evaluations.items():
            i += 1
            key = f"{pr.key}/{name}"
            result = is_current(pr.run_dir, name, overrides, spec.evaluate_checkpoint)
            what = "done before, skipped"
            if result is None:
                print(f"[study {spec.name}] evaluation {i}/{total} {key}: {' '.join(overrides)}", flush=True)
                result = evaluate_variant(pr.run_dir, name, overrides, spec.evaluate_checkpoint)
                what = result["status"] + (f": {result['error']}" if result.get("error") else "")
            index.update(
                key,
                section="evaluations",
                run=pr.run,
                seed=pr.seed,
                evaluation=name,
                dir=pr.key,
                file=str(RunDir(pr.key).evaluation(name)),
                status=result["status"],
                error=result.get("error"),
            )
            print(f"[study {spec.name}] evaluation {i}/{total} {key}: {what}", flush=True)
