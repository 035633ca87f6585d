"""Reading checkpoints safely, and the one way to rebuild a model from one.

- ``read`` unpickles with ``torch.load(weights_only=True)``: tensors and plain Python values only, so a crafted file
  cannot run code. The project's checkpoints of every family hold nothing else (docs/CONTRACT.md, "Checkpoints").
  A missing, corrupt, truncated, foreign or untrusted file fails with its name and a remedy.
- The model class a checkpoint names is built only if the project declares it (``declared.py``): a checkpoint of
  plain values naming ``os.system`` is refused before anything is imported.
- ``load_module(path, overrides)`` rebuilds the LightningModule with some constructor arguments replaced (e.g. a
  sampler, a number of sampling steps, a decoding setting), so an override means the same thing in ``sample``,
  ``evaluate`` and the evaluations of a study; an override that names no constructor argument is an error.
- ``check_compatible`` tells, before Lightning restores anything, whether a checkpoint fits the model of a run;
  ``weight_mismatch`` is the one comparison of two state dicts (missing, unexpected, misshaped), also ``init_from``'s.

Writing is ``callbacks/checkpointing.AtomicCheckpointIO``'s: a temporary file beside the target, synced, checked
readable and renamed, so a process killed (or a disk full) while saving leaves the previous ``last.ckpt`` intact.
"""

from __future__ import annotations

import pickle
from collections.abc import Collection
from pathlib import Path

import lightning as L
import torch

from gen_lightning.callbacks.resume import STATE_KEY
from gen_lightning.nn.fsdp import read_sharded
from gen_lightning.run import declared


class CheckpointError(RuntimeError):
    """A checkpoint cannot be used; the message names the file and what to do."""


def read(path: str | Path) -> dict:
    """The checkpoint in ``path``: a file, or a folder of shards (``trainer=fsdp``: ``nn/fsdp.py``) read whole."""
    path = Path(path)
    sharded = path.is_dir() and (path / "meta.pt").is_file()
    if not path.is_file() and not sharded:
        raise CheckpointError(f"checkpoint '{path}' does not exist")
    try:
        ckpt = read_sharded(path) if sharded else torch.load(path, map_location="cpu", weights_only=True)
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


def module_class(ckpt: dict, path: str | Path) -> type[L.LightningModule]:
    """The checkpoint's model class, imported only if the project declares it (``declared.py``)."""
    try:
        return declared.build_class(ckpt[STATE_KEY]["target"], f"checkpoint '{path}'", L.LightningModule)
    except declared.UndeclaredTarget as err:
        raise CheckpointError(str(err)) from err


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
    cls = module_class(ckpt, path)
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


def weight_mismatch(own: dict, theirs: dict) -> dict[str, list[str]]:
    """``{"missing": ..., "unexpected": ..., "shape": ["name (theirs) vs (own)", ...]}``: what keeps ``theirs`` from
    loading into a module whose state dict is ``own``; every list empty when it fits."""
    return {
        "missing": sorted(set(own) - set(theirs)),
        "unexpected": sorted(set(theirs) - set(own)),
        "shape": [
            f"{k} {tuple(theirs[k].shape)} vs {tuple(own[k].shape)}"
            for k in sorted(own.keys() & theirs.keys())
            if theirs[k].shape != own[k].shape
        ],
    }


def describe_mismatch(mismatch: dict[str, list[str]], labels: dict[str, str], most: int = 5) -> str:
    return "; ".join(
        f"{labels[kind]}: {', '.join(keys[:most])}{' ...' if len(keys) > most else ''}"
        for kind, keys in mismatch.items()
        if keys
    )


def check_compatible(ckpt: dict, module: L.LightningModule, path: str | Path, allowed: Collection[str] = ()) -> None:
    """Raise unless the checkpoint ``ckpt`` (read from ``path``) holds weights of exactly ``module``'s class,
    parameter shapes and hyperparameters (the data-derived ones included, e.g. the tokenizer), except the
    hyperparameters in ``allowed``."""
    cls = type(module)
    target, saved_target = f"{cls.__module__}.{cls.__qualname__}", declared.current(ckpt[STATE_KEY]["target"])
    if saved_target != target:
        raise CheckpointError(
            f"checkpoint '{path}' holds a {saved_target}, but this run builds a {target}: "
            "resume with the run's own configuration, or start a new run_dir"
        )
    mismatch = weight_mismatch(module.state_dict(), ckpt["state_dict"])
    if any(mismatch.values()):
        labels = {"missing": "missing", "unexpected": "unexpected", "shape": "shape differs (checkpoint vs model)"}
        hint = ""
        if mismatch["missing"] and not mismatch["unexpected"] and not mismatch["shape"]:
            hint = (
                ": it lacks state that this version of the model keeps, so it was written by an older gen-lightning "
                "and cannot resume exactly; `sample` and `evaluate` still read it, and `init_from=` its path in a "
                "new run_dir continues training from its weights"
            )
        raise CheckpointError(
            f"checkpoint '{path}' does not match the model of this run ({describe_mismatch(mismatch, labels)}){hint}"
        )
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
