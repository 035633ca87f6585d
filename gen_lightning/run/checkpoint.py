"""Reading checkpoints safely, and the one way to rebuild a model from one.

- ``read`` unpickles with ``torch.load(weights_only=True)``: tensors and plain Python values only, so a crafted file
  cannot run code. The project's checkpoints of every family hold nothing else (docs/CONTRACT.md, "Checkpoints").
  A missing, corrupt, truncated, foreign or untrusted file fails with its name and a remedy.
- ``load_module(path, overrides)`` rebuilds the LightningModule with some constructor arguments replaced (e.g. a
  sampler, a number of sampling steps, a decoding setting), so an override means the same thing in ``sample``,
  ``evaluate`` and the evaluations of a study; an override that names no constructor argument is an error.
- ``check_compatible`` tells, before Lightning restores anything, whether a checkpoint fits the model of a run.

Writing is Lightning's (``ModelCheckpoint`` / ``trainer.save_checkpoint``), which saves to a temporary file and
renames it into place, so a process killed while saving leaves the previous ``last.ckpt`` intact.
"""

from __future__ import annotations

import importlib
import pickle
from collections.abc import Collection
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
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        if "weights_only" in str(err) or "Unsupported global" in str(err):
            raise CheckpointError(
                f"'{path}' is not a checkpoint this tool trusts: it holds Python objects other than tensors and plain "
                "values, which could run code when loaded, so it was not loaded. gen-lightning's own checkpoints "
                "never do; use a checkpoint written by gen-lightning."
            ) from err
        raise _corrupt(path, err) from err
    except Exception as err:
        raise _corrupt(path, err) from err
    if not isinstance(ckpt, dict) or "state_dict" not in ckpt:
        raise CheckpointError(f"'{path}' is not a Lightning checkpoint (no state_dict)")
    if STATE_KEY not in ckpt or "target" not in ckpt[STATE_KEY]:
        raise CheckpointError(f"checkpoint '{path}' was not written by gen-lightning (no model class recorded)")
    return ckpt


def _corrupt(path: Path, err: Exception) -> CheckpointError:
    return CheckpointError(
        f"checkpoint '{path}' is corrupt or truncated and cannot be read ({type(err).__name__}: {err}). "
        "Use another checkpoint of the run (its checkpoints/ folder) or start the run again."
    )


def module_class(ckpt: dict) -> type[L.LightningModule]:
    target = ckpt[STATE_KEY]["target"]
    module_name, _, cls_name = target.rpartition(".")
    try:
        return getattr(importlib.import_module(module_name), cls_name)
    except (ImportError, AttributeError) as err:
        raise CheckpointError(f"the checkpoint's model class '{target}' cannot be imported: {err}") from err


def hyperparameters(ckpt: dict, overrides: dict | None = None) -> dict:
    """The checkpoint's constructor arguments with ``overrides`` applied; unknown names are an error."""
    hparams = dict(ckpt.get("hyper_parameters", {}))
    unknown = sorted(set(overrides or {}) - set(hparams))
    if unknown:
        cls = ckpt[STATE_KEY]["target"].rpartition(".")[2]
        raise ValueError(
            f"model.{unknown[0]} is not a parameter of {cls}, so overriding it would change nothing; "
            f"its parameters: {', '.join(sorted(hparams))}"
        )
    return {**hparams, **(overrides or {})}


def load_module(
    path: str | Path, overrides: dict | None = None, map_location: str | torch.device = "cpu"
) -> L.LightningModule:
    """Rebuild the LightningModule saved in ``path`` (weights, EMA, hyperparameters), in eval mode.

    ``overrides`` replace constructor arguments (``{"sample_steps": 10}``) before the module is built."""
    ckpt = read(path)
    cls = module_class(ckpt)
    kwargs = hyperparameters(ckpt, overrides)
    try:
        module = cls(**kwargs)
    except (ValueError, TypeError) as err:
        if overrides:
            raise ValueError(f"the overrides {overrides} do not fit {cls.__name__}: {err}") from err
        raise CheckpointError(f"checkpoint '{path}' does not fit {cls.__name__}: {err}") from err
    try:
        module.load_state_dict(ckpt["state_dict"])
    except Exception as err:
        hint = " (an override changed the shape of the model?)" if overrides else ""
        raise CheckpointError(f"checkpoint '{path}' does not fit {cls.__name__}{hint}: {err}") from err
    return module.to(map_location).eval()


def global_step(path: str | Path) -> int:
    return int(read(path).get("global_step", 0))


def _comparable(value):
    """Hyperparameter values compared as JSON would store them (tuples and lists alike)."""
    import json

    return json.loads(json.dumps(value, sort_keys=True, default=str))


def check_compatible(path: str | Path, module: L.LightningModule, allowed: Collection[str] = ()) -> None:
    """Raise unless ``path`` holds weights of exactly ``module``'s class, parameter shapes and hyperparameters
    (the data-derived ones included, e.g. the tokenizer), except the hyperparameters in ``allowed``."""
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
    saved = ckpt.get("hyper_parameters", {})
    differ = sorted(
        k for k in set(saved) | set(module.hparams)
        if k not in allowed and _comparable(saved.get(k)) != _comparable(module.hparams.get(k))
    )  # fmt: skip
    if differ:
        raise CheckpointError(
            f"checkpoint '{path}' was made with other model settings than this run builds ({', '.join(differ)} "
            "differ: did the data or its vocabulary change under the run?); resume with the run's own data and "
            "config, or start a new run_dir"
        )
