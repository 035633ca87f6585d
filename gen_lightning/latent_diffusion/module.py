"""Latent diffusion (Rombach et al. 2022, "High-Resolution Image Synthesis with Latent Diffusion Models"): a
diffusion model of the latents of a frozen, trained autoencoder, whose samples are decoded to images.

- The autoencoder is the project's VAE (``vae.module.VAE``, MLP or convolutional: ``model=vae`` or
  ``model=conv_vae``), trained first. It enters as a checkpoint path, ``autoencoder_ckpt`` (the contract allows no
  ``nn.Module`` argument), read once with ``run.checkpoint.load_module`` when the model is first built. Its
  constructor arguments are then kept in the ``autoencoder`` hyperparameter and its weights in this module's state
  (``autoencoder.*``): a latent checkpoint is self-contained, so ``sample``/``evaluate``/``resume`` rebuild it
  from the checkpoint alone even after the autoencoder's file moved or changed (``autoencoder`` given: the path is
  not read). The autoencoder is frozen: no gradients, not in the optimiser, always in eval mode.
- Data reach the latent space through the encoder's mean, z = E[q(z|x)], not a draw of q(z|x): the diffusion
  model then learns the distribution of codes the decoder renders most sharply, the posterior's noise (large on
  the dimensions a small VAE leaves unused) is not learnt as data, and encoding draws no random numbers
  (validation stays fixed, exact resume is unaffected).
- Latent scaling (Rombach et al., section 4.3.2 and appendix G): the codes are multiplied by a scale factor
  1 / std(z), from the first training batch (averaged over processes under DDP) unless ``latent_scale`` is
  given, kept as a buffer (saved, so a resumed run keeps it), so that the diffused variable has unit variance as
  the noise schedule assumes. The predicted clean latent is not clipped (``clip: null``; [-1, 1] is for pixels),
  so the network predicts v (Salimans & Ho 2022), not eps: x0 = sqrt(abar) x_t - sqrt(1 - abar) v stays bounded,
  while x0 = (x_t - sqrt(1 - abar) eps) / sqrt(abar) multiplies eps's error by up to 1 / sqrt(abar_T) ~ 150 (linear
  schedule) at the first step of a sampler, which clipping tames for pixels. Measured on the digits' 8-dimensional
  codes after 400 steps: DDIM/DPM-Solver++/Heun samples with eps had per-dimension std 5-14 (data: 0.1-1.5), with v
  0.1-1.4 (eps with the cosine schedule, whose abar_T is smaller still: std in the hundreds).
- The denoiser is ``nets.LatentMLP`` over the (B, latent_dim) codes; the process, samplers, classifier-free
  guidance, EMA and SDEdit are the diffusion family's (``diffusion.system.DiffusionSystem``), so every sampler
  of ``diffusion/samplers/`` works here unchanged. Editing is SDEdit in latent space (the image encoded, noised,
  denoised, decoded). Inpainting is not offered: a latent vector has no pixels to keep, and a mask in pixel space
  does not map to a subset of its coordinates.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from gen_lightning.diffusion.process import GaussianDiffusion
from gen_lightning.diffusion.system import DiffusionSystem
from gen_lightning.latent_diffusion.nets import LatentMLP
from gen_lightning.nn.ema import EMA
from gen_lightning.run.checkpoint import load_module
from gen_lightning.vae.module import VAE


class LatentDDPM(DiffusionSystem):
    """Diffusion in the latent space of a frozen VAE; samples are ``channels x image_size x image_size`` images."""

    sample_modes = ("edit",)

    def __init__(
        self,
        channels: int,
        image_size: int,
        num_classes: int = 0,
        autoencoder_ckpt: str | None = None,
        autoencoder: dict | None = None,
        latent_scale: float | None = None,
        hidden_dim: int = 256,
        num_layers: int = 4,
        dropout: float = 0.0,
        num_timesteps: int = 1000,
        schedule: str = "linear",
        prediction: str = "v",
        variance: str = "small",
        clip: float | None = None,
        conditional: bool = False,
        p_uncond: float = 0.1,
        guidance: float = 1.0,
        lr: float = 1e-3,
        betas: Sequence[float] = (0.9, 0.999),
        weight_decay: float = 0.0,
        warmup_steps: int = 100,
        ema_decay: float = 0.999,
        sampler: str = "ddim",
        sample_steps: int | None = 20,
        eta: float = 0.0,
        sample_time_batch: int = 4,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.autoencoder = self._frozen_autoencoder(autoencoder_ckpt, autoencoder)
        self.condition_on_classes(conditional, num_classes)
        if not 0.0 <= p_uncond < 1.0:
            raise ValueError(f"p_uncond (label dropout for classifier-free guidance) must be in [0, 1), got {p_uncond}")
        if latent_scale is not None and not latent_scale > 0:
            raise ValueError("latent_scale must be > 0, or null to take 1 / std of the first batch's codes")
        latent_dim = self.autoencoder.hparams.latent_dim
        self.net = LatentMLP(latent_dim, hidden_dim, num_layers, dropout, self.num_conditional_classes)
        self.process = GaussianDiffusion(num_timesteps, schedule, prediction, variance, clip=clip)
        self.ema = EMA(self.net, decay=ema_decay) if ema_decay else None
        # 0 until the first training batch sets it (encode/decode use 1 meanwhile); saved in checkpoints.
        self.register_buffer("scale", torch.tensor(float(latent_scale or 0.0)))
        self._sampling_options(None, None, None, None)  # fail now, not at the first validation, on bad defaults

    def _frozen_autoencoder(self, path: str | None, description: dict | None) -> VAE:
        """The VAE rebuilt from its saved description (weights then come with this module's state), or read from
        ``path`` on first construction, its description then kept in the hyperparameters."""
        if description is None:
            if not path:
                raise ValueError(
                    "model.autoencoder_ckpt must name the checkpoint of a trained VAE, e.g. "
                    "RUN/checkpoints/last.ckpt of `gen-lightning fit model=vae data=...` (or model=conv_vae)"
                )
            vae = load_module(path)
            if not isinstance(vae, VAE):
                raise ValueError(
                    f"model.autoencoder_ckpt={path} holds a {type(vae).__name__}; latent diffusion needs a VAE "
                    "checkpoint (model=vae or model=conv_vae)"
                )
            self.hparams["autoencoder"] = {"hparams": dict(vae.hparams)}
        else:
            vae = VAE(**description["hparams"])
        hp = vae.hparams
        if (hp.channels, hp.image_size) != (self.hparams.channels, self.hparams.image_size):
            raise ValueError(
                f"the autoencoder of model.autoencoder_ckpt={path} takes {hp.channels}x{hp.image_size}x{hp.image_size} "
                f"images, the data give {self.hparams.channels}x{self.hparams.image_size}x{self.hparams.image_size}: "
                "train a VAE on these data (gen-lightning fit model=vae data=...) and give its checkpoint"
            )
        return vae.requires_grad_(False).eval()

    def train(self, mode: bool = True):
        super().train(mode)
        self.autoencoder.eval()  # frozen: never in training mode
        return self

    # ---- the latent space ----------------------------------------------------------------------------------

    def sample_shape(self, n: int) -> tuple[int, ...]:
        return (n, self.autoencoder.hparams.latent_dim)

    def scale_factor(self) -> torch.Tensor:
        return torch.where(self.scale > 0, self.scale, torch.ones_like(self.scale))

    @torch.no_grad()
    def encode(self, images: torch.Tensor) -> torch.Tensor:
        """Images (B, C, H, W) in [-1, 1] -> scaled codes (B, D): the posterior mean times the scale factor."""
        mu, _ = self.autoencoder.encoder(images)
        return mu * self.scale_factor()

    @torch.no_grad()
    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Scaled codes (B, D) -> the decoder's mean images (B, C, H, W) in [-1, 1]."""
        return self.autoencoder.mean_image(self.autoencoder.decoder(z / self.scale_factor()))

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor:
        if self.scale == 0:  # Rombach et al.: 1 / std of the first batch's codes (all processes alike)
            mu, _ = self.autoencoder.encoder(batch[0])
            std = self.trainer.strategy.reduce(mu.detach().float().std(), reduce_op="mean")
            self.scale.fill_(1.0 / float(std))
        return super().training_step(batch, batch_idx)

    # ---- what the family offers --------------------------------------------------------------------------

    def render(self, mode: str, images: torch.Tensor, labels: torch.Tensor, n: int = 1, **options):
        """``edit``: (original, SDEdit in latent space) pairs, ``n`` per image."""
        if mode not in self.sample_modes:
            raise ValueError(f"unknown sample mode {mode!r}; LatentDDPM offers {list(self.sample_modes)}")
        images = images.to(self.device).repeat_interleave(n, dim=0)
        labels = torch.as_tensor(labels).to(self.device)
        labels = labels.repeat_interleave(n, dim=0) if labels.dim() and len(labels) > 1 else labels
        return self.render_edit(images, labels, **options)

    def sample_info(self) -> dict:
        ae = self.autoencoder.hparams
        return {**super().sample_info(), "space": f"latent {ae.network} VAE, {ae.latent_dim} dimensions"}
