"""Generative adversarial networks (Goodfellow et al. 2014) as one LightningModule.

One system covers the usual variants through its arguments:
- ``loss="bce"``: the non-saturating loss of Goodfellow et al. (2014, section 3) with DCGAN networks
  (Radford et al. 2015);
- ``loss="hinge"`` with ``spectral_norm=True``: SNGAN (Miyato et al. 2018; hinge loss of Lim & Ye 2017);
- ``loss="wgan-gp"``: the Wasserstein critic with gradient penalty (Gulrajani et al. 2017, Algorithm 1),
  ``n_critic`` critic steps per generator step and no batch norm in the critic;
- ``conditional=True``: conditional batch norm in the generator and a projection discriminator
  (Miyato & Koyama 2018);
- ``ema_decay``: an exponential moving average of the generator's weights, used by ``sample``.

Steps and ``max_steps``. Training uses manual optimisation with two Adam optimizers (TTUR: ``lr_g``,
``lr_d``). Every batch makes one critic step; every ``n_critic``-th batch also makes one generator step.
Lightning's ``global_step`` counts the steps of both optimizers, so it advances by ``n_critic + 1`` every
``n_critic`` batches: ``max_steps = 2 * batches`` for ``n_critic=1`` (DCGAN) and
``max_steps = 6 * batches / 5`` for ``n_critic=5`` (WGAN-GP, SNGAN presets).
Generator steps are ``max_steps / (n_critic + 1)``. The generator step runs the critic with detached weights (no
weight gradient for it) instead of toggling ``requires_grad``; under DDP each backward also adds a zero gradient
for the other network (``_untouched``), so data-parallel training needs no search for unused parameters.

Logged: ``train/d_loss`` (the full critic loss, gradient penalty included), ``train/g_loss``, ``train/d_real``
and ``train/d_fake`` (mean raw discriminator output, i.e. logits for bce, critic values for wgan-gp),
``train/gp`` (the unweighted penalty ``E[(||grad D(x_hat)|| - 1)^2]``); in validation ``val/d_loss``,
``val/d_real``, ``val/d_fake`` on held-out real images against fakes from the sampling generator (EMA when
enabled) with noise fixed per batch index. ``val/d_loss`` leaves out the gradient penalty.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.func import functional_call
from torchmetrics import MeanMetric

from gen_lightning.gan.losses import check_loss, discriminator_loss, generator_loss, gradient_penalty
from gen_lightning.gan.nets import NORMS, Discriminator, Generator
from gen_lightning.nn.ema import EMA
from gen_lightning.nn.eval_mode import evaluating
from gen_lightning.nn.image_model import ImageModel


def _frozen(net: nn.Module):
    """``net``'s forward with its parameters detached (buffers, e.g. batch-norm statistics, update as usual)."""
    params = {name: p.detach() for name, p in net.named_parameters()}
    return lambda *args: functional_call(net, params, args)


def _resolve_norm(d_norm: str | None, loss: str, spectral_norm: bool) -> str:
    if d_norm is None:  # the usual choice: DCGAN batch norm, none under SN (SNGAN), layer norm for WGAN-GP
        return "layer" if loss == "wgan-gp" else "none" if spectral_norm else "batch"
    if d_norm not in NORMS:
        raise ValueError(f"unknown d_norm {d_norm!r}; choose one of {NORMS} or null for the usual choice")
    if loss == "wgan-gp" and d_norm == "batch":
        raise ValueError(
            "d_norm='batch' cannot be used with loss='wgan-gp': the gradient penalty is per sample and batch "
            "norm couples the samples (Gulrajani et al. 2017, section 4); use 'layer', 'instance' or 'none'"
        )
    return d_norm


class GAN(ImageModel):
    """Generator and discriminator trained adversarially; see the file docstring for losses and steps."""

    # A weak proxy until image metrics run (then set checkpoint.monitor=val/fid_clf, mode min): for WGAN-GP it is
    # minus the critic's Wasserstein estimate on held-out data; for bce/hinge it rises as D separates less well.
    monitor = ("val/d_loss", "max")
    metric_directions = {"val/d_loss": "max"}  # val/d_real and val/d_fake are diagnostics
    sample_modes = ("interpolate",)
    sampling_network = "generator"

    def __init__(
        self,
        channels: int,
        image_size: int,
        num_classes: int = 0,
        latent_dim: int = 128,
        hidden_dim: int = 64,
        loss: str = "bce",
        d_norm: str | None = None,
        spectral_norm: bool = False,
        conditional: bool = False,
        gp_weight: float = 10.0,
        n_critic: int = 1,
        lr_g: float = 2e-4,
        lr_d: float = 2e-4,
        betas: tuple[float, float] = (0.5, 0.999),
        ema_decay: float | None = 0.999,
        gradient_clip_val: float = 0.0,
        preview_columns: int = 8,
    ) -> None:
        super().__init__()
        # Plain floats: a Hydra ListConfig in the hyperparameters fails torch.load(weights_only=True).
        betas = [float(b) for b in betas]
        self.save_hyperparameters()
        self.automatic_optimization = False
        check_loss(loss)
        if int(n_critic) != n_critic or n_critic < 1:
            raise ValueError(f"n_critic must be a positive integer, got {n_critic}")
        if len(betas) != 2:
            raise ValueError(f"betas must be two numbers (beta1, beta2), got {betas}")
        self.condition_on_classes(conditional, num_classes)
        classes = self.num_conditional_classes
        self.generator = Generator(latent_dim, channels, image_size, hidden_dim, classes)
        norm = _resolve_norm(d_norm, loss, spectral_norm)
        self.discriminator = Discriminator(channels, image_size, hidden_dim, classes, norm, spectral_norm)
        self.ema = EMA(self.generator, ema_decay) if ema_decay else None
        # Counts critic steps, so the n_critic rhythm survives epoch ends and resumes (module state).
        self.register_buffer("critic_steps", torch.zeros((), dtype=torch.long))
        self.val_metrics = nn.ModuleDict({k: MeanMetric() for k in ("d_loss", "d_real", "d_fake")})

    # ----------------------------------------------------------------------------------------------- training
    def configure_optimizers(self):
        betas = tuple(self.hparams.betas)
        opt_g = torch.optim.Adam(self.generator.parameters(), lr=self.hparams.lr_g, betas=betas)
        opt_d = torch.optim.Adam(self.discriminator.parameters(), lr=self.hparams.lr_d, betas=betas)
        return [opt_g, opt_d]

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        real, labels = batch  # (B, C, H, W) in [-1, 1], (B,)
        labels = labels if self.num_conditional_classes else None
        opt_g, opt_d = self.optimizers()
        # The n_critic critic steps use n_critic successive batches, as in Gulrajani et al.'s Algorithm 1,
        # which draws a fresh real minibatch for every critic iteration; a generator step follows every
        # n_critic-th batch. Reusing one batch n_critic times would overfit the critic to it.
        self._critic_step(real, labels, opt_d)
        self.critic_steps += 1
        if int(self.critic_steps) % self.hparams.n_critic == 0:
            self._generator_step(real.shape[0], labels, opt_g)

    def _critic_step(self, real: torch.Tensor, labels: torch.Tensor | None, opt_d) -> None:
        z = self.noise((real.shape[0], self.hparams.latent_dim))
        with torch.no_grad():
            fake = self.generator(z, labels)  # fakes share the real batch's labels
        s_real, s_fake = self.discriminator(real, labels), self.discriminator(fake, labels)  # (B,)
        loss = discriminator_loss(self.hparams.loss, s_real, s_fake)
        logs = {"train/d_real": s_real.mean(), "train/d_fake": s_fake.mean()}
        if self.hparams.loss == "wgan-gp":
            gp = gradient_penalty(self.discriminator, real, fake, labels)
            loss = loss + self.hparams.gp_weight * gp
            logs["train/gp"] = gp
        opt_d.zero_grad()
        self.manual_backward(loss + self._untouched(self.generator))
        self._clip(opt_d)
        opt_d.step()
        logs["train/d_loss"] = loss
        self.log_dict({k: v.detach() for k, v in logs.items()}, batch_size=real.shape[0])

    def _generator_step(self, n: int, labels: torch.Tensor | None, opt_g) -> None:
        z = self.noise((n, self.hparams.latent_dim))
        # The critic with its weights detached: the gradient reaches the fakes, not the critic's weights.
        loss = generator_loss(self.hparams.loss, _frozen(self.discriminator)(self.generator(z, labels), labels))
        opt_g.zero_grad()
        self.manual_backward(loss + self._untouched(self.discriminator))
        self._clip(opt_g)
        opt_g.step()
        self.update_ema()
        self.log("train/g_loss", loss.detach(), batch_size=n)

    def _untouched(self, net: nn.Module) -> torch.Tensor | float:
        """Under DDP, 0 * (sum of ``net``'s parameters): a zero gradient for every parameter of the network a loss
        does not use, so each backward reaches all parameters and DDP runs without its per-step search for unused
        ones (``find_unused_parameters=False``, conf/trainer/ddp.yaml). It all-reduces the same buckets as that
        search would. One process: nothing."""
        distributed = self._trainer is not None and self.trainer.world_size > 1
        return 0.0 * sum(p.sum() for p in net.parameters()) if distributed else 0.0

    def _clip(self, optimizer) -> None:
        if self.hparams.gradient_clip_val:
            self.clip_gradients(
                optimizer, gradient_clip_val=self.hparams.gradient_clip_val, gradient_clip_algorithm="norm"
            )

    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        real, labels = batch
        labels = labels if self.num_conditional_classes else None
        # Noise fixed by batch index: the same fakes' inputs every epoch, and no draw from the training RNG.
        z = self.noise((real.shape[0], self.hparams.latent_dim), torch.Generator().manual_seed(batch_idx))
        s_real = self.discriminator(real, labels)
        s_fake = self.discriminator(self.sampling_net()(z, labels), labels)
        values = {
            "d_loss": discriminator_loss(self.hparams.loss, s_real, s_fake),
            "d_real": s_real.mean(),
            "d_fake": s_fake.mean(),
        }
        for name, value in values.items():
            self.val_metrics[name].update(value, weight=real.shape[0])
            self.log(f"val/{name}", self.val_metrics[name], on_epoch=True, batch_size=real.shape[0])

    # ----------------------------------------------------------------------------------------------- sampling
    def _generate(self, net: nn.Module, z: torch.Tensor, y: torch.Tensor | None) -> torch.Tensor:
        # Eval mode: batch norm from running statistics, so a sample does not depend on its batch-mates.
        with evaluating(self):
            return net(z, y)

    def sample(self, n: int, generator: torch.Generator | None = None, labels=None) -> torch.Tensor:
        """``n`` images ``(n, C, H, W)`` in [-1, 1]; ``labels`` (conditional only): one class or ``n``."""
        z = self.noise((n, self.hparams.latent_dim), generator)
        return self._generate(self.sampling_net(), z, self.sample_labels(n, labels, generator))

    def preview(self, batch, generator: torch.Generator) -> dict[str, torch.Tensor]:
        """Fixed-noise samples, ``preview_columns`` per row; conditional: one row per class (first 16)."""
        cols, k = self.hparams.preview_columns, self.num_conditional_classes
        labels = torch.arange(min(k, 16)).repeat_interleave(cols) if k else None
        n = len(labels) if k else cols * cols
        z = self.noise((n, self.hparams.latent_dim), generator)
        y = self.sample_labels(n, labels, generator)
        out = {"samples": self._generate(self.sampling_net(), z, y)}
        if self.ema is not None:  # the live weights on the same noise, to see what the average smooths
            out["samples_raw"] = self._generate(self.generator, z, y)
        return out

    def render(
        self,
        mode: str,
        images: torch.Tensor,
        labels: torch.Tensor,
        generator: torch.Generator | None = None,
        rows: int = 8,
        steps: int = 10,
        **options,
    ) -> tuple[torch.Tensor, int]:
        """``interpolate``: straight lines between pairs of latent codes (Radford et al. 2015, figure 4).

        ``rows`` rows of ``steps`` images; conditional models keep each row's class (taken from ``labels``).
        """
        if mode != "interpolate":
            raise ValueError(f"unknown sample mode {mode!r} for a GAN; modes: {self.sample_modes}")
        if options:
            raise ValueError(f"unexpected options for mode 'interpolate': {sorted(options)}")
        rows = min(rows, len(labels)) if self.num_conditional_classes else rows
        ends = self.noise((2, rows, self.hparams.latent_dim), generator)
        t = torch.linspace(0.0, 1.0, steps, device=self.device)[None, :, None]  # (1, steps, 1)
        z = (ends[0][:, None] * (1 - t) + ends[1][:, None] * t).flatten(0, 1)  # (rows * steps, latent)
        y = labels[:rows].repeat_interleave(steps) if self.num_conditional_classes else None
        y = self.sample_labels(rows * steps, y, generator)
        return self._generate(self.sampling_net(), z, y), steps
