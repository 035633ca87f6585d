"""DDPM (Ho et al. 2020) as a LightningModule: a U-Net denoiser trained with the simple loss, sampled by DDPM,
DDIM (Song et al. 2021), DPM-Solver++(2M) (Lu et al. 2022) or Heun/EDM (Karras et al. 2022) from its exponential
moving average, optionally class-conditional with classifier-free guidance (Ho & Salimans 2022), and able to
inpaint (RePaint, Lugmayr et al. 2022) and to edit a given image (SDEdit, Meng et al. 2021, ``edit.py``),
optionally steered to another class.

The module composes two independent parts: ``self.net`` (``nets.UNet``, no knowledge of the schedule) and
``self.process`` (``process.GaussianDiffusion``, which takes the network as an argument); training, sampling,
SDEdit and guidance are ``system.DiffusionSystem``'s, shared with latent diffusion; DDPM adds the pixel shape of
its samples (``sample_shape``) and inpainting.

Arguments left ``None`` come from ``SIZE_PRESETS`` by image side, and the resolved values are the ones saved
in the checkpoint.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from gen_lightning.diffusion.nets import UNet
from gen_lightning.diffusion.process import GaussianDiffusion, inpaint_mask
from gen_lightning.diffusion.system import DiffusionSystem
from gen_lightning.nn.ema import EMA
from gen_lightning.nn.eval_mode import evaluating

# The U-Net, schedule and optimisation by image side (like DiT's size table): the first row whose side is at least
# the image's fills every argument left None. Up to 16x16: a 0.18M-parameter U-Net, trained fast (lr 1e-3, as small
# U-Nets usually are, e.g. The Annotated Diffusion Model on 28x28), with the cosine schedule that Nichol & Dhariwal
# 2021 (section 3.2) found better for small images; measured on the 8x8 digits, 460 steps: FID_clf 48 (cosine) vs
# 64 (linear), 236 with the 32x32 row's lr, warm-up and dropout. 32x32: Ho et al.'s CIFAR-10 settings on a narrower
# U-Net (their hidden_dim 128, channel_mult (1, 2, 2, 2)). Larger: improved-diffusion's 64x64 U-Net (Nichol &
# Dhariwal 2021: channel_mult (1, 2, 3, 4), lr 1e-4).
# Self-attention: up to 16x16, only in the middle block (the measured digits default; the levels of an 8x8 U-Net are
# 8 and 4); 28x28 and 32x32 at the 14x14 / 16x16 level (Ho et al.: 16x16); larger at 16x16.
SIZE_PRESETS: tuple[tuple[float, dict], ...] = (
    (16, dict(hidden_dim=16, channel_mult=(1, 2), num_res_blocks=1, attention_resolutions=(), dropout=0.0,
              schedule="cosine", lr=1e-3, warmup_steps=100)),
    (32, dict(hidden_dim=64, channel_mult=(1, 2, 2), num_res_blocks=2, attention_resolutions=(16, 14), dropout=0.1,
              schedule="linear", lr=2e-4, warmup_steps=1000)),
    (math.inf, dict(hidden_dim=128, channel_mult=(1, 2, 3, 4), num_res_blocks=2, attention_resolutions=(16,),
                    dropout=0.1, schedule="linear", lr=1e-4, warmup_steps=1000)),
)  # fmt: skip


def size_preset(image_size: int) -> dict:
    """The ``SIZE_PRESETS`` row of an image side."""
    return next(dict(row) for side, row in SIZE_PRESETS if image_size <= side)


class DDPM(DiffusionSystem):
    """Denoising diffusion probabilistic model of ``channels x image_size x image_size`` images in [-1, 1]."""

    sample_modes = ("inpaint", "edit")

    def __init__(
        self,
        channels: int,
        image_size: int,
        num_classes: int = 0,
        hidden_dim: int | None = None,
        channel_mult: Sequence[int] | None = None,
        num_res_blocks: int | None = None,
        attention_resolutions: Sequence[int] | None = None,
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
            attention_resolutions=list(hp.attention_resolutions),
            num_heads=num_heads,
            dropout=hp.dropout,
            num_classes=self.num_conditional_classes,
        )
        self.process = GaussianDiffusion(num_timesteps, hp.schedule, prediction, variance)
        # 0 (or null) disables the average; EMA itself rejects decays outside [0, 1).
        self.ema = EMA(self.net, decay=ema_decay) if ema_decay else None
        self._sampling_options(None, None, None, None)  # fail now, not at the first validation, on bad defaults

    def sample_shape(self, n: int) -> tuple[int, ...]:
        return (n, self.hparams.channels, self.hparams.image_size, self.hparams.image_size)

    # ---- inpainting ----------------------------------------------------------------------------------------

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
        chosen, guidance = self._sampling_options(sampler, steps, eta, guidance)
        labels = self.sample_labels(images.shape[0], labels)
        with evaluating(self):
            model = self._denoiser(labels, guidance)
            out = self.process.sample(
                model, tuple(images.shape), generator, chosen, known=images, mask=known, resample=resample, jump=jump
            )
            return torch.where(known, images, out.clamp(-1, 1))

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
            return self.render_edit(images, labels, **options)
        known = self._mask(mask, images.shape)
        completed = self.inpaint(images, known, labels=labels if self.num_conditional_classes else None, **options)
        masked = torch.where(known, images, torch.zeros_like(images))  # the hidden region shown grey
        grid = torch.stack([images, masked, completed], dim=1).flatten(0, 1)  # (3N, C, H, W)
        return grid, 3 * math.ceil(math.sqrt(images.shape[0]))

    # ---- helpers -------------------------------------------------------------------------------------------

    def _mask(self, mask: str | torch.Tensor, shape: torch.Size) -> torch.Tensor:
        if isinstance(mask, str):
            return inpaint_mask(mask, tuple(shape), self.device)
        mask = torch.as_tensor(mask, device=self.device)
        if mask.dtype != torch.bool:
            raise ValueError(f"an inpainting mask tensor must be boolean (True = known pixel), got {mask.dtype}")
        return mask.expand(shape)
