"""The variational autoencoder (Kingma & Welling 2013, "Auto-Encoding Variational Bayes").

Maximises the evidence lower bound  ELBO(x) = E_q(z|x)[log p(x|z)] - KL(q(z|x) || p(z))  (eq. 3), with the
reparameterisation z = mu + sigma * eps (eq. 4) and the closed-form Gaussian KL (appendix B). ``beta`` weights the
KL term in the training loss (Higgins et al. 2017); validation always reports the true ELBO (beta = 1) in nats per
image, and the importance-weighted bound of Burda et al. 2015 (eq. 8) with ``iw_samples`` samples.
Modes of a given image: ``reconstruct``, ``interpolate`` and ``variations`` (decoded draws of q(z|x) around it).

Two guards against posterior collapse (q(z|x) = p(z), a decoder that ignores z), only in the training loss:
- KL warm-up (Bowman et al. 2016, section 3.1; Sonderby et al. 2016, "How to train deep VAEs", section 2.3): the
  KL weight grows linearly from 0 to ``beta`` over the first ``kl_warmup_steps`` steps, so the encoder learns to
  carry information before the KL term pulls it back to the prior;
- free bits (Kingma et al. 2016, "Improved variational inference with inverse autoregressive flow", eq. 15): each
  latent dimension's KL, averaged over the batch, counts as at least ``free_bits`` nats, so a dimension gains
  nothing from collapsing below that.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torchmetrics import MeanMetric

from gen_lightning.nn.eval_mode import evaluating
from gen_lightning.nn.image_model import ImageModel
from gen_lightning.vae.nets import NETWORKS

LIKELIHOODS = ("bernoulli", "gaussian")


class VAE(ImageModel):
    monitor = ("val/elbo", "max")
    # val/recon is the distortion (lower: closer reconstructions). val/kl, the rate, is a diagnostic: its minimum,
    # KL = 0, is a posterior that ignores the image.
    metric_directions = {"val/elbo": "max", "val/nll_iw": "min", "val/recon": "min"}
    sample_modes = ("reconstruct", "interpolate", "variations")
    sampling_network = "decoder"

    def __init__(
        self,
        channels: int,
        image_size: int,
        num_classes: int = 0,
        network: str = "mlp",
        latent_dim: int = 16,
        hidden_dim: int = 256,
        num_layers: int = 2,
        likelihood: str = "bernoulli",
        beta: float = 1.0,
        kl_warmup_steps: int = 0,
        free_bits: float = 0.0,
        iw_samples: int = 64,
        lr: float = 1e-3,
        weight_decay: float = 0.0,
    ) -> None:
        super().__init__()
        if network not in NETWORKS:
            raise ValueError(f"model.network must be one of {sorted(NETWORKS)}, got '{network}'")
        if likelihood not in LIKELIHOODS:
            raise ValueError(f"model.likelihood must be one of {LIKELIHOODS}, got '{likelihood}'")
        if beta < 0 or latent_dim <= 0 or iw_samples < 0:
            raise ValueError("model.beta and model.iw_samples must be >= 0 and model.latent_dim > 0")
        if kl_warmup_steps < 0 or free_bits < 0:
            raise ValueError("model.kl_warmup_steps and model.free_bits must be >= 0 (0: off)")
        self.save_hyperparameters()
        enc, dec = NETWORKS[network]
        self.encoder = enc(channels, image_size, hidden_dim, latent_dim, num_layers)
        self.decoder = dec(channels, image_size, hidden_dim, latent_dim, num_layers)
        # Gaussian decoder: one learned log standard deviation shared by all pixels.
        self.log_sigma = torch.nn.Parameter(torch.zeros(())) if likelihood == "gaussian" else None
        self.val_metrics = torch.nn.ModuleDict({k: MeanMetric() for k in ("elbo", "recon", "kl", "nll_iw")})

    # ---- the model -----------------------------------------------------------------------------------------
    def log_likelihood(self, out: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """log p(x|z) summed over pixels, (B,). Bernoulli targets are x mapped to [0, 1]."""
        if self.hparams.likelihood == "bernoulli":
            ll = -F.binary_cross_entropy_with_logits(out, (x + 1) / 2, reduction="none")
        else:
            ll = -0.5 * ((x - out) / self.log_sigma.exp()) ** 2 - self.log_sigma - 0.5 * math.log(2 * math.pi)
        return ll.flatten(1).sum(1)

    def mean_image(self, out: torch.Tensor) -> torch.Tensor:
        """The decoder's mean in [-1, 1]."""
        if self.hparams.likelihood == "bernoulli":
            return torch.sigmoid(out) * 2 - 1
        return out.clamp(-1, 1)

    def elbo_terms(self, x: torch.Tensor, per_dimension: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-image reconstruction NLL (B,) and KL (B,), or (B, D) per latent dimension, with one reparameterised
        sample (eq. 4)."""
        mu, logvar = self.encoder(x)  # (B, D)
        z = mu + torch.randn_like(mu) * (0.5 * logvar).exp()
        recon = -self.log_likelihood(self.decoder(z), x)
        kl = 0.5 * (mu.pow(2) + logvar.exp() - 1 - logvar)  # (B, D), closed form (appendix B)
        return recon, kl if per_dimension else kl.sum(1)

    def kl_weight(self) -> float:
        """``beta``, reached linearly from 0 over the first ``kl_warmup_steps`` optimizer steps."""
        warmup = self.hparams.kl_warmup_steps
        ramp = min(1.0, (self.global_step + 1) / warmup) if warmup else 1.0
        return self.hparams.beta * ramp

    def training_kl(self, kl: torch.Tensor) -> torch.Tensor:
        """The KL term of the training loss (a scalar) from the per-dimension KL ``(B, D)``: its batch mean, where
        with free bits a dimension whose batch-mean KL is below ``free_bits`` nats counts as ``free_bits`` (and
        gets no gradient), Kingma et al. 2016, eq. 15."""
        per_dim = kl.mean(0)  # (D,)
        if self.hparams.free_bits:
            per_dim = per_dim.clamp(min=self.hparams.free_bits)
        return per_dim.sum()

    def iw_bound(self, x: torch.Tensor, k: int) -> torch.Tensor:
        """log p(x) >= log (1/k) sum_i p(x, z_i) / q(z_i|x), z_i ~ q(z|x) (Burda et al. eq. 8), (B,)."""
        mu, logvar = self.encoder(x)
        std = (0.5 * logvar).exp()
        log_w = []
        for _ in range(k):
            z = mu + torch.randn_like(mu) * std
            log_q = (-0.5 * ((z - mu) / std) ** 2 - std.log() - 0.5 * math.log(2 * math.pi)).sum(1)
            log_p_z = (-0.5 * z**2 - 0.5 * math.log(2 * math.pi)).sum(1)
            log_w.append(self.log_likelihood(self.decoder(z), x) + log_p_z - log_q)
        return torch.logsumexp(torch.stack(log_w), dim=0) - math.log(k)

    # ---- training ------------------------------------------------------------------------------------------
    def training_step(self, batch, batch_idx):
        x, _ = batch
        recon, kl = self.elbo_terms(x, per_dimension=True)
        loss = recon.mean() + self.kl_weight() * self.training_kl(kl)
        self.log("train/loss", loss, prog_bar=True)
        self.log("train/recon", recon.mean())
        self.log("train/kl", kl.sum(1).mean())
        return loss

    def validation_step(self, batch, batch_idx):
        x, _ = batch
        recon, kl = self.elbo_terms(x)
        m = self.val_metrics
        m["elbo"].update(-(recon + kl))
        m["recon"].update(recon)
        m["kl"].update(kl)
        if self.hparams.iw_samples > 0:
            m["nll_iw"].update(-self.iw_bound(x, self.hparams.iw_samples))
        for name, metric in m.items():
            if name != "nll_iw" or self.hparams.iw_samples > 0:
                self.log(f"val/{name}", metric, prog_bar=name == "elbo")

    def configure_optimizers(self):
        return torch.optim.AdamW(self.parameters(), lr=self.hparams.lr, weight_decay=self.hparams.weight_decay)

    # ---- sampling ------------------------------------------------------------------------------------------
    def sample(self, n: int, generator: torch.Generator | None = None, **options) -> torch.Tensor:
        """``n`` decoder means ``(n, C, H, W)`` in [-1, 1] at latents z ~ N(0, I) drawn from ``generator``."""
        if options:
            raise ValueError(f"the VAE takes no sampling options, got {sorted(options)}")
        with evaluating(self):
            return self.mean_image(self.sampling_net()(self.noise((n, self.hparams.latent_dim), generator)))

    def sample_info(self) -> dict:
        return {"sampler": "ancestral", "steps": 1, **super().sample_info()}

    @torch.no_grad()
    def render(
        self,
        mode: str,
        images: torch.Tensor,
        labels: torch.Tensor,
        steps: int = 8,
        n: int = 7,
        generator: torch.Generator | None = None,
        **options,
    ):
        """``reconstruct``: real images, each beside its reconstruction (decoder mean at the posterior mean).
        ``interpolate``: latent walks between pairs of real images, ``steps`` images per row.
        ``variations``: each image followed by the decoder means of ``n`` draws z ~ q(z|x) from ``generator``."""
        if options:
            raise ValueError(f"unknown options for mode '{mode}': {sorted(options)}")
        x = images.to(self.device)
        mu, _ = self.encoder(x)
        if mode == "reconstruct":
            recon = self.mean_image(self.decoder(mu))
            pairs = torch.stack([x, recon], dim=1).flatten(0, 1)  # (2B, C, H, W): real, reconstruction, ...
            return pairs, 8 if len(pairs) >= 8 else len(pairs)
        if mode == "interpolate":
            if len(x) < 2:
                raise ValueError("interpolation needs at least 2 images")
            a, b = mu[0::2][: len(mu) // 2], mu[1::2][: len(mu) // 2]  # (P, D) endpoints
            t = torch.linspace(0, 1, steps, device=self.device).view(1, steps, 1)
            z = (a[:, None] * (1 - t) + b[:, None] * t).flatten(0, 1)  # (P * steps, D)
            return self.mean_image(self.decoder(z)), steps
        if mode == "variations":
            return self.variations(x, n, generator), n + 1
        raise ValueError(f"unknown mode '{mode}' for the VAE; choose from sample, {', '.join(self.sample_modes)}")

    def variations(self, x: torch.Tensor, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """Rows of [x, n decoded draws of q(z|x)]: ``(B * (n + 1), C, H, W)``; the reparameterisation of eq. 4,
        z = mu + sigma * eps with eps from ``generator``, decoded to the likelihood's mean."""
        if not isinstance(n, int) or n < 1:
            raise ValueError(f"variations needs n >= 1 draws per image, got {n!r}")
        with evaluating(self):
            mu, logvar = self.encoder(x.to(self.device))  # (B, D) each
            eps = self.noise((x.shape[0], n, mu.shape[1]), generator)  # (B, n, D)
            z = mu[:, None] + eps * (0.5 * logvar).exp()[:, None]
            out = self.mean_image(self.decoder(z.flatten(0, 1))).unflatten(0, (x.shape[0], n))  # (B, n, C, H, W)
        return torch.cat([x.to(self.device)[:, None], out], dim=1).flatten(0, 1)

    def preview(self, batch, generator: torch.Generator) -> dict[str, torch.Tensor]:
        from gen_lightning.callbacks.samples import mode_titles

        images, labels = batch
        with evaluating(self):
            pairs, columns = self.render("reconstruct", images[:32], labels[:32])
            walks, steps = self.render("interpolate", images[:16], labels[:16])
            return {
                "samples": self.sample(64, generator=generator),
                "reconstructions": (pairs, columns, mode_titles("reconstruct", columns)),
                "interpolations": (walks, steps, mode_titles("interpolate", steps)),
            }
