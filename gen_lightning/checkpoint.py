"""Reading checkpoints safely: a missing, corrupt, truncated or foreign file fails with its name and a remedy.

Lightning checks nothing in a checkpoint before resuming from it; ``read`` and ``check_compatible`` do it here.
Writing is Lightning's ``ModelCheckpoint``, which saves through a temporary file and renames it into place, so a
process killed while saving leaves the previous ``last.ckpt`` intact (tested in tests/test_resume.py).
"""

from __future__ import annotations

import importlib
from pathlib import Path

import lightning as L
import torch

from gen_lightning.callbacks.resume import STATE_KEY


class CheckpointError(RuntimeError):
    """A checkpoint cannot be used; the message names the file and what to do."""


def read(path: str | Path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint '{path}' does not exist")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as err:
        raise CheckpointError(
            f"checkpoint '{path}' is corrupt or truncated and cannot be read ({type(err).__name__}: {err}). "
            "Use another checkpoint of the run (its checkpoints/ folder) or start the run again."
        ) from err
    if not isinstance(ckpt, dict) or "state_dict" not in ckpt:
        raise CheckpointError(f"'{path}' is not a Lightning checkpoint (no state_dict)")
    if STATE_KEY not in ckpt or "target" not in ckpt[STATE_KEY]:
        raise CheckpointError(f"checkpoint '{path}' was not written by gen-lightning (no model class recorded)")
    return ckpt


def module_class(ckpt: dict) -> type[L.LightningModule]:
    target = ckpt[STATE_KEY]["target"]
    module_name, _, cls_name = target.rpartition(".")
    try:
        return getattr(importlib.import_module(module_name), cls_name)
    except (ImportError, AttributeError) as err:
        raise CheckpointError(f"the checkpoint's model class '{target}' cannot be imported: {err}") from err


def load_module(path: str | Path, map_location: str | torch.device = "cpu") -> L.LightningModule:
    """Rebuild the LightningModule saved in ``path`` (weights, EMA, hyperparameters), in eval mode."""
    ckpt = read(path)
    cls = module_class(ckpt)
    try:
        module = cls(**ckpt.get("hyper_parameters", {}))
        module.load_state_dict(ckpt["state_dict"])
    except Exception as err:
        raise CheckpointError(f"checkpoint '{path}' does not fit {cls.__name__}: {err}") from err
    return module.to(map_location).eval()


def check_compatible(path: str | Path, module: L.LightningModule) -> None:
    """Raise unless ``path`` holds weights of exactly ``module``'s class and parameter shapes."""
    ckpt = read(path)
    cls = type(module)
    target = f"{cls.__module__}.{cls.__qualname__}"
    if ckpt[STATE_KEY]["target"] != target:
        raise CheckpointError(
            f"checkpoint '{path}' holds a {ckpt[STATE_KEY]['target']}, but this run builds a {target}: "
            "resume with the run's own configuration, or start a new run_dir"
        )
    own = module.state_dict()
    theirs = ckpt["state_dict"]
    missing, unexpected = sorted(set(own) - set(theirs)), sorted(set(theirs) - set(own))
    wrong = [k for k in own.keys() & theirs.keys() if own[k].shape != theirs[k].shape]
    if missing or unexpected or wrong:
        detail = "; ".join(
            f"{label}: {', '.join(keys[:5])}{' ...' if len(keys) > 5 else ''}"
            for label, keys in (
                ("missing", missing),
                ("unexpected", unexpected),
                ("shape differs", sorted(wrong)),
            )
            if keys
        )
        raise CheckpointError(f"checkpoint '{path}' does not match the model of this run ({detail})")
