"""Stop a run at the first non-finite training loss, before the bad state can be checkpointed.

Lightning has no default guard (``terminate_on_nan`` is gone). This callback runs before ``ModelCheckpoint``
(Lightning orders checkpoint callbacks last), so raising here leaves ``last.ckpt`` at the last good state.
"""

from __future__ import annotations

import math

import lightning as L
import torch

from gen_lightning.run_dir import resumable_state


class NonFiniteLossError(RuntimeError):
    """A training loss became NaN or infinite."""


class FiniteLossGuard(L.Callback):
    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        values = {}
        if isinstance(outputs, dict) and "loss" in outputs:
            values["loss"] = outputs["loss"]
        elif isinstance(outputs, torch.Tensor):
            values["loss"] = outputs
        values.update({k: v for k, v in trainer.callback_metrics.items() if k.startswith("train/")})
        for name, value in values.items():
            v = float(value.detach()) if isinstance(value, torch.Tensor) else float(value)
            if not math.isfinite(v):
                state = resumable_state(trainer.default_root_dir)
                raise NonFiniteLossError(
                    f"{name} = {v} at step {trainer.global_step} (epoch {trainer.current_epoch}, batch "
                    f"{batch_idx}): training stopped. {state} Lower the learning rate (model.lr=... also on resume), "
                    "clip gradients (trainer.gradient_clip_val or model.gradient_clip_val) or check the data."
                )
