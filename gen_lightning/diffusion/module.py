"""DDPM (Ho et al. 2020) as a LightningModule: a U-Net denoiser trained with the simple loss, sampled by DDPM,
DDIM (Song et al. 2021), DPM-Solver++(2M) (Lu et al. 2022) or Heun/EDM (Karras et al. 2022) from its exponential
moving average, optionally class-conditional with classifier-free guidance (Ho & Salimans 2022), and able to
inpaint (RePaint, Lugmayr et al. 2022) and to edit a given image (SDEdit, Meng et al. 2021, ``edit.py``),
optionally steered to another class.

The module composes two independent parts: ``self.net`` (``nets.UNet``, no knowledge of the schedule) and
``self.process`` (``process.GaussianDiffusion``, which takes the network as an argument).

Arguments left ``None`` come from ``SIZE_PRESETS`` by image side, and the resolved values are the ones saved
in the checkpoint.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence

import torch
from torchmetrics import MeanMetric

from gen_lightning.diffusion.edit import sdedit
from gen_lightning.diffusion.nets import UNet
from gen_lightning.diffusion.process import Denoiser, GaussianDiffusion, inpaint_mask
from gen_lightning.diffusion.solvers import evaluations
from gen_lightning.nn.ema import EMA
from gen_lightning.nn.image_model import ImageModel
from gen_lightning.nn.sampling import evaluating

# The U-Net, schedule and optimisation by image side (like DiT's size table): the first row whose side is at least
# the image's fills every argument left None. Up to 16x16: a 0.18M-parameter U-Net, trained fast (lr 1e-3, as small
# U-Nets usually are, e.g. The Annotated Diffusion Model on 28x28), with the cosine schedule that Nichol & Dhariwal
# 2021 (section 3.2) found better for small images; measured on the 8x8 digits, 460 steps: FID_clf 48 (cosine) vs
# 64 (linear), 236 with the 32x32 row's lr, warm-up and dropout. 32x32: Ho et al.'s CIFAR-10 settings on a narrower
# U-Net (their hidden_dim 128, channel_mult (1, 2, 2, 2)). Larger: improved-diffusion's 64x64 U-Net (Nichol &
# Dhariwal 2021: channel_mult (1, 2, 3, 4), lr 1e-4).
SIZE_PRESETS: tuple[tuple[float, dict], ...] = (
    (16, dict(hidden_dim=16, channel_mult=(1, 2), num_res_blocks=1, dropout=0.0, schedule="cosine", lr=1e-3,
              warmup_steps=100)),
    (32, dict(hidden_dim=64, channel_mult=(1, 2, 2), num_res_blocks=2, dropout=0.1, schedule="linear", lr=2e-4,
              warmup_steps=1000)),
    (math.inf, dict(hidden_dim=128, channel_mult=(1, 2, 3, 4), num_res_blocks=2, dropout=0.1, schedule="linear",
                    lr=1e-4, warmup_steps=1000)),
)  # fmt: skip


def size_preset(image_size: int) -> dict:
    """The ``SIZE_PRESETS`` row of an image side."""
    return next(dict(row) for side, row in SIZE_PRESETS if image_size <= side)


class DDPM(ImageModel):
    """Denoising diffusion probabilistic model of ``channels x image_size x image_size`` images in [-1, 1]."""

    monitor = ("val/loss", "min")
    metric_directions = {"val/loss": "min", "val/sample_time": "min"}
    sample_modes = ("inpaint", "edit")
    sampling_network = "net"
    default_labels = "in_turn"

    def __init__(
        self,
        channels: int,
        image_size: int,
        num_classes: int = 0,
        hidden_dim: int | None = None,
        channel_mult: Sequence[int] | None = None,
        num_res_blocks: int | None = None,
        attention_resolutions: Sequence[int] = (16,),
        num_heads: int = 1,
        dropout: float | None = None,
        num_timesteps: int = 1000,
        schedule: str | None = None,
        prediction: str = "epsilon",
        variance: str = "small",
        conditional: bool = False,
        p_uncond: float = 0.1,
        guidance: float = 1.0,
        lr: float | None = None,
        betas: Sequence[float] = (0.9, 0.999),
        weight_decay: float = 0.0,
        warmup_steps: int | None = None,
        ema_decay: float = 0.9999,
        sampler: str = "ddim",
        sample_steps: int | None = 20,
        eta: float = 0.0,
        sample_time_batch: int = 4,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        preset = size_preset(image_size)
        for key, value in preset.items():  # the arguments given win; the checkpoint keeps the resolved values
            if self.hparams[key] is None:
                self.hparams[key] = list(value) if isinstance(value, tuple) else value
        hp = self.hparams
        self.condition_on_classes(conditional, num_classes)
        if not 0.0 <= p_uncond < 1.0:
            raise ValueError(f"p_uncond (label dropout for classifier-free guidance) must be in [0, 1), got {p_uncond}")
        self.net = UNet(
            channels,
            image_size,
            hidden_dim=hp.hidden_dim,
            channel_mult=list(hp.channel_mult),
            num_res_blocks=hp.num_res_blocks,
            attention_resolutions=list(attention_resolutions),
            num_heads=num_heads,
            dropout=hp.dropout,
            num_classes=self.num_conditional_classes,
        )
        self.process = GaussianDiffusion(num_timesteps, hp.schedule, prediction, variance)
        # 0 (or null) disables the average; EMA itself rejects decays outside [0, 1).
        self.ema = EMA(self.net, decay=ema_decay) if ema_decay else None
        self.val_loss = MeanMetric()
        self._sampling_options(None, None, None, None)  # fail now, not at the first validation, on bad defaults

    # ---- training ------------------------------------------------------------------------------------------

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor:
        x0, labels = batch  # (B, C, H, W) in [-1, 1], (B,)
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
        x0, labels = batch
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
        opts = self._sampling_options(sampler, steps, eta, guidance)
        labels = self.sample_labels(n, labels)
        shape = (n, self.hparams.channels, self.hparams.image_size, self.hparams.image_size)
        with evaluating(self):
            model = self._denoiser(labels, opts.pop("guidance"))
            return self.process.sample(model, shape, generator, **opts).clamp(-1, 1)

    def inpaint(
        self,
        images: torch.Tensor,
        mask: str | torch.Tensor = "center",
        generator: torch.Generator | None = None,
        labels: torch.Tensor | None = None,
        sampler: str | None = None,
        steps: int | None = None,
        eta: float | None = None,
        guidance: float | None = None,
        resample: int = 1,
        jump: int = 10,
    ) -> torch.Tensor:
        """Complete ``images`` (N, C, H, W) outside ``mask`` (a name from ``process.MASKS``, or a boolean
        tensor broadcastable to the images, True = known); ``resample > 1`` adds RePaint's jumps of ``jump``
        steps."""
        images = images.to(self.device)
        known = self._mask(mask, images.shape)
        opts = self._sampling_options(sampler, steps, eta, guidance)
        labels = self.sample_labels(images.shape[0], labels)
        with evaluating(self):
            model = self._denoiser(labels, opts.pop("guidance"))
            out = self.process.sample(
                model,
                tuple(images.shape),
                generator,
                known=images,
                mask=known,
                resample=resample,
                jump=jump,
                **opts,
            )
            return torch.where(known, images, out.clamp(-1, 1))

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
        """SDEdit (``edit.py``): ``images`` (N, C, H, W) noised to ``strength`` and denoised. A conditional model
        is steered to ``labels`` (one class or N; -1 or None: no class, the unconditional prediction) with the
        configured or given classifier-free ``guidance``."""
        images = images.to(self.device)
        opts = self._sampling_options(sampler, steps, eta, guidance)
        with evaluating(self):
            model = self._denoiser(self._edit_labels(images.shape[0], labels), opts.pop("guidance"))
            return sdedit(self.process, model, images, strength, generator, **opts).clamp(-1, 1)

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

    def render(
        self,
        mode: str,
        images: torch.Tensor,
        labels: torch.Tensor,
        mask: str | torch.Tensor = "center",
        n: int = 1,
        **options,
    ) -> tuple[torch.Tensor, int]:
        """``inpaint``: (original, masked input, completion) triplets side by side; ``edit``: (original, edit)
        pairs. ``n`` results per image (repeated inputs, different noise). Returns the images in [-1, 1] and the
        number of columns (about as many rows as groups per row)."""
        if mode not in self.sample_modes:
            raise ValueError(f"unknown sample mode {mode!r}; DDPM offers {list(self.sample_modes)}")
        images = images.to(self.device).repeat_interleave(n, dim=0)
        labels = torch.as_tensor(labels).to(self.device)
        labels = labels.repeat_interleave(n, dim=0) if labels.dim() and len(labels) > 1 else labels
        if mode == "edit":
            edited = self.edit(images, labels=labels, **options)
            return torch.stack([images, edited], dim=1).flatten(0, 1), 2 * math.ceil(math.sqrt(images.shape[0]))
        known = self._mask(mask, images.shape)
        completed = self.inpaint(images, known, labels=labels if self.num_conditional_classes else None, **options)
        masked = torch.where(known, images, torch.zeros_like(images))  # the hidden region shown grey
        grid = torch.stack([images, masked, completed], dim=1).flatten(0, 1)  # (3N, C, H, W)
        return grid, 3 * math.ceil(math.sqrt(images.shape[0]))

    def preview(self, batch: tuple[torch.Tensor, torch.Tensor], generator: torch.Generator) -> dict[str, torch.Tensor]:
        """Samples from the fixed noise of ``generator`` (conditional: the batch's classes), at most 64."""
        images, labels = batch
        n = min(images.shape[0], 64)
        labels = labels[:n].to(self.device) if self.num_conditional_classes else None
        return {"samples": self.sample(n, generator, labels=labels)}

    def sample_info(self) -> dict:
        """What ``sample()`` uses by default: one key per sampler setting, so numbers never mix samplers."""
        opts = self._sampling_options(None, None, None, None)
        steps = len(self.process.timesteps(opts["sampler"], opts["steps"])) - 1
        return {
            "sampler": opts["sampler"],
            "steps": steps,
            "evaluations": evaluations(opts["sampler"], steps),  # of the network per image (Heun: 2 steps - 1)
            "eta": opts["eta"] if opts["sampler"] == "ddim" else None,
            **super().sample_info(),
            "guidance": opts["guidance"],
        }

    # ---- helpers -------------------------------------------------------------------------------------------

    def _sampling_options(self, sampler, steps, eta, guidance) -> dict:
        hp = self.hparams
        sampler = sampler or hp.sampler
        if steps is None and sampler != "ddpm":
            steps = hp.sample_steps  # the configured step count is DDIM's or a solver's; DDPM runs all T steps
        eta = hp.eta if eta is None else eta
        if not 0.0 <= eta <= 1.0:
            raise ValueError(f"DDIM eta must be in [0, 1], got {eta}")
        if guidance is not None and not self.num_conditional_classes:
            raise ValueError("guidance needs a class-conditional model (conditional: true)")
        guidance = (hp.guidance if guidance is None else guidance) if self.num_conditional_classes else None
        self.process.timesteps(sampler, steps)  # validates sampler and steps
        return {"sampler": sampler, "steps": steps, "eta": eta, "guidance": guidance}

    def _mask(self, mask: str | torch.Tensor, shape: torch.Size) -> torch.Tensor:
        if isinstance(mask, str):
            return inpaint_mask(mask, tuple(shape), self.device)
        mask = torch.as_tensor(mask, device=self.device)
        if mask.dtype != torch.bool:
            raise ValueError(f"an inpainting mask tensor must be boolean (True = known pixel), got {mask.dtype}")
        return mask.expand(shape)

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
