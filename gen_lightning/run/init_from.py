"""``init_from=CKPT``: start a run from the weights of another run's checkpoint (pre-train, then fine-tune), or
from a Hugging Face GPT-2 or BERT (``init_from=FOLDER`` or a model name in the local Hugging Face cache, read by
gen_lightning/interop/hf.py).

Knows no family. The checkpoint is read by gen_lightning/run/checkpoint.py. Its tokenizer (the ``tokenizer``
hyperparameter every text model saves) goes to the new run's data module in place of the one it would build, so
the ids mean what they meant in pre-training; then its weights are loaded into the new model by name:

- the model's ``init_prefixes`` (default: every parameter) name the parameters the checkpoint must provide,
  e.g. a classifier's body ``("net.transformer.",)``; parameters outside them (a new classification head) keep
  their fresh initialisation, and checkpoint tensors outside them (a language-model head) are not used, except
  those under the checkpoint's ``optional`` prefixes where the model has them with the same shapes;
- under those prefixes the two must match one to one with equal shapes; otherwise the run stops with the names
  that differ, before training. A model may check more with ``check_init_source(target, hparams)`` (e.g. that
  a BERT checkpoint goes into a BERT body, with the same number of heads, which no tensor shape shows).

The body's shape comes from the checkpoint (``take_shape``), as ``from_pretrained`` takes it from config.json:
the model's ``init_shape`` names the hyperparameters a checkpoint fixes (sizes, and the layout of a Hugging Face
network); they replace the config's values, and a value given on the command line that contradicts the
checkpoint is refused with both values. A config handed over already composed (no command line known: tests,
studies) is taken as given whole, so any contradicting value there is refused.

On ``resume=true`` the weights come from the run's own ``last.ckpt`` and only the tokenizer is carried over
(from that checkpoint, which holds the same one), so a resumed run no longer needs the pre-trained file.
"""

from __future__ import annotations

import inspect
import json
import logging
from dataclasses import MISSING, dataclass, field
from pathlib import Path

import lightning as L
from hydra.utils import get_class
from omegaconf import DictConfig, open_dict

from gen_lightning import run_dir as run_dirs
from gen_lightning.callbacks.resume import STATE_KEY
from gen_lightning.interop import hf
from gen_lightning.interop.hub import HubError, looks_like_path, resolve
from gen_lightning.run import checkpoint as ckpt_io
from gen_lightning.run import declared
from gen_lightning.run_dir import RunDir

log = logging.getLogger(__name__)
CARRIED = ("tokenizer",)  # hyperparameters of the checkpoint that the data module takes over


class InitFromError(ValueError):
    """The checkpoint of ``init_from`` does not fit this run; the message names what differs."""


@dataclass
class Pretrained:
    path: Path
    target: str  # the checkpoint's model class
    hparams: dict
    state_dict: dict
    # Prefixes of tensors loaded where the model has them with the same shapes (a Hugging Face BERT's pooler and
    # sequence classifier, into a text classifier's head); the model's init_prefixes stay required.
    optional: tuple[str, ...] = ()
    carried: dict = field(default_factory=dict)  # what the new run's data module takes over (``carried``)


def read(path: str | Path, ckpt: dict | None = None) -> Pretrained:
    """The pre-trained weights of ``path`` (``ckpt``: that file, already read)."""
    ckpt = ckpt if ckpt is not None else ckpt_io.read(path)
    try:  # a name that is never imported here, but a model's check_init_source and the messages show it
        declared.check(ckpt[STATE_KEY]["target"], f"init_from={path}", "its model class")
    except declared.UndeclaredTarget as err:
        raise InitFromError(str(err)) from err
    return Pretrained(Path(path), ckpt[STATE_KEY]["target"], dict(ckpt.get("hyper_parameters", {})), ckpt["state_dict"])


def take(
    cfg: DictConfig, resume_from: Path | None, ckpt: dict | None, overrides: list[str] | None
) -> Pretrained | None:
    """The pre-trained checkpoint of a run (``for_run``), with ``cfg.model`` given its shape (``take_shape``) and
    what the data module takes over found (``carried``); None without ``init_from``."""
    pretrained = for_run(cfg, resume_from, ckpt)
    if pretrained is not None:
        take_shape(cfg, pretrained, overrides)
        pretrained.carried = carried(pretrained, cfg.data)
    return pretrained


def for_run(cfg: DictConfig, resume_from: Path | None, ckpt: dict | None = None) -> Pretrained | None:
    """The pre-trained checkpoint of a run (its own last.ckpt when resuming, ``ckpt`` if already read), or None
    without ``init_from``."""
    if not cfg.get("init_from"):
        return None
    source = str(cfg.init_from)
    if resume_from is None and not Path(source).is_file() and (Path(source).is_dir() or not looks_like_path(source)):
        return read_hf(source)
    path = resume_from or Path(source)
    if not path.is_file():
        raise InitFromError(
            f"init_from={path} does not exist: give the checkpoint of a finished run, or a Hugging Face model "
            "(its folder, or its name in the local Hugging Face cache)"
        )
    if resume_from is None:
        check_finished(path)
    return read(path, ckpt if resume_from is not None else None)


def read_hf(source: str) -> Pretrained:
    """A Hugging Face GPT-2 or BERT (a folder, or a name in the local cache) as pre-trained weights."""
    try:
        model = hf.read(resolve(source))
    except (HubError, hf.HFError) as err:
        raise InitFromError(str(err)) from err
    return Pretrained(model.folder, model.target, model.hparams, model.state_dict, optional=("head.",))


def given_keys(overrides: list[str]) -> set[str]:
    """The ``model.KEY`` names set on a command line (``model.k=v``, ``+model.k=v``, ``++model.k=v``)."""
    keys = (o.lstrip("+").partition("=")[0] for o in overrides if "=" in o)
    return {k.removeprefix("model.") for k in keys if k.startswith("model.")}


def take_shape(cfg: DictConfig, pretrained: Pretrained | None, overrides: list[str] | None) -> dict:
    """Set ``cfg.model``'s shape hyperparameters to the checkpoint's (see the file docstring); returns them.
    ``overrides``: the command line (None: every value of ``cfg.model`` counts as given)."""
    if pretrained is None or cfg.get("resume"):
        return {}
    init_shape = getattr(get_class(cfg.model._target_), "init_shape", None)
    if init_shape is None:  # a family that does not say which hyperparameters a checkpoint fixes
        return {}
    keys = init_shape(cfg.model, pretrained.target, pretrained.hparams.get("cell"))  # {} where it does not fit
    theirs = {k: pretrained.hparams.get(k, default) for k, default in keys.items()}
    theirs = {k: v for k, v in theirs.items() if v is not MISSING}
    given = set(cfg.model) if overrides is None else given_keys(overrides)
    differ = {k: v for k, v in theirs.items() if k in given and k in cfg.model and cfg.model[k] != v}
    if differ:
        name = pretrained.target.rpartition(".")[2]
        both = "; ".join(f"model.{k}={cfg.model[k]} here, {v} in the checkpoint" for k, v in differ.items())
        fix = " ".join(f"model.{k}={v}" for k, v in differ.items())
        raise InitFromError(
            f"init_from={pretrained.path}: its {name} has other shapes than this model ({both}): set {fix}, or "
            "leave them out (the checkpoint decides the body's shape)"
        )
    with open_dict(cfg.model):
        for key, value in theirs.items():
            cfg.model[key] = value
    log.info("init_from: the shape of %s: %s", pretrained.path, theirs)
    return theirs


def check_finished(path: Path) -> None:
    """Refuse the checkpoint of a run that is still training (its weights would change under the next run): the
    run's lock is held by a live process, or its metrics.json says it did not complete."""
    run = RunDir.of_checkpoint(path)
    if run_dirs.is_locked(run.path):
        raise InitFromError(
            f"init_from={path}: the run that writes it is still training (another process holds {run.path}/.lock). "
            "Wait for it to finish, or copy the checkpoint out of its run directory to start from it as it is."
        )
    if not run.metrics.is_file():
        return  # a checkpoint outside a run directory (or of a run killed before its first validation): as it is
    status = json.loads(run.metrics.read_text()).get("status")
    if status in ("running", "interrupted", "failed"):
        raise InitFromError(
            f"init_from={path}: the run that writes it is {status} (its {run.metrics.name}), not completed. Wait for "
            "it to finish (or resume it), or copy the checkpoint out of its run directory to start from it as it is."
        )


def carried(pretrained: Pretrained | None, data_cfg: DictConfig) -> dict:
    """The checkpoint's hyperparameters that the data module of ``data_cfg`` takes over (its tokenizer), as its
    constructor arguments."""
    found = {k: pretrained.hparams[k] for k in CARRIED if pretrained is not None and k in pretrained.hparams}
    accepted = inspect.signature(get_class(data_cfg._target_).__init__).parameters
    refused = [k for k in found if k not in accepted]
    if refused:
        raise InitFromError(
            f"init_from={pretrained.path} brings a {', '.join(refused)}, which {data_cfg._target_} does not take: "
            "choose a data config whose data module has a tokenizer argument"
        )
    return found


def _listing(label: str, keys: list[str]) -> str:
    return f"{label}: {', '.join(keys[:6])}{' ...' if len(keys) > 6 else ''}"


def load_weights(model: L.LightningModule, pretrained: Pretrained) -> list[str]:
    """Copy the checkpoint's tensors under the model's ``init_prefixes`` into it; returns the names loaded."""
    where = f"init_from={pretrained.path} (a {pretrained.target})"
    for key in CARRIED:
        ours, theirs = model.hparams.get(key), pretrained.hparams.get(key)
        if theirs is not None and ours != theirs:
            raise InitFromError(f"{where}: this model's {key} differs from the checkpoint's")
    check = getattr(model, "check_init_source", None)
    if check is not None:
        try:
            check(pretrained.target, pretrained.hparams)
        except ValueError as err:
            raise InitFromError(f"{where}: {err}") from err
    prefixes = tuple(getattr(model, "init_prefixes", ("",)))
    own = {k: v for k, v in model.state_dict().items() if k.startswith(prefixes)}
    theirs = {k: v for k, v in pretrained.state_dict.items() if k.startswith(prefixes)}
    mismatch = ckpt_io.weight_mismatch(own, theirs)
    if any(mismatch.values()) or not own:
        labels = {"missing": "missing in the checkpoint", "unexpected": "not in this model"}
        detail = ckpt_io.describe_mismatch(mismatch, {**labels, "shape": "shape (checkpoint vs model)"}, most=6)
        raise InitFromError(
            f"{where} does not fit {type(model).__name__} under {list(prefixes)}: {detail or 'no parameters'}. "
            "Build the model with the checkpoint's sizes (its config.yaml) or pre-train one of this shape."
        )
    wanted = sorted(own)
    mine = model.state_dict()
    extra = [k for k, v in pretrained.state_dict.items() if k.startswith(pretrained.optional) and k not in own
             and k in mine and mine[k].shape == v.shape]  # fmt: skip
    model.load_state_dict({k: pretrained.state_dict[k] for k in [*wanted, *extra]}, strict=False)
    wanted = sorted([*wanted, *extra])
    fresh = [k for k in mine if k not in set(wanted)]
    log.info("init_from: %d tensors from %s; initialised fresh: %s", len(wanted), pretrained.path, fresh or "none")
    return wanted
