"""VAE family (gen_lightning/vae/): the ELBO's two terms, the closed-form KL, the importance-weighted bound, sampling
and the sample modes, and learning on real digits.

The bounds are checked on the one VAE whose evidence is known in closed form: with no hidden layers and a Gaussian
decoder the model is probabilistic PCA, z ~ N(0, I), x = W z + b + sigma eps, so p(x) = N(b, W W^T + sigma^2 I)
and the posterior is N(M^-1 W^T (x - b), sigma^2 M^-1) with M = W^T W + sigma^2 I (Tipping & Bishop 1999; Bishop
2006, eqs. 12.35 and 12.42). Orthogonal columns of W make that posterior diagonal, so the encoder can be exact.
"""

from __future__ import annotations

import math

import lightning as L
import pytest
import torch
from torch.distributions import MultivariateNormal, Normal

from gen_lightning.data.images import ImageDataModule
from gen_lightning.vae.module import VAE

# Probabilistic PCA with 4 pixels (a 2x2 image) and 2 latents; W's columns are orthogonal.
W = torch.tensor([[0.5, 0.0], [0.5, 0.0], [0.0, 1.0], [0.0, -1.0]])
B = torch.tensor([0.1, -0.2, 0.3, 0.0])
SIGMA = 0.5


def set_linear(layer: torch.nn.Linear, weight, bias) -> None:
    with torch.no_grad():
        layer.weight.copy_(torch.as_tensor(weight, dtype=torch.float32))
        layer.bias.copy_(torch.as_tensor(bias, dtype=torch.float32))


def linear_vae(likelihood: str = "gaussian", image_size: int = 2, latent_dim: int = 2) -> VAE:
    """A VAE without hidden layers: encoder and decoder are one linear map each."""
    return VAE(1, image_size, latent_dim=latent_dim, num_layers=0, likelihood=likelihood, iw_samples=0)


def ppca_vae(mean_shift: float = 0.0, var_scale: float = 1.0) -> VAE:
    """The PPCA model above; its encoder is the exact posterior, or one off by ``mean_shift`` and ``var_scale``."""
    vae = linear_vae()
    m = W.T @ W + SIGMA**2 * torch.eye(2)  # (2, 2), diagonal
    a = torch.linalg.solve(m, W.T)  # (2, 4): posterior mean = a (x - b)
    logvar = torch.log(SIGMA**2 * torch.diagonal(torch.linalg.inv(m)) * var_scale)
    set_linear(vae.encoder.head, torch.cat([a, torch.zeros(2, 4)]), torch.cat([-a @ B + mean_shift, logvar]))
    set_linear(vae.decoder.body[0], W, B)
    with torch.no_grad():
        vae.log_sigma.fill_(math.log(SIGMA))
    return vae.eval()


def ppca_data(n: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` images (n, 1, 2, 2) drawn from the PPCA model, and their exact log p(x) (n,)."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 2, generator=g) @ W.T + B + SIGMA * torch.randn(n, 4, generator=g)
    evidence = MultivariateNormal(B, W @ W.T + SIGMA**2 * torch.eye(4))
    return x.view(n, 1, 2, 2), evidence.log_prob(x)


def elbo_estimate(vae: VAE, x: torch.Tensor) -> torch.Tensor:
    recon, kl = vae.elbo_terms(x)
    return -(recon + kl)


# ---- the ELBO's terms ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("likelihood", ["bernoulli", "gaussian"])
def test_elbo_terms_by_hand(likelihood):
    """Two pixels, one latent: recon = -log p(x|z) at z = mu + sigma eps, KL = 1/2 (mu^2 + s^2 - 1 - log s^2)."""
    vae = VAE(2, 1, latent_dim=1, num_layers=0, likelihood=likelihood)  # a 1x1 image of 2 channels: 2 pixels
    set_linear(vae.encoder.head, [[0.8, 0.3], [-0.6, 0.0]], [0.1, -0.4])  # mu, logvar from (x0, x1)
    set_linear(vae.decoder.body[0], [[1.5], [-0.7]], [0.2, 0.3])  # pixel j's logit or mean: w_j z + c_j
    log_sigma = 0.25
    if likelihood == "gaussian":
        with torch.no_grad():
            vae.log_sigma.fill_(log_sigma)
    images = [(0.5, -0.5), (-1.0, 1.0)]

    torch.manual_seed(7)
    recon, kl = vae.elbo_terms(torch.tensor(images).view(2, 2, 1, 1))
    torch.manual_seed(7)
    eps = torch.randn(2, 1)[:, 0].tolist()  # the draws of the reparameterisation
    for i, (x0, x1) in enumerate(images):
        mu, logvar = 0.8 * x0 + 0.3 * x1 + 0.1, -0.6 * x0 - 0.4
        z = mu + eps[i] * math.exp(0.5 * logvar)
        nll = 0.0
        for pixel, w, c in ((x0, 1.5, 0.2), (x1, -0.7, 0.3)):
            out = w * z + c
            if likelihood == "bernoulli":  # the target is the pixel mapped to [0, 1]
                p, q = (pixel + 1) / 2, 1 / (1 + math.exp(-out))
                nll -= p * math.log(q) + (1 - p) * math.log(1 - q)
            else:
                nll += 0.5 * ((pixel - out) / math.exp(log_sigma)) ** 2 + log_sigma + 0.5 * math.log(2 * math.pi)
        assert recon[i].item() == pytest.approx(nll, rel=1e-5)
        assert kl[i].item() == pytest.approx(0.5 * (mu**2 + math.exp(logvar) - 1 - logvar), rel=1e-5)


def test_closed_form_kl_matches_monte_carlo():
    """KL(q || p) = E_q[log q(z) - log p(z)], estimated from 400k draws, within 4 standard errors."""
    vae = linear_vae(latent_dim=3)
    mu, logvar = torch.tensor([0.3, -1.2, 2.0]), torch.tensor([-1.0, 0.5, 0.0])
    set_linear(vae.encoder.head, torch.zeros(6, 4), torch.cat([mu, logvar]))
    _, kl = vae.elbo_terms(torch.zeros(1, 1, 2, 2))

    q, p = Normal(mu, (0.5 * logvar).exp()), Normal(torch.zeros(3), torch.ones(3))
    z = q.sample((400_000,))  # (N, 3)
    terms = (q.log_prob(z) - p.log_prob(z)).sum(1).double()  # (N,)
    estimate, stderr = terms.mean().item(), terms.std().item() / math.sqrt(len(terms))
    assert stderr < 0.01  # the check below is tight
    assert abs(kl.item() - estimate) < 4 * stderr, (kl.item(), estimate, stderr)


def test_kl_is_zero_exactly_when_q_is_the_prior():
    vae = linear_vae()
    set_linear(vae.encoder.head, torch.zeros(4, 4), torch.zeros(4))  # mu = 0, logvar = 0 for every image
    _, kl = vae.elbo_terms(torch.randn(5, 1, 2, 2))
    assert torch.equal(kl, torch.zeros(5))
    set_linear(vae.encoder.head, torch.zeros(4, 4), torch.tensor([0.0, 0.0, 0.1, 0.0]))
    assert (vae.elbo_terms(torch.randn(5, 1, 2, 2))[1] > 0).all()


# ---- the importance-weighted bound (Burda et al. 2015) ---------------------------------------------------------


def test_bounds_equal_the_evidence_with_the_exact_posterior():
    """With q the true posterior every importance weight is p(x): the k-sample bound is log p(x) for any k, and
    the one-sample ELBO estimate averages to it."""
    vae = ppca_vae()
    x, log_px = ppca_data(64)
    torch.manual_seed(0)
    with torch.no_grad():
        for k in (1, 8):
            torch.testing.assert_close(vae.iw_bound(x, k), log_px, rtol=0, atol=2e-5)
        draws = torch.stack([elbo_estimate(vae, x) for _ in range(400)])  # (400, 64)
    stderr = draws.std() / math.sqrt(draws.numel())
    assert abs(draws.mean() - log_px.mean()) < 4 * stderr


def test_iw_bound_rises_with_k_from_the_elbo_to_the_evidence():
    """An inexact q: E[L_1] = ELBO <= E[L_4] <= E[L_16] <= E[L_64] <= log p(x) (Burda et al., theorem 1), each
    step by more than 4 standard errors of the paired per-image differences."""
    vae = ppca_vae(mean_shift=0.7, var_scale=3.0)
    x, log_px = ppca_data(512)
    torch.manual_seed(0)
    with torch.no_grad():
        elbo = torch.stack([elbo_estimate(vae, x) for _ in range(16)]).mean(0)  # (512,)
        bounds = {k: torch.stack([vae.iw_bound(x, k) for _ in range(16)]).mean(0) for k in (1, 4, 16, 64)}

    def mean_and_stderr(diff: torch.Tensor) -> tuple[float, float]:
        return diff.mean().item(), diff.std().item() / math.sqrt(len(diff))

    gap, err = mean_and_stderr(bounds[1] - elbo)  # both estimate the ELBO
    assert abs(gap) < 4 * err, (gap, err)
    for k in (4, 16, 64):
        gain, err = mean_and_stderr(bounds[k] - bounds[k // 4])
        assert gain > 4 * err, (k, gain, err)
    excess, err = mean_and_stderr(bounds[64] - log_px)
    assert excess < 0 and (log_px - bounds[64]).mean() < (log_px - elbo).mean() / 2  # closer to log p(x)


# ---- sampling and modes ----------------------------------------------------------------------------------------


def test_sampling_modes_and_options():
    torch.manual_seed(0)
    vae = VAE(1, 8, latent_dim=4, hidden_dim=16, iw_samples=2)
    a = vae.sample(6, torch.Generator().manual_seed(3))
    assert a.shape == (6, 1, 8, 8) and a.min() >= -1 and a.max() <= 1 and vae.training  # mode restored
    assert torch.equal(a, vae.sample(6, torch.Generator().manual_seed(3)))
    assert vae.sample_info() == {"sampler": "ancestral", "steps": 1, "weights": "raw"}
    with pytest.raises(ValueError, match="takes no sampling options"):
        vae.sample(2, steps=4)

    images = torch.rand(6, 1, 8, 8) * 2 - 1
    pairs, cols = vae.render("reconstruct", images, torch.zeros(6))
    assert pairs.shape == (12, 1, 8, 8) and cols == 8 and torch.equal(pairs[0::2], images)
    walks, steps = vae.render("interpolate", images, torch.zeros(6), steps=5)
    assert walks.shape == (15, 1, 8, 8) and steps == 5
    # A walk starts and ends at the reconstructions (posterior means) of its two images.
    torch.testing.assert_close(walks[0], pairs[1])
    torch.testing.assert_close(walks[4], pairs[3])
    with pytest.raises(ValueError, match="unknown mode 'inpaint'"):
        vae.render("inpaint", images, torch.zeros(6))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"network": "resnet"}, "model.network must be one of"),
        ({"likelihood": "poisson"}, "model.likelihood must be one of"),
        ({"beta": -1.0}, "model.beta and model.iw_samples must be >= 0"),
    ],
)
def test_bad_configuration_is_named(kwargs, message):
    with pytest.raises(ValueError, match=message):
        VAE(1, 8, **kwargs)


# ---- learning on real digits -----------------------------------------------------------------------------------


def test_learns_the_digits_and_the_iw_bound_is_tighter():
    """60 steps on scikit-learn's digits raise the validation ELBO by a wide margin; the 16-sample bound's NLL
    lies below -ELBO (up to its Monte-Carlo noise)."""
    dm = ImageDataModule(source="digits", channels=1, image_size=8, batch_size=64, seed=0)
    dm.setup("fit")
    torch.manual_seed(0)
    vae = VAE(**dm.model_kwargs(), latent_dim=8, hidden_dim=64, iw_samples=16)
    # inference_mode=False: metric states reset under inference mode could not be updated by the later fit.
    options = {"accelerator": "cpu", "logger": False, "enable_checkpointing": False, "enable_progress_bar": False}
    trainer = L.Trainer(
        max_steps=60, num_sanity_val_steps=0, inference_mode=False, enable_model_summary=False, **options
    )
    before = trainer.validate(vae, datamodule=dm, verbose=False)[0]
    trainer.fit(vae, datamodule=dm)
    after = trainer.validate(vae, datamodule=dm, verbose=False)[0]
    assert after["val/elbo"] > before["val/elbo"] + 10, (before, after)
    assert after["val/elbo"] == pytest.approx(-(after["val/recon"] + after["val/kl"]), rel=1e-5)
    assert after["val/nll_iw"] <= -after["val/elbo"] + 0.5
