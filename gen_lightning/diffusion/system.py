"""What a diffusion LightningModule shares whatever space it diffuses in: training with the simple loss and
classifier-free guidance's label dropout, a fixed validation loss, the EMA, the optimiser, and sampling and
SDEdit with any sampler of ``samplers/`` and classifier-free guidance (Ho & Salimans 2022).

A subclass (``module.DDPM`` in pixel space, ``latent_diffusion.module.LatentDDPM`` in an autoencoder's latent
space) saves its hyperparameters (at least ``p_uncond``, ``lr``, ``betas``, ``weight_decay``, ``warmup_steps``,
``sampler``, ``sample_steps``, ``eta``, ``guidance``, ``sample_time_batch``), assigns ``self.net`` (the denoiser
``net(x_t, t[, labels])``), ``self.process`` (``process.GaussianDiffusion``) and ``self.ema``, and says where
its samples live:
- ``sample_shape(n)``: the shape of ``n`` samples of the diffused variable, (n, C, H, W) or (n, D), any shape;
- ``encode(images)``: images (B, C, H, W) in [-1, 1] -> the diffused variable (identity in pixel space);
- ``decode(x)``: the diffused variable -> images in [-1, 1].
"""

from __future__ import annotations

import math
import time

import torch
from torchmetrics import MeanMetric

from gen_lightning.diffusion.edit import sdedit
from gen_lightning.diffusion.samplers import Denoiser, Sampler, get_sampler, make_sampler
from gen_lightning.nn.eval_mode import evaluating
from gen_lightning.nn.image_model import ImageModel


class DiffusionSystem(ImageModel):
    """The diffusion family's shared LightningModule (see the file docstring for what a subclass provides)."""

    monitor = ("val/loss", "min")
    metric_directions = {"val/loss": "min", "val/sample_time": "min"}
    sampling_network = "net"
    default_labels = "in_turn"

    def __init__(self) -> None:
        super().__init__()
        self.val_loss = MeanMetric()

    # ---- where the samples live (a subclass overrides) -----------------------------------------------------

    def sample_shape(self, n: int) -> tuple[int, ...]:
        raise NotImplementedError

    def encode(self, images: torch.Tensor) -> torch.Tensor:
        return images

    def decode(self, x: torch.Tensor) -> torch.Tensor:
        return x.clamp(-1, 1)

    # ---- training ------------------------------------------------------------------------------------------

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor:
        images, labels = batch  # (B, C, H, W) in [-1, 1], (B,)
        x0 = self.encode(images)
        t = torch.randint(0, self.process.num_timesteps, (x0.shape[0],), device=x0.device)
        noise = torch.randn_like(x0)
        kwargs = {}
        if self.num_conditional_classes:
            # Classifier-free guidance training: drop the label to the null class with probability p_uncond.
            drop = torch.rand(x0.shape[0], device=x0.device) < self.hparams.p_uncond
            kwargs["labels"] = labels.masked_fill(drop, self.num_conditional_classes)
        loss = self.process.training_losses(self.net, x0, t, noise, kwargs).mean()
        self.log("train/loss", loss, prog_bar=True)
        return loss

    def optimizer_step(self, *args, **kwargs) -> None:
        super().optimizer_step(*args, **kwargs)
        self.update_ema()  # once per optimizer step, also under gradient accumulation

    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        images, labels = batch
        x0 = self.encode(images)
        # Fixed timesteps and noise per batch index, from a private generator: the loss is comparable across
        # epochs and validation never draws from the global RNG (exact resume), whatever the callbacks.
        g = torch.Generator().manual_seed(batch_idx)
        t = torch.randint(0, self.process.num_timesteps, (x0.shape[0],), generator=g).to(x0.device)
        noise = self.noise(x0.shape, g)
        kwargs = {"labels": labels} if self.num_conditional_classes else {}
        losses = self.process.training_losses(self.sampling_net(), x0, t, noise, kwargs)  # (B,)
        self.val_loss.update(losses)
        self.log("val/loss", self.val_loss, on_step=False, on_epoch=True, prog_bar=True)

    def on_validation_epoch_end(self) -> None:
        # Wall-clock seconds per image of the configured sampler, on a small fixed batch.
        n = self.hparams.sample_time_batch
        if n <= 0 or self.trainer.sanity_checking:
            return
        self._synchronize()
        start = time.perf_counter()
        self.sample(n, torch.Generator(self.device).manual_seed(0))  # noise drawn where it is used
        self._synchronize()
        self.log("val/sample_time", (time.perf_counter() - start) / n, sync_dist=True)

    def configure_optimizers(self):
        opt = torch.optim.AdamW(
            self.net.parameters(),
            lr=self.hparams.lr,
            betas=tuple(self.hparams.betas),
            weight_decay=self.hparams.weight_decay,
        )
        warmup = max(1, self.hparams.warmup_steps)  # linear warm-up (Ho et al.: 5000 steps)
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda step: min(1.0, (step + 1) / warmup))
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}

    # ---- sampling ------------------------------------------------------------------------------------------

    def sample(
        self,
        n: int,
        generator: torch.Generator | None = None,
        sampler: str | None = None,
        steps: int | None = None,
        eta: float | None = None,
        labels: torch.Tensor | None = None,
        guidance: float | None = None,
    ) -> torch.Tensor:
        """``n`` images (n, C, H, W) in [-1, 1]; options default to the configured ones (see ``sample_info``).

        A conditional model without ``labels`` draws the classes in turn (0, 1, ..., num_classes - 1, 0, ...).
        """
        if n < 1:
            raise ValueError(f"number of samples must be positive, got {n}")
        chosen, guidance = self._sampling_options(sampler, steps, eta, guidance)
        labels = self.sample_labels(n, labels)
        with evaluating(self):
            model = self._denoiser(labels, guidance)
            return self.decode(self.process.sample(model, self.sample_shape(n), generator, chosen))

    def edit(
        self,
        images: torch.Tensor,
        strength: float = 0.5,
        generator: torch.Generator | None = None,
        labels=None,
        sampler: str | None = None,
        steps: int | None = None,
        eta: float | None = None,
        guidance: float | None = None,
    ) -> torch.Tensor:
        """SDEdit (``edit.py``) of ``images`` (N, C, H, W) in the diffused space: encoded, noised to ``strength``,
        denoised, decoded. A conditional model is steered to ``labels`` (one class or N; -1 or None: no class, the
        unconditional prediction) with the configured or given classifier-free ``guidance``."""
        images = images.to(self.device)
        chosen, guidance = self._sampling_options(sampler, steps, eta, guidance)
        with evaluating(self):
            model = self._denoiser(self._edit_labels(images.shape[0], labels), guidance)
            return self.decode(sdedit(self.process, model, self.encode(images), strength, generator, chosen))

    def render_edit(self, images: torch.Tensor, labels, **options) -> tuple[torch.Tensor, int]:
        """(original, edit) pairs side by side, about as many rows as pairs per row. The images' own classes steer
        only a conditional model (an unconditional one ignores them, as inpainting does)."""
        edited = self.edit(images, labels=labels if self.num_conditional_classes else None, **options)
        return torch.stack([images, edited], dim=1).flatten(0, 1), 2 * math.ceil(math.sqrt(images.shape[0]))

    def preview(self, batch: tuple[torch.Tensor, torch.Tensor], generator: torch.Generator) -> dict[str, torch.Tensor]:
        """Samples from the fixed noise of ``generator`` (conditional: the batch's classes), at most 64."""
        images, labels = batch
        n = min(images.shape[0], 64)
        labels = labels[:n].to(self.device) if self.num_conditional_classes else None
        return {"samples": self.sample(n, generator, labels=labels)}

    def sample_info(self) -> dict:
        """What ``sample()`` uses by default: one key per sampler setting, so numbers never mix samplers."""
        chosen, guidance = self._sampling_options(None, None, None, None)
        return {**chosen.info(), **super().sample_info(), "guidance": guidance}

    # ---- helpers -------------------------------------------------------------------------------------------

    def _sampling_options(self, sampler, steps, eta, guidance) -> tuple[Sampler, float | None]:
        """The sampler (built and checked by the registry) and guidance of a call, defaults from the config."""
        hp = self.hparams
        name = sampler or hp.sampler
        if steps is None and not get_sampler(name).all_timesteps:
            steps = hp.sample_steps  # the configured step count; DDPM's ancestral sampler runs all T steps
        if guidance is not None and not self.num_conditional_classes:
            raise ValueError("guidance needs a class-conditional model (conditional: true)")
        guidance = (hp.guidance if guidance is None else guidance) if self.num_conditional_classes else None
        return make_sampler(name, self.process, steps, hp.eta if eta is None else eta), guidance

    def _edit_labels(self, n: int, labels) -> torch.Tensor | None:
        """Classes to steer to; unknown ones (-1, None) take the null class of classifier-free guidance."""
        k = self.num_conditional_classes
        if labels is None:
            return torch.full((n,), k, device=self.device) if k else None
        y = torch.as_tensor(labels, dtype=torch.long, device=self.device)
        y = y.reshape(()) if y.numel() == 1 else y  # labels=[7]: one class for every image
        y = y.expand(n) if y.dim() == 0 else y
        unknown = y < 0
        if bool(unknown.all()):
            return torch.full((n,), k, device=self.device) if k else None
        return torch.where(unknown, k, self.sample_labels(n, torch.where(unknown, 0, y)))  # checks shape, range

    def _denoiser(self, labels: torch.Tensor | None, guidance: float | None) -> Denoiser:
        net = self.sampling_net()
        if labels is None:
            return net
        if guidance == 1.0:
            return lambda x, t: net(x, t, labels)
        null = torch.full_like(labels, self.num_conditional_classes)

        def guided(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
            # Ho & Salimans eq. 6 written with s = 1 + w: out = uncond + s (cond - uncond); s = 1 is
            # conditional.
            cond, uncond = net(torch.cat([x, x]), torch.cat([t, t]), torch.cat([labels, null])).chunk(2)
            return uncond + guidance * (cond - uncond)

        return guided

    def _synchronize(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
