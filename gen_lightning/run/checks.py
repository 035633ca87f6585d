"""A run's config checked before anything is built or written: ``checked(cfg)`` refuses, in one line naming the key,
what no component would refuse before it did harm, and returns what it established (``Checked``: the classes,
the monitored metric).

- the model, the data and the metric protocol agree on the task (``tasks.check_agree``; the message names the
  options that would fit);
- values: the seed, the trainer's step budget, each ``model.KEY`` against its constructor argument's type and the
  shared rules of the hyper-parameter vocabulary (docs/CONTRACT.md);
- the monitored metric (``best.ckpt``, a search's objective) is computed at every validation;
- this machine has the accelerator asked for (not for a study planning runs for another machine);
- the chosen loggers are installed.

``threads`` is checked where it is chosen, once the model's size is known (``threads.apply``, before any write);
a study's plan and a search check it beside these checks.

Used by ``prepare`` (every fit), a study's plan and a search's first trial.
"""

from __future__ import annotations

import types
import typing
import warnings
from dataclasses import dataclass

import torch
from hydra.utils import get_class, instantiate
from omegaconf import DictConfig, OmegaConf

from gen_lightning import loggers, tasks
from gen_lightning.config import instantiating

# Size hyper-parameters: a width, depth, head count or latent size of 0 builds a model that learns nothing.
SIZE_SUFFIXES = ("_dim", "_size", "_layers", "_heads", "_blocks", "_channels", "_timesteps")


@dataclass(frozen=True)
class Checked:
    model_cls: type
    data_cls: type
    monitor: str  # the monitored validation metric (best.ckpt, a search's objective)
    mode: str  # its direction: min or max


def checked(cfg: DictConfig, here: bool = True) -> Checked:
    """Every check of the file docstring; ``here=False``: the run is planned for another machine (a study), its
    accelerator is not checked."""
    model_cls, data_cls = configured_class(cfg.model, "model"), configured_class(cfg.data, "data")
    protocol_cls = configured_class(cfg.metrics, "metrics") if has_protocol(cfg) else None
    check_values(cfg, model_cls)
    if here:
        check_hardware(cfg)
    monitor, mode = monitored(cfg, model_cls)
    check_monitor_schedule(cfg, model_cls)
    tasks.check_agree(model_cls, data_cls, protocol_cls)
    loggers.check_available(cfg.get("logger"))
    return Checked(model_cls, data_cls, monitor, mode)


def has_protocol(cfg: DictConfig) -> bool:
    return bool(cfg.get("metrics")) and "_target_" in cfg.metrics


def configured_class(node: DictConfig, key: str) -> type:
    target = node.get("_target_") if isinstance(node, DictConfig) else None
    if not target:
        raise ValueError(f"'{key}' names no class (_target_): choose a config, e.g. {key}=<name> (see fit --help)")
    try:
        return get_class(target)
    except Exception as err:
        raise ValueError(f"{key}._target_={target} cannot be imported: {err}") from err


def monitored(cfg: DictConfig, model) -> tuple[str, str]:
    """The run's monitored validation metric and its mode (``min``/``max``): ``checkpoint.monitor``/``mode``, else
    the model's ``monitor`` (a class attribute: ``model`` may be the class). best.ckpt and a search's objective
    follow it."""
    monitor = cfg.checkpoint.monitor or model.monitor[0]
    return monitor, cfg.checkpoint.mode or (model.monitor[1] if monitor == model.monitor[0] else "min")


def check_values(cfg: DictConfig, model_cls: type) -> None:
    """Values no component checks before they do harm (a seed NumPy rejects mid-set-up, a learning rate of 0, a
    width of 0, a learning rate that is not a number), each refused in one line naming the key."""
    if not isinstance(cfg.seed, int) or isinstance(cfg.seed, bool) or not 0 <= cfg.seed < 2**32:
        raise ValueError(f"seed must be an integer in [0, 2**32), got {cfg.seed!r}")
    for key in ("max_steps", "max_epochs"):
        value = cfg.trainer.get(key)
        if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < -1):
            raise ValueError(f"trainer.{key} must be an integer >= -1 (-1: no limit), got {value!r}")
    check_model_values(cfg.model, model_cls)


def check_model_values(model: DictConfig, model_cls: type) -> None:
    """Each ``model.KEY`` against its constructor argument's type, and the shared rules of the hyper-parameter
    vocabulary (docs/CONTRACT.md): sizes (``*_dim``, ``num_*``...) >= 1, learning rates > 0, dropout in [0, 1)."""
    hints = constructor_types(model_cls)
    for key, value in model.items():
        if key.startswith("_") or OmegaConf.is_missing(model, key):
            continue
        expected = hints.get(key)
        if expected is not None and not fits_type(value, expected):
            raise ValueError(f"model.{key}={value!r}: expected {type_name(expected)}")
        number = isinstance(value, int | float) and not isinstance(value, bool)
        is_rate = key == "lr" or (key.startswith("lr_") and not key.endswith("_steps"))  # not lr_decay_steps
        if is_rate and number and value <= 0:
            raise ValueError(f"model.{key}={value}: a learning rate must be positive, or the weights never change")
        is_size = key.endswith(SIZE_SUFFIXES) or key in ("num_layers", "num_heads", "num_res_blocks")
        if is_size and isinstance(value, int) and not isinstance(value, bool) and value < 1:
            raise ValueError(f"model.{key}={value}: a size (width, depth, heads, latent size) must be at least 1")
        if "dropout" in key and number and not 0 <= value < 1:
            raise ValueError(f"model.{key}={value}: a dropout probability must be in [0, 1)")


def constructor_types(cls: type) -> dict:
    try:
        return typing.get_type_hints(cls.__init__)
    except Exception:  # annotations that do not evaluate here: no type checks, the constructor checks
        return {}


def fits_type(value, expected) -> bool:
    """Whether a config value can be passed where ``expected`` is annotated (numbers, text, flags, optionals)."""
    union = typing.get_origin(expected) in (typing.Union, types.UnionType)
    options = typing.get_args(expected) if union else (expected,)
    for option in options:
        if option is type(None) and value is None:
            return True
        if option is float and isinstance(value, int | float) and not isinstance(value, bool):
            return True
        if option is int and isinstance(value, int) and not isinstance(value, bool):
            return True
        if option in (str, bool) and isinstance(value, option):
            return True
        if option not in (float, int, str, bool, type(None)):
            return True  # a container or a class: the constructor checks
    return False


def type_name(expected) -> str:
    return "a number" if expected in (float, int) else getattr(expected, "__name__", None) or str(expected)


def check_hardware(cfg: DictConfig) -> None:
    """This machine can run the trainer as configured (a study may plan GPU runs elsewhere; a fit runs here)."""
    accelerator = cfg.trainer.get("accelerator")
    if accelerator in ("gpu", "cuda") and not torch.cuda.is_available():
        raise ValueError(
            f"trainer.accelerator={accelerator}, but no CUDA GPU is available here: use trainer=cpu, or run where "
            "`python -c 'import torch; print(torch.cuda.is_available())'` prints True"
        )


def check_monitor_schedule(cfg: DictConfig, model_cls: type | None = None) -> None:
    """The monitored metric (``best.ckpt``, a search's objective) must be computed at every validation: Lightning's
    ModelCheckpoint stops the run at the first validation without it. A metric protocol's metric is computed after
    every ``metrics.every_n_epochs``-th validation epoch only (0: only once training has ended)."""
    if not has_protocol(cfg):
        return
    model_cls = model_cls or configured_class(cfg.model, "model")
    monitor, _ = monitored(cfg, model_cls)
    if monitor in getattr(model_cls, "metric_directions", {}):
        return  # the model logs it at every validation itself
    with (
        warnings.catch_warnings(),
        instantiating("metrics"),
    ):  # its settings' advice is for the run, which gives it again
        warnings.simplefilter("ignore")
        protocol = instantiate(cfg.metrics, _convert_="all")
    every = protocol.every_n_epochs
    if monitor in protocol.directions() and every != 1:
        when = "only once training has ended" if every == 0 else f"only after every {every}th validation epoch"
        raise ValueError(
            f"checkpoint.monitor={monitor} is computed by the metric protocol {when} (metrics.every_n_epochs="
            f"{every}), but best.ckpt needs it at every validation: set metrics.every_n_epochs=1 (and space the "
            "validations with trainer.check_val_every_n_epoch), or monitor a metric the model logs"
        )
