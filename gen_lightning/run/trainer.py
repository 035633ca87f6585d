"""The Lightning ``Trainer`` of a run, from ``cfg.trainer``: its options as configured (object options such as a
profiler built from their ``_target_``), validation on a step schedule where an epoch is long
(``validation.every_n_steps``), checkpoints written whole (``AtomicCheckpointIO``), and no distributed sampler of
Lightning's (ours shard by rank themselves, for exact resume and unpadded evaluation).
"""

from __future__ import annotations

from pathlib import Path

import lightning as L
from hydra.utils import instantiate
from lightning.pytorch.callbacks import ProgressBar
from lightning.pytorch.utilities.exceptions import MisconfigurationException
from omegaconf import DictConfig, OmegaConf

from gen_lightning.callbacks.checkpointing import AtomicCheckpointIO
from gen_lightning.callbacks.validation import step_schedule


def build_trainer(cfg: DictConfig, run_dir: Path, callbacks: list, logger: list, datamodule) -> L.Trainer:
    """The trainer of ``cfg`` for the run in ``run_dir`` (see the file docstring); ``datamodule``: the run's data,
    whose epoch length sets the validation schedule."""
    batches = epoch_length(datamodule)
    options = OmegaConf.to_container(cfg.trainer, resolve=True)  # plain: Lightning type-checks some arguments
    options |= {k: instantiate(v) for k, v in options.items() if isinstance(v, dict) and "_target_" in v}
    # Epochs longer than validation.every_n_steps batches (a text corpus) also validate on that step schedule.
    options |= step_schedule(options, batches, cfg.get("validation", {}).get("every_n_steps"))
    if not options.get("enable_progress_bar", True):  # Lightning refuses a progress bar callback then
        callbacks = [cb for cb in callbacks if not isinstance(cb, ProgressBar)]
    try:
        return L.Trainer(
            **options,
            default_root_dir=str(run_dir),
            callbacks=callbacks,
            logger=logger or False,
            use_distributed_sampler=False,  # our samplers shard by rank themselves (exact resume, unpadded eval)
            plugins=[AtomicCheckpointIO()],  # checkpoints written whole or not at all, in their own folder
        )
    except (TypeError, ValueError, MisconfigurationException) as err:
        raise ValueError(f"the trainer settings do not fit Lightning's Trainer: {err}") from err


def epoch_length(datamodule) -> int | None:
    """Batches of one training epoch (None for a loader without a length)."""
    try:
        return len(datamodule.train_dataloader())
    except TypeError:
        return None
