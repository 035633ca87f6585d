"""Optimizer settings changed on resume (``resume=true model.lr=1e-3``) set in the restored optimizers.

Lightning restores each optimizer's state dict, hyperparameters included, after the module was rebuilt with the new
constructor arguments: the checkpoint's learning rate would silently win. When training starts (after the
restore), this callback builds the optimizers the module now configures, and copies their hyperparameters (every
param-group key but the parameters) into the restored ones, keeping the restored moments. A ``LambdaLR`` schedule
(the sequence families' warm-up + cosine) takes the new factor function and base rates, and the current rate is
recomputed at the restored step; another scheduler type cannot take a new rate, which is said, not ignored.
"""

from __future__ import annotations

import lightning as L
import torch
from lightning.pytorch.core.optimizer import _init_optimizers_and_lr_schedulers


class OptimizerOverrides(L.Callback):
    def __init__(self, keys: list[str]) -> None:
        self.keys = list(keys)  # the model.* arguments that changed, for messages

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        fresh_optimizers, fresh_schedulers = _init_optimizers_and_lr_schedulers(pl_module)
        for restored, fresh in zip(trainer.optimizers, fresh_optimizers):
            for group, new in zip(restored.param_groups, fresh.param_groups):
                group.update({k: v for k, v in new.items() if k != "params"})
        for config, new in zip(trainer.lr_scheduler_configs, fresh_schedulers):
            scheduler, fresh = config.scheduler, new.scheduler
            if isinstance(scheduler, torch.optim.lr_scheduler.LambdaLR):
                scheduler.lr_lambdas, scheduler.base_lrs = fresh.lr_lambdas, fresh.base_lrs
                for group, base, factor in zip(
                    scheduler.optimizer.param_groups, scheduler.base_lrs, scheduler.lr_lambdas
                ):
                    group["lr"] = base * factor(scheduler.last_epoch)
            elif scheduler.base_lrs != fresh.base_lrs:
                raise ValueError(
                    f"resume changed {', '.join(self.keys)}, but the restored {type(scheduler).__name__} schedule "
                    "cannot take another learning rate; start a new run instead"
                )
