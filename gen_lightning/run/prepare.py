"""A run prepared once: the one owner of everything that happens before training starts.

``prepare(cfg, overrides)`` takes the steps below in this order, each in its own module, and refuses anything wrong
before a file is written:

1. the resume decided (``resume_policy``): the config the run continues with, what its command line may change,
   the checkpoint to continue from, read once (a run directory another live process holds is refused first);
2. the config checked (``checks``): task, values, monitored metric, hardware, loggers;
3. the host's speed options chosen (``nn/host.py``), everything seeded;
4. the pre-trained weights of ``init_from`` read (``init_from``), the data module and the model built (``build``),
   then given the weights: checked against the resumed checkpoint, or loaded from ``init_from``;
   torch's threads chosen for the model's size (``threads``, which checks the ``threads`` setting);
5. the data files fingerprinted, and checked on resume (``fingerprint``);
6. the run directory locked and laid out (``run_dir``): the first write of the run.

``gen-lightning fit`` prepares in its preflight, before Hydra creates the run directory, and ``train.fit`` takes
that prepared run (``take``) instead of doing the work again; a caller of ``train.fit(cfg)`` without a preflight
(tests, studies in process, DDP children) gets it prepared there. The ``Run`` holds the directory's lock until it
is closed (``with run:``).

``SavedRun`` is the other side: a run read back from its directory (``sample``, ``evaluate``, study evaluations,
``init_from``): its config with every ``_target_`` declared (``declared.py``), its data module rebuilt one way.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import lightning as L
from lightning.pytorch.utilities import rank_zero_only
from omegaconf import DictConfig

from gen_lightning import run_dir as run_dirs
from gen_lightning.callbacks.resume import seed_all
from gen_lightning.nn import host
from gen_lightning.run import checkpoint as ckpt_io
from gen_lightning.run import checks, declared, fingerprint, init_from, resume_policy, threads
from gen_lightning.run.build import build_datamodule, build_model
from gen_lightning.run_dir import RunDir


@dataclass
class Run:
    cfg: DictConfig
    dir: RunDir
    datamodule: L.LightningDataModule
    model: L.LightningModule
    monitor: tuple[str, str]  # the monitored metric and its mode (checks.monitored)
    resume_from: Path | None = None  # the checkpoint a resume continues from
    changes: dict = field(default_factory=dict)  # what the resume's command line changed: {key: [saved, new]}
    speed_options: list[str] = field(default_factory=list)  # the host-dependent choices, for the run's log
    num_params: int = 0  # trainable parameters (EMA copies and frozen sub-models excluded), for the reports
    threads: dict = field(default_factory=dict)  # torch's intra-op threads as chosen: {"threads": n, "why": ...}

    @property
    def model_overrides(self) -> dict:
        return resume_policy.model_overrides(self.changes)

    def __enter__(self) -> Run:
        return self

    def __exit__(self, *exc) -> None:
        """End the hold on the run directory (its lock), however the run ended."""
        if rank_zero_only.rank == 0:
            run_dirs.release(self.dir.path)


_prepared: dict[str, Run] = {}  # run directory -> the run its command's preflight prepared in this process


def prepare(cfg: DictConfig, overrides: list[str] | None = None, changes: dict | None = None, keep=False) -> Run:
    """The run of ``cfg`` ready to train (see the file docstring). ``overrides``: the command line as typed, from
    which a resume reads its saved config and what may change; without them ``cfg`` is taken as resolved already
    (``resume_policy.resolve_for_resume``), with ``changes`` what that resolution accepted. ``keep``: hand it to
    the next ``take`` in this process (the preflight of ``gen-lightning fit``)."""
    resume = resume_policy.resume(cfg, overrides, changes)
    cfg, changes, resume_from, ckpt = resume.cfg, resume.changes, resume.path, resume.ckpt
    checked = checks.checked(cfg)
    speed_options = host.choose_speed_options(cfg)  # trainer.precision=auto resolved in cfg (saved as chosen)
    seed_all(cfg.seed)
    pretrained = init_from.take(cfg, resume_from, ckpt, overrides)  # the body's shape, before the model
    if pretrained is None:
        datamodule = build_datamodule(cfg.data)
    else:
        datamodule = build_datamodule(cfg.data, pretrained.carried, source=pretrained.path)
    model = build_model(cfg.model, checked.model_cls, datamodule, ckpt)
    if ckpt is not None:
        ckpt_io.check_compatible(ckpt, model, resume_from, allowed=resume_policy.model_overrides(changes))
    elif pretrained is not None:
        init_from.load_weights(model, pretrained)
    num_params = sum(p.numel() for p in model.parameters() if p.requires_grad)
    chosen_threads = threads.apply(cfg, num_params)
    layout = RunDir(cfg.run_dir)
    # After the model check: data whose vocabulary changed are named by it; the same vocabulary is not enough.
    data_files = fingerprint.verified(cfg.data, layout.data_fingerprint if ckpt is not None else None)
    run = Run(cfg, layout, datamodule, model, (checked.monitor, checked.mode), resume_from, changes, speed_options,
              num_params, chosen_threads)  # fmt: skip
    if rank_zero_only.rank == 0:
        run_dirs.lock(layout.path)  # one writer per run directory: the first write of the run
        try:
            run_dirs.lay_out(layout.path, cfg, data_files, changes if resume_from is not None else None)
        except BaseException:
            run_dirs.release(layout.path)
            raise
    if keep:
        _prepared[str(layout.path.resolve())] = run
    return run


def take(cfg: DictConfig, overrides: list[str] | None = None, changes: dict | None = None) -> Run:
    """The run the preflight prepared for ``cfg.run_dir`` in this process, or one prepared now."""
    kept = _prepared.pop(str(Path(cfg.run_dir).resolve()), None)
    return kept if kept is not None else prepare(cfg, overrides, changes)


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
