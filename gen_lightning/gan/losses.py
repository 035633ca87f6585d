"""Adversarial losses from raw discriminator scores, shared by the GAN family and the image-to-image GANs.

- ``bce``: the minimax loss of Goodfellow et al. (2014, "Generative Adversarial Nets", eq. 1) on logits, with the
  non-saturating generator loss of their section 3;
- ``hinge``: Lim & Ye (2017, "Geometric GAN"), as used by SNGAN (Miyato et al. 2018);
- ``wgan-gp``: the Wasserstein critic loss with the gradient penalty of Gulrajani et al. (2017, "Improved Training
  of Wasserstein GANs", Algorithm 1);
- ``lsgan``: least squares (Mao et al. 2017, "Least Squares Generative Adversarial Networks", eq. 9), the loss
  of CycleGAN (Zhu et al. 2017).

Scores are ``(B,)`` or PatchGAN maps ``(B, 1, h, w)``; every loss is a mean over all of them.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

LOSSES = ("bce", "hinge", "wgan-gp", "lsgan")


def check_loss(loss: str) -> str:
    """``loss``, or a ValueError naming it and the losses there are."""
    if loss not in LOSSES:
        raise ValueError(f"unknown GAN loss {loss!r} (model.loss); choose one of {LOSSES}")
    return loss


def discriminator_loss(loss: str, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    """Critic loss from raw scores ``real = D(x)``, ``fake = D(G(z))``, ``(B,)`` or patch maps ``(B, 1, h, w)``."""
    if loss == "bce":  # -log sigmoid(D(x)) - log(1 - sigmoid(D(G(z)))), Goodfellow et al. eq. 1
        return F.softplus(-real).mean() + F.softplus(fake).mean()
    if loss == "hinge":
        return F.relu(1.0 - real).mean() + F.relu(1.0 + fake).mean()
    if loss == "wgan-gp":  # Gulrajani et al. Algorithm 1, line 7, without the penalty
        return fake.mean() - real.mean()
    if loss == "lsgan":  # least squares, a = 0, b = c = 1 (Mao et al. 2017, eq. 9), halved as in CycleGAN
        return 0.5 * ((real - 1.0) ** 2).mean() + 0.5 * (fake**2).mean()
    raise ValueError(f"unknown GAN loss {loss!r}; choose one of {LOSSES}")


def generator_loss(loss: str, fake: torch.Tensor) -> torch.Tensor:
    """Generator loss from ``fake = D(G(z))`` ``(B,)``."""
    if loss == "bce":  # non-saturating: maximise log D(G(z)) (Goodfellow et al. section 3)
        return F.softplus(-fake).mean()
    if loss in ("hinge", "wgan-gp"):
        return -fake.mean()
    if loss == "lsgan":
        return ((fake - 1.0) ** 2).mean()
    raise ValueError(f"unknown GAN loss {loss!r}; choose one of {LOSSES}")


def gradient_penalty(
    critic: nn.Module, real: torch.Tensor, fake: torch.Tensor, labels: torch.Tensor | None = None
) -> torch.Tensor:
    """``E[(||grad_x D(x_hat)||_2 - 1)^2]`` at ``x_hat = eps x + (1 - eps) x~``, eps ~ U[0, 1] per sample.

    Gulrajani et al. 2017, Algorithm 1, lines 6-7. The norm is taken per sample over all of ``(C, H, W)``;
    ``create_graph`` keeps the penalty differentiable with respect to the critic's weights.
    """
    eps = torch.rand(real.shape[0], 1, 1, 1, device=real.device, dtype=real.dtype)
    x_hat = (eps * real + (1.0 - eps) * fake).requires_grad_(True)  # (B, C, H, W)
    (grad,) = torch.autograd.grad(critic(x_hat, labels).sum(), x_hat, create_graph=True)
    return ((grad.flatten(1).norm(2, dim=1) - 1.0) ** 2).mean()
