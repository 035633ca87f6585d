"""A run prepared once: the one owner of everything that happens before training starts.

``prepare(cfg, overrides)`` checks the config (the model fits the data and the metric protocol, values are sane),
decides the resume (the saved config, what the command line may change, the checkpoint to continue from), reads
that checkpoint once, builds the data module and the model (with the weights of ``init_from``), checks the
checkpoint fits the model, and only then takes the run directory's lock, the first write of a new run. Anything
wrong is refused before a file is written. ``gen-lightning fit`` prepares in its preflight, before Hydra creates
the run directory, and ``train.fit`` takes that prepared run (``take``) instead of doing the work again; a caller
of ``train.fit(cfg)`` without a preflight (tests, studies in process, DDP children) gets it prepared there.

``SavedRun`` is the other side: a run read back from its directory (``sample``, ``evaluate``, study evaluations,
``init_from``): its config with every ``_target_`` declared (``declared.py``), its data module rebuilt one way.
"""

from __future__ import annotations

import inspect
import os
import types
import typing
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import lightning as L
import torch
from hydra.errors import InstantiationException
from hydra.utils import get_class, instantiate
from omegaconf import DictConfig, OmegaConf

from gen_lightning import loggers
from gen_lightning import run_dir as run_dirs
from gen_lightning.callbacks.resume import STATE_KEY, seed_all
from gen_lightning.files import remove_stale_temporaries
from gen_lightning.nn import host
from gen_lightning.run import checkpoint as ckpt_io
from gen_lightning.run import declared, fingerprint, init_from, threads
from gen_lightning.run.resume_policy import model_overrides, resolve_for_resume
from gen_lightning.run_dir import RunDir, RunDirError


@dataclass
class Run:
    cfg: DictConfig
    dir: RunDir
    datamodule: L.LightningDataModule
    model: L.LightningModule
    resume_from: Path | None = None  # the checkpoint a resume continues from
    changes: dict = field(default_factory=dict)  # what the resume's command line changed: {key: [saved, new]}
    speed_options: list[str] = field(default_factory=list)  # the host-dependent choices, for the run's log

    @property
    def model_overrides(self) -> dict:
        return model_overrides(self.changes)


_prepared: dict[str, Run] = {}  # run directory -> the run its command's preflight prepared in this process


def prepare(cfg: DictConfig, overrides: list[str] | None = None, changes: dict | None = None, keep=False) -> Run:
    """The run of ``cfg`` ready to train (see the file docstring). ``overrides``: the command line as typed, from
    which a resume reads its saved config and what may change; without them ``cfg`` is taken as resolved already
    (``resume_policy.resolve_for_resume``), with ``changes`` what that resolution accepted. ``keep``: hand it to
    the next ``take`` in this process (the preflight of ``gen-lightning fit``)."""
    check_task(cfg)
    if cfg.resume and overrides is not None:
        cfg, changes = resolve_for_resume(cfg, list(overrides))
    check_config(cfg)
    check_hardware(cfg)
    speed_options = host.choose_speed_options(cfg)  # trainer.precision=auto resolved in cfg (saved as chosen)
    resume_from, ckpt = checkpoint_to_resume(cfg)
    if ckpt is not None:
        check_budget(cfg, ckpt, resume_from)
    seed_all(cfg.seed)
    pretrained = init_from.for_run(cfg, resume_from, ckpt)
    init_from.take_shape(cfg, pretrained, overrides)  # the body's shape from the checkpoint, before the model
    datamodule = build_datamodule(cfg.data, init_from.carried(pretrained, cfg.data), source=pretrained)
    model = build("model", cfg.model, **model_arguments(cfg.model, datamodule, ckpt))
    if ckpt is not None:
        ckpt_io.check_compatible(ckpt, model, resume_from, allowed=model_overrides(changes or {}))
        # After the model check: data whose vocabulary changed are named by it; the same vocabulary is not enough.
        fingerprint.check(cfg.data, RunDir(cfg.run_dir).data_fingerprint)
    elif pretrained is not None:
        init_from.load_weights(model, pretrained)
    if L.pytorch.utilities.rank_zero_only.rank == 0:
        run_dirs.lock(cfg.run_dir)  # one writer per run directory: the first write of a new run
    run = Run(cfg, RunDir(cfg.run_dir), datamodule, model, resume_from, dict(changes or {}), speed_options)
    if keep:
        _prepared[str(run.dir.path.resolve())] = run
    return run


def take(cfg: DictConfig, overrides: list[str] | None = None, changes: dict | None = None) -> Run:
    """The run the preflight prepared for ``cfg.run_dir`` in this process, or one prepared now."""
    kept = _prepared.pop(str(Path(cfg.run_dir).resolve()), None)
    return kept if kept is not None else prepare(cfg, overrides, changes)


# ---- checks before anything is built ---------------------------------------------------------------------
def check_task(cfg: DictConfig) -> None:
    """The model, the data and the metric protocol must agree on the task (docs/CONTRACT.md), checked from their
    classes before anything is loaded or built; the message names the options that would fit."""
    from gen_lightning.config import data_for, protocols_for
    from gen_lightning.tasks import describe, task_of

    model_cls, data_cls = configured_class(cfg.model, "model"), configured_class(cfg.data, "data")
    task = task_of(model_cls)
    if task_of(data_cls) != task:
        fits = data_for(task)
        raise ValueError(
            f"the model {model_cls.__name__} does {describe(task)}, but the data ({data_cls.__name__}) provides "
            f"{describe(task_of(data_cls))}; "
            + (
                f"data configs that fit it: {', '.join(f'data={d}' for d in fits)}"
                if fits
                else "no data config fits it"
            )
        )
    if cfg.get("metrics") and "_target_" in cfg.metrics:
        protocol = configured_class(cfg.metrics, "metrics")
        if task not in getattr(protocol, "tasks", ()):
            fits = protocols_for(task)
            raise ValueError(
                f"the metric protocol {protocol.__name__} does not score {describe(task)} models like "
                f"{model_cls.__name__}; " + ", ".join([*(f"metrics={p}" for p in fits), "metrics=none"]) + " would"
            )


def configured_class(node: DictConfig, key: str) -> type:
    target = node.get("_target_") if isinstance(node, DictConfig) else None
    if not target:
        raise ValueError(f"'{key}' names no class (_target_): choose a config, e.g. {key}=<name> (see fit --help)")
    try:
        return get_class(target)
    except Exception as err:
        raise ValueError(f"{key}._target_={target} cannot be imported: {err}") from err


# Size hyper-parameters: a width, depth, head count or latent size of 0 builds a model that learns nothing.
SIZE_SUFFIXES = ("_dim", "_size", "_layers", "_heads", "_blocks", "_channels", "_timesteps")


def check_config(cfg: DictConfig) -> None:
    """Values no component checks before they do harm (a seed NumPy rejects mid-set-up, a learning rate of 0, a
    width of 0, a learning rate that is not a number), each refused in one line naming the key."""
    if not isinstance(cfg.seed, int) or isinstance(cfg.seed, bool) or not 0 <= cfg.seed < 2**32:
        raise ValueError(f"seed must be an integer in [0, 2**32), got {cfg.seed!r}")
    check_model_values(cfg.model)
    for key in ("max_steps", "max_epochs"):
        value = cfg.trainer.get(key)
        if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < -1):
            raise ValueError(f"trainer.{key} must be an integer >= -1 (-1: no limit), got {value!r}")
    loggers.check_available(cfg.get("logger"))
    check_monitor_schedule(cfg)
    threads.check(cfg.get("threads", "auto"))


def monitored(cfg: DictConfig, model) -> tuple[str, str]:
    """The run's monitored validation metric and its mode (``min``/``max``): ``checkpoint.monitor``/``mode``, else
    the model's ``monitor`` (a class attribute: ``model`` may be the class). best.ckpt and a search's objective
    follow it."""
    monitor = cfg.checkpoint.monitor or model.monitor[0]
    return monitor, cfg.checkpoint.mode or (model.monitor[1] if monitor == model.monitor[0] else "min")


def check_hardware(cfg: DictConfig) -> None:
    """This machine can run the trainer as configured (a study may plan GPU runs elsewhere; a fit runs here)."""
    accelerator = cfg.trainer.get("accelerator")
    if accelerator in ("gpu", "cuda") and not torch.cuda.is_available():
        raise ValueError(
            f"trainer.accelerator={accelerator}, but no CUDA GPU is available here: use trainer=cpu, or run where "
            "`python -c 'import torch; print(torch.cuda.is_available())'` prints True"
        )


def check_monitor_schedule(cfg: DictConfig) -> None:
    """The monitored metric (``best.ckpt``, a search's objective) must be computed at every validation: Lightning's
    ModelCheckpoint stops the run at the first validation without it. A metric protocol's metric is computed after
    every ``metrics.every_n_epochs``-th validation epoch only (0: only once training has ended)."""
    if not cfg.get("metrics") or "_target_" not in cfg.metrics:
        return
    model_cls = configured_class(cfg.model, "model")
    monitor, _ = monitored(cfg, model_cls)
    if monitor in getattr(model_cls, "metric_directions", {}):
        return  # the model logs it at every validation itself
    with warnings.catch_warnings():  # its settings' advice is for the run, which gives it again
        warnings.simplefilter("ignore")
        protocol = build("metrics", cfg.metrics)
    every = protocol.every_n_epochs
    if monitor in protocol.directions() and every != 1:
        when = "only once training has ended" if every == 0 else f"only after every {every}th validation epoch"
        raise ValueError(
            f"checkpoint.monitor={monitor} is computed by the metric protocol {when} (metrics.every_n_epochs="
            f"{every}), but best.ckpt needs it at every validation: set metrics.every_n_epochs=1 (and space the "
            "validations with trainer.check_val_every_n_epoch), or monitor a metric the model logs"
        )


def check_model_values(model: DictConfig) -> None:
    """Each ``model.KEY`` against its constructor argument's type, and the shared rules of the hyper-parameter
    vocabulary (docs/CONTRACT.md): sizes (``*_dim``, ``num_*``...) >= 1, learning rates > 0, dropout in [0, 1)."""
    hints = constructor_types(configured_class(model, "model"))
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


def check_budget(cfg: DictConfig, ckpt: dict, path: Path) -> None:
    """A resume must leave something to do: ``trainer.max_steps`` below the steps already done is refused."""
    done, budget = int(ckpt.get("global_step", 0)), cfg.trainer.get("max_steps")
    if isinstance(budget, int) and budget != -1 and budget < done:
        raise RunDirError(
            f"trainer.max_steps={budget} is below the {done} steps this run has done ({path}): a resume can only "
            f"continue, so give trainer.max_steps above {done} (nothing was written)"
        )


def checkpoint_to_resume(cfg: DictConfig) -> tuple[Path | None, dict | None]:
    """Check ``run_dir`` against ``resume`` and return the checkpoint to resume from and its content, read once
    (``(None, None)`` for a new run).

    A resume removes what writers killed mid-write left (temporary files beside the checkpoints), and when
    ``last.ckpt`` is missing, cut short or corrupt it continues from the newest readable checkpoint of the run and
    says so."""
    run_dir = Path(cfg.run_dir)
    if run_dir.exists() and not run_dir.is_dir():
        raise RunDirError(f"run_dir={run_dir} is a file, not a directory: choose another run_dir")
    existing = next(p for p in (run_dir, *run_dir.resolve().parents) if p.exists())
    if not os.access(existing, os.W_OK | os.X_OK):
        raise RunDirError(f"run_dir={run_dir} cannot be written ({existing} is not writable): choose another run_dir")
    layout = RunDir(run_dir)
    if not cfg.resume:
        if layout.last.exists():
            raise RunDirError(
                f"run_dir={run_dir} already holds a run ({layout.last}); pass resume=true to continue it, "
                "or choose another run_dir (nothing was overwritten)"
            )
        return None, None
    for folder in (layout.path, layout.checkpoints):
        for stale in remove_stale_temporaries(folder):
            warnings.warn(f"removed {stale}, a file left by a write that was cut short", stacklevel=2)
    candidates = sorted(layout.checkpoints.glob("*.ckpt"), key=lambda p: (p != layout.last, -p.stat().st_mtime))
    if not candidates:
        raise RunDirError(f"resume=true but '{layout.last}' does not exist: nothing to resume in run_dir={run_dir}")
    problems = []
    for path in candidates:
        try:
            ckpt = ckpt_io.read(path)
        except ckpt_io.CheckpointError as err:
            if "not a checkpoint this tool trusts" in str(err):
                raise
            problems.append(f"{path.name}: {err}")
            continue
        if problems:
            warnings.warn(
                f"resuming from {path} (step {ckpt.get('global_step', '?')}), the newest readable checkpoint of the "
                f"run, because {'; '.join(problems)}",
                stacklevel=2,
            )
        return path, ckpt
    raise ckpt_io.CheckpointError(f"no checkpoint of run_dir={run_dir} can be read ({'; '.join(problems)})")


# ---- building -------------------------------------------------------------------------------------------
def model_arguments(model_cfg: DictConfig, datamodule, ckpt: dict | None) -> dict:
    """The constructor arguments besides ``model_cfg``: the data's shape facts, and on resume what the model
    recorded at its first construction that the config leaves null (a frozen sub-model's description: the
    latent diffusion model's ``autoencoder``), so a resume needs the checkpoint alone."""
    given = datamodule.model_kwargs()
    if ckpt is None or declared.current(ckpt[STATE_KEY]["target"]) != model_cfg._target_:
        return given  # another class: check_compatible names it
    accepted = inspect.signature(configured_class(model_cfg, "model")).parameters
    saved = ckpt.get("hyper_parameters", {})
    return given | {
        k: v
        for k, v in saved.items()
        if k in accepted and v is not None and k not in given and model_cfg.get(k) is None
    }


def build(what: str, node: DictConfig, **kwargs):
    """``instantiate(node, **kwargs)`` with the constructor's own message in one line (Hydra wraps it in four)."""
    try:
        return instantiate(node, **kwargs, _convert_="all")
    except InstantiationException as err:
        cause = err.__cause__ or err
        if isinstance(cause, ValueError | TypeError | KeyError | OSError):
            raise ValueError(f"{what}: {cause}") from err
        raise


def build_datamodule(data_cfg: DictConfig, carried: dict | None = None, source=None, stage: str | None = "fit"):
    """Instantiate the data module (with ``carried`` constructor arguments, e.g. a pre-trained tokenizer), prepare
    and set it up for ``stage``. ``source``: where ``carried`` came from, for the message when the data do not fit."""
    from gen_lightning.data.text.tokenizers import VocabularyError

    datamodule = build("data", data_cfg, **(carried or {}))
    try:
        datamodule.prepare_data()
        if stage is not None:
            datamodule.setup(stage)
    except VocabularyError as err:
        if not carried:
            raise
        raise init_from.InitFromError(
            f"the data does not fit the tokenizer of init_from={source.path} ({err}). Pre-train on text that "
            "covers this data (or with a byte or subword tokenizer), or train this run from scratch."
        ) from err
    return datamodule


@dataclass
class SavedRun:
    """A run read back from its directory; see the file docstring."""

    dir: RunDir
    cfg: DictConfig

    @classmethod
    def at(cls, run_dir: str | Path) -> SavedRun:
        layout = RunDir(run_dir)
        return cls(layout, declared.load_config(layout.config))

    @classmethod
    def of_checkpoint(cls, ckpt: str | Path) -> SavedRun:
        return cls.at(RunDir.of_checkpoint(ckpt).path)

    def datamodule(self, stage: str | None = "fit"):
        return build_datamodule(self.cfg.data, stage=stage)
