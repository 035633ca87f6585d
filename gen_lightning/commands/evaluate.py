"""``gen-lightning evaluate ckpt=PATH [split=val|test] [metrics=... metrics.KEY=V model.KEY=V] [out=PREFIX]``.

Scores a checkpoint with a metric protocol (docs/CONTRACT.md, "Evaluation"): by default the run's own
(RUN_DIR/config.yaml) on its own data; ``metrics=NAME`` swaps the protocol, ``metrics.KEY=V`` changes one of its
settings, ``model.KEY=V`` replaces a constructor argument of the model (e.g. ``model.sample_steps=10``; the model
is rebuilt with it, as study evaluations do), ``split=test`` evaluates another split (for unconditional image
models: the real reference split). Prints a table and writes, beside the checkpoint (or at ``out=PREFIX``),
``last.eval.json`` (``last.test.eval.json`` for a split other than the protocol's), the per-example outputs
``last[.test].outputs.txt`` (hypotheses, predicted classes) and figures ``last[.test].<name>.png``. The
eval.json holds the latest evaluation; every evaluation is also appended to ``last[.test].evaluations.jsonl``
with its arguments and protocol card, so a second one with other settings (``metrics.decoding={beam:5}``) replaces
the files, says what changed, and loses no number (``out=PREFIX`` keeps each variant's outputs apart). The values
go to the checkpoint's W&B run (resumed by its id) or to a new ``job_type=eval`` run.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path

import yaml
from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import OmegaConf

from gen_lightning import tracking
from gen_lightning.config import compose_option, parse_kv
from gen_lightning.export import is_export
from gen_lightning.files import append_jsonl, write_json, write_text, write_with
from gen_lightning.run.checkpoint import load_module
from gen_lightning.run.prepare import SavedRun
from gen_lightning.run_dir import EvaluationFiles

USAGE = "usage: gen-lightning evaluate ckpt=PATH [split=...] [metrics=NAME] [metrics.KEY=V] [model.KEY=V] [device=cpu]"
OWN = ("ckpt", "split", "device", "out")


def route(rest: list[str]) -> tuple[list[str], dict]:
    """``metrics``/``metrics.*`` overrides (as given) and ``model.*`` overrides (parsed); anything else is an error."""
    metrics, model = [], {}
    for arg in rest:
        key, _, value = arg.partition("=")
        if key == "metrics" or key.startswith("metrics."):
            metrics.append(arg)
        elif key.startswith("model."):
            model[key.removeprefix("model.")] = yaml.safe_load(value) if value else None
        else:
            raise ValueError(f"unknown argument '{key}'; {USAGE}")
    return metrics, model


def metrics_config(saved, overrides: list[str]):
    cfg = saved.get("metrics") or OmegaConf.create({})
    for item in overrides:
        key, value = item.split("=", 1)
        if key == "metrics":
            cfg = compose_option("metrics", value)
        else:  # Hydra's override grammar, as fit reads it: metrics.decoding={beam:5} is a mapping
            override = OverridesParser.create().parse_override(item)
            cfg = cfg.copy()  # the run's saved config stays as it is
            OmegaConf.update(cfg, override.key_or_group.removeprefix("metrics."), override.value(), merge=True)
    if "_target_" not in cfg:
        raise ValueError("the run has no metric protocol (metrics=none): pass one, e.g. metrics=classifier")
    return cfg


def write_outputs(files: EvaluationFiles, result: dict) -> list[Path]:
    """Per-example outputs (one a line) and figures: ``PREFIX.outputs.txt``, ``PREFIX.<figure>.png``."""
    from torchvision.utils import save_image

    written = []
    if "outputs" in result:
        write_text(files.outputs, "".join(str(o).replace("\n", " ") + "\n" for o in result["outputs"]))
        written.append(files.outputs)
    for name, image in result.get("figures", {}).items():
        path = files.figure(name)
        write_with(path, lambda tmp, image=image: save_image(image, tmp, format="png"))
        written.append(path)
    return written


# Settings that differ between two evaluations of one checkpoint without making them different protocols.
INCIDENTAL = ("seconds", "device", "world_size")


def previous_protocol(path: Path) -> dict | None:
    """The protocol card of the evaluation already at ``path`` (None: none, or a file that cannot be read)."""
    try:
        return json.loads(path.read_text(encoding="utf-8")).get("protocol")
    except (OSError, ValueError, AttributeError):
        return None


def protocol_changes(before: dict | None, after: dict) -> str:
    """``key old -> new`` for each setting of the card that changed (empty: the same protocol, or no previous)."""
    if not before:
        return ""
    keys = sorted((set(before) | set(after)) - set(INCIDENTAL))
    return ", ".join(f"{k} {before.get(k)} -> {after.get(k)}" for k in keys if before.get(k) != after.get(k))


def keep_in_history(files: EvaluationFiles, record: dict) -> Path:
    """Append the evaluation to ``PREFIX.evaluations.jsonl``: every number ever written here, with its card."""
    path = files.history
    append_jsonl(path, {"time": datetime.now(timezone.utc).isoformat(timespec="seconds"), **record})
    return path


def evaluate_command(args: list[str]) -> dict:
    from gen_lightning.metrics.evaluate import build_protocol, evaluate_module

    options, rest = parse_kv(args, own=OWN)
    metric_overrides, model_overrides = route(rest)
    if "ckpt" not in options:
        raise ValueError(USAGE)
    ckpt = Path(options["ckpt"])
    if is_export(ckpt):
        raise ValueError(
            f"ckpt={ckpt} is an export, which holds the model but not the data and metric protocol of its run: "
            "evaluate the run's checkpoint (its config.json names it under trained.checkpoint)"
        )
    module = load_module(ckpt, model_overrides, map_location=options.get("device", "cpu"))
    run = SavedRun.of_checkpoint(ckpt)
    saved = run.cfg
    protocol = build_protocol(metrics_config(saved, metric_overrides))
    split = options.get("split")
    result = evaluate_module(module, run.datamodule(stage=None), protocol, split, given=metric_overrides)
    values = result["metrics"]
    width = max(len(k) for k in values)
    print(f"{'metric':<{width}}  value\n{'-' * width}  -----")
    for key, value in values.items():
        print(f"{key:<{width}}  {value:.6g}")
    tag = f".{split}" if split and split != protocol.split else ""
    files = EvaluationFiles.of(ckpt, tag, options.get("out"))  # RUN_DIR/checkpoints/last[.test]
    out = files.result
    out.parent.mkdir(parents=True, exist_ok=True)
    record = {"checkpoint": str(ckpt), "arguments": args, "metrics": values, "protocol": result["protocol"]}
    replaced = previous_protocol(out)
    write_json(out, record)  # atomic
    history = keep_in_history(files, record)
    for path in [out, *write_outputs(files, result)]:
        print(f"wrote {path}")
    changed = protocol_changes(replaced, result["protocol"])
    if changed:
        print(
            f"replaced the previous evaluation in {out.name} (another protocol: {changed}); its numbers stay in "
            f"{history.name}; give each variant its own out=PREFIX to keep its outputs and figures too"
        )
    tracking.log_evaluation(run.dir.path, saved.get("logger"), values, result["protocol"])
    return result
