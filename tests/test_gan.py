"""GAN family: network sizing, losses, gradient penalty, manual optimisation, EMA, sampling, checkpoints,
learning.

Runs on sklearn's 8x8 digits scaled to [-1, 1]; every fit is a few CPU steps except the learning tests.
"""

from __future__ import annotations

import gzip
import math
from pathlib import Path

import lightning as L
import pytest
import torch
from conftest import shared_data
from hydra.utils import instantiate
from omegaconf import OmegaConf
from sklearn.datasets import load_digits
from torch import nn
from torch.utils.data import TensorDataset

from gen_lightning.data.loaders import eval_loader, train_loader
from gen_lightning.gan import GAN
from gen_lightning.gan.losses import gradient_penalty
from gen_lightning.gan.nets import Discriminator, Generator

CONF = Path(__file__).resolve().parents[1] / "conf" / "model"

VARIANTS = {
    "bce": {},
    "hinge_sn": {"loss": "hinge", "spectral_norm": True, "betas": [0.0, 0.9]},
    "wgan_gp": {"loss": "wgan-gp", "n_critic": 5, "betas": [0.0, 0.9], "lr_g": 1e-4, "lr_d": 1e-4},
    "conditional": {"loss": "hinge", "conditional": True},
}


@pytest.fixture(scope="module")
def digits() -> TensorDataset:
    d = load_digits()
    images = torch.tensor(d.images, dtype=torch.float32)[:, None] / 8.0 - 1.0  # (1797, 1, 8, 8), 0..16 -> [-1, 1]
    return TensorDataset(images, torch.tensor(d.target))


def make_gan(**kwargs) -> GAN:
    args = {"channels": 1, "image_size": 8, "num_classes": 10, "latent_dim": 16, "hidden_dim": 16}
    return GAN(**{**args, **kwargs})


def fit(
    model: GAN, data: TensorDataset, max_steps: int, val: bool = False, ckpt_path=None, **trainer_kwargs
) -> L.Trainer:
    trainer = L.Trainer(
        max_steps=max_steps,
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        limit_val_batches=2,
        **trainer_kwargs,
    )
    trainer.fit(model, train_loader(data, 64, seed=0), eval_loader(data, 64) if val else None, ckpt_path=ckpt_path)
    return trainer


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# ------------------------------------------------------------ networks
@pytest.mark.parametrize(("size", "channels", "s0"), [(8, 1, 2), (28, 1, 7), (32, 3, 4), (64, 3, 4)])
def test_networks_sized_from_image_shape(size, channels, s0):
    g = Generator(8, channels, size, hidden_dim=4, num_classes=3)
    d = Discriminator(channels, size, hidden_dim=4, num_classes=3, norm="layer", spectral_norm=True)
    y = torch.tensor([0, 2])
    x = g(torch.randn(2, 8), y)
    assert g.s0 == s0
    assert x.shape == (2, channels, size, size) and x.abs().max() <= 1
    assert d(x, y).shape == (2,)


def test_trains_on_28x28_mnist_from_a_7x7_map():
    path = shared_data("mnist10k", "t10k-images-idx3-ubyte.gz") / "t10k-images-idx3-ubyte.gz"
    with gzip.open(path) as f:
        raw = torch.frombuffer(bytearray(f.read()), dtype=torch.uint8)[16 : 16 + 256 * 784]  # IDX header
    images = raw.view(256, 1, 28, 28).float() / 127.5 - 1.0
    torch.manual_seed(0)
    model = make_gan(**{**VARIANTS["wgan_gp"], "n_critic": 1}, image_size=28, hidden_dim=8)
    fit(model, TensorDataset(images, torch.zeros(256, dtype=torch.long)), max_steps=4)
    assert model.generator.s0 == 7 and model.sample(3, gen(0)).shape == (3, 1, 28, 28)


@pytest.mark.parametrize("size", [4, 7, 30, 36])
def test_unbuildable_image_size_is_named(size):
    with pytest.raises(ValueError, match=f"image_size={size}"):
        make_gan(image_size=size)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"loss": "wasserstein"}, "unknown GAN loss 'wasserstein'"),
        ({"loss": "wgan-gp", "d_norm": "batch"}, "cannot be used with loss='wgan-gp'"),
        ({"d_norm": "group"}, "unknown d_norm 'group'"),
        ({"n_critic": 0}, "n_critic must be a positive integer"),
        ({"conditional": True, "num_classes": 0}, "num_classes=0"),
    ],
)
def test_bad_config_raises_clear_error(kwargs, message):
    with pytest.raises(ValueError, match=message):
        make_gan(**kwargs)


@pytest.mark.parametrize("name", ["dcgan", "wgan_gp", "sngan"])
def test_presets_build(name):
    cfg = OmegaConf.load(CONF / f"{name}.yaml")
    model = instantiate(cfg, channels=1, image_size=16, num_classes=10, hidden_dim=8)  # two conv layers
    assert isinstance(model, GAN)
    # Plain values in the hyperparameters: a checkpoint must load with torch.load(weights_only=True).
    assert type(model.hparams.betas) is list
    critic_norms = {type(m) for m in model.discriminator.modules()}
    assert (nn.BatchNorm2d in critic_norms) == (name == "dcgan")
    assert (nn.GroupNorm in critic_norms) == (name == "wgan_gp")
    assert hasattr(model.discriminator.read_out, "parametrizations") == (name == "sngan")


# ------------------------------------------------------------ gradient penalty
class LinearCritic(nn.Module):
    def __init__(self, w: torch.Tensor) -> None:
        super().__init__()
        self.w = nn.Parameter(w)

    def forward(self, x, y=None):
        return x.flatten(1) @ self.w.flatten() + 1.0


def test_gradient_penalty_of_linear_critic_matches_hand_computation():
    # grad_x D = w everywhere, so the penalty is (||w|| - 1)^2 = 4 for ||w|| = 3, and its gradient with
    # respect to w is 2 (||w|| - 1) w / ||w|| (the penalty must stay differentiable in the critic's weights).
    w = torch.randn(1, 8, 8)
    w = 3.0 * w / w.norm()
    critic = LinearCritic(w.clone())
    gp = gradient_penalty(critic, torch.randn(5, 1, 8, 8), torch.randn(5, 1, 8, 8))
    assert gp.item() == pytest.approx(4.0, rel=1e-5)
    gp.backward()
    torch.testing.assert_close(critic.w.grad, 2 * (3.0 - 1) * w / 3.0)


def test_gradient_penalty_is_per_sample_norm():
    # D(x) = ||x||^2 / 2 has grad_x D = x; with real == fake the interpolate is x itself, whatever eps is.
    x = torch.randn(6, 1, 8, 8) * torch.linspace(0.1, 2.0, 6)[:, None, None, None]
    gp = gradient_penalty(lambda v, y=None: 0.5 * v.pow(2).flatten(1).sum(1), x, x.clone())
    expected = ((x.flatten(1).norm(dim=1) - 1) ** 2).mean()
    assert gp.item() == pytest.approx(expected.item(), rel=1e-5)


# ------------------------------------------------------------ training
@pytest.mark.parametrize("variant", list(VARIANTS))
def test_training_steps_logs_and_samples(variant, digits):
    torch.manual_seed(0)
    model = make_gan(**VARIANTS[variant])
    trainer = fit(model, digits, max_steps=12, val=True, val_check_interval=3)  # 3 batches
    n_critic = model.hparams.n_critic
    # global_step counts both optimizers: n_critic + 1 steps per n_critic batches.
    assert trainer.global_step == 12
    assert int(model.critic_steps) == 12 * n_critic // (n_critic + 1)
    assert int(model.ema.num_updates) == 12 // (n_critic + 1)
    keys = {"train/d_loss", "train/g_loss", "train/d_real", "train/d_fake", "val/d_loss", "val/d_real"}
    keys |= {"train/gp"} if variant == "wgan_gp" else set()
    metrics = trainer.callback_metrics
    assert keys <= set(metrics), sorted(metrics)
    assert all(math.isfinite(float(metrics[k])) for k in keys)
    assert ("train/gp" in metrics) == (variant == "wgan_gp")

    rng = torch.get_rng_state()
    a, b, c = model.sample(10, gen(1)), model.sample(10, gen(1)), model.sample(10, gen(2))
    assert torch.equal(rng, torch.get_rng_state())  # sampling draws only from the given generator
    assert a.shape == (10, 1, 8, 8) and a.min() >= -1 and a.max() <= 1
    assert torch.equal(a, b) and not torch.allclose(a, c)
    assert model.generator.training  # sample() restores the live generator's mode


@pytest.mark.parametrize("variant", ["bce", "hinge_sn", "wgan_gp"])
def test_data_parallel_form_of_the_steps_trains_identically(variant, digits, monkeypatch):
    """Under DDP each backward adds 0 * (the other network's parameters) so that DDP needs no search for unused
    parameters (conf/trainer/ddp.yaml: strategy ddp). On one process that form gives the same weights, bit for bit."""
    weights = []
    for distributed in (False, True):
        if distributed:
            monkeypatch.setattr(GAN, "_untouched", lambda self, net: 0.0 * sum(p.sum() for p in net.parameters()))
        torch.manual_seed(0)
        model = make_gan(**VARIANTS[variant])
        fit(model, digits, max_steps=12)
        weights.append(model.state_dict())
    assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])


@pytest.mark.slow
def test_gan_trains_under_ddp_without_the_unused_parameter_search(tmp_path):
    """Two gloo processes with strategy=ddp (find_unused_parameters=False): DDP raises at the second step if a
    backward leaves a parameter without gradient (the generator's in a critic step, the critic's in a generator
    step). ~1 min on 2 shared cores."""
    from conftest import tiny_overrides
    from test_cli import gen_lightning

    run_dir = tmp_path / "ddp"
    overrides = ["trainer=ddp", "trainer.accelerator=cpu", "trainer.devices=2", "trainer.max_steps=24"]
    proc = gen_lightning("fit", *tiny_overrides(run_dir, *overrides, model="wgan_gp"), timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert OmegaConf.load(run_dir / "config.yaml").trainer.strategy == "ddp"


def test_validation_metric_accumulates_over_batches(digits):
    model = make_gan(ema_decay=0)
    trainer = L.Trainer(accelerator="cpu", logger=False, enable_progress_bar=False, enable_model_summary=False)
    (result,) = trainer.validate(model, eval_loader(digits, 500), verbose=False)
    # Recompute the critic loss over the whole set with the same fixed noise (seed = batch index).
    model.eval()
    total = 0.0
    with torch.no_grad():
        for i, (x, _) in enumerate(eval_loader(digits, 500)):
            z = torch.randn(len(x), 16, generator=gen(i))
            real, fake = model.discriminator(x), model.discriminator(model.generator(z))
            total += len(x) * (nn.functional.softplus(-real).mean() + nn.functional.softplus(fake).mean())
    assert result["val/d_loss"] == pytest.approx(total.item() / len(digits), rel=1e-5)


def test_gradient_clipping_bounds_both_optimizers_steps(digits):
    def grad_norms(clip: float) -> tuple[float, float]:
        torch.manual_seed(0)
        model = make_gan(gradient_clip_val=clip)
        fit(model, digits, max_steps=4)
        # The generator's gradients stay from the last generator step, the critic's from its last step
        # (the critic is toggled off during generator steps).
        norm = lambda net: torch.cat([p.grad.flatten() for p in net.parameters()]).norm().item()  # noqa: E731
        return norm(model.generator), norm(model.discriminator)

    assert min(grad_norms(0.0)) > 1e-2
    assert max(grad_norms(1e-3)) <= 1e-3 * (1 + 1e-4)


# ------------------------------------------------------------ EMA, checkpoints
def test_ema_weights_differ_and_drive_sampling(digits):
    torch.manual_seed(0)
    model = make_gan(ema_decay=0.9)
    fit(model, digits, max_steps=10)
    live, shadow = model.generator.state_dict(), model.ema.shadow.state_dict()
    assert all(torch.equal(live[k], shadow[k]) for k in live if "running" in k or "num_batches" in k)
    assert not torch.allclose(live["project.weight"], shadow["project.weight"])
    assert model.sample_info() == {"weights": "ema"}
    z = torch.randn(4, 16, generator=gen(3))
    with torch.no_grad():
        expected, raw = model.ema.shadow(z), model.generator.eval()(z)
    model.generator.train()
    torch.testing.assert_close(model.sample(4, gen(3)), expected)
    assert not torch.allclose(expected, raw)

    no_ema = make_gan(ema_decay=None)
    assert no_ema.ema is None and no_ema.sample_info() == {"weights": "raw"}
    with torch.no_grad():
        torch.testing.assert_close(no_ema.sample(4, gen(3)), no_ema.generator.eval()(z))


def test_checkpoint_round_trip(digits, tmp_path):
    torch.manual_seed(0)
    model = make_gan(**VARIANTS["conditional"], spectral_norm=True)
    trainer = fit(model, digits, max_steps=8)
    path = tmp_path / "gan.ckpt"
    trainer.save_checkpoint(path)
    loaded = GAN.load_from_checkpoint(path)
    assert loaded.hparams == model.hparams and int(loaded.critic_steps) == 4
    torch.testing.assert_close(loaded.sample(6, gen(5)), model.sample(6, gen(5)), rtol=0, atol=0)
    x, y = digits.tensors[0][:6], digits.tensors[1][:6]
    model.eval(), loaded.eval()
    with torch.no_grad():
        torch.testing.assert_close(loaded.discriminator(x, y), model.discriminator(x, y))
    # Training resumes from the checkpoint under manual optimisation (optimizer states and step counts).
    resumed = fit(loaded, digits, max_steps=12, ckpt_path=path)
    assert resumed.global_step == 12 and int(loaded.critic_steps) == 6


# ------------------------------------------------------------ conditional
def test_conditional_sampling_with_labels(digits):
    torch.manual_seed(0)
    model = make_gan(**VARIANTS["conditional"])
    fit(model, digits, max_steps=20)
    assert model.sample(7, gen(0), labels=3).shape == (7, 1, 8, 8)
    assert model.sample(3, gen(0), labels=[1, 2, 9]).shape == (3, 1, 8, 8)
    # Same noise, other classes: the labels reach the generator.
    assert not torch.allclose(model.sample(5, gen(0), labels=1), model.sample(5, gen(0), labels=7))
    assert model.sample_info() == {"weights": "ema", "labels": "uniform"}
    with pytest.raises(ValueError, match="one class or 4 classes"):
        model.sample(4, gen(0), labels=[1, 2])
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 9\]"):
        model.sample(2, gen(0), labels=10)
    with pytest.raises(ValueError, match="unconditional"):
        make_gan().sample(2, gen(0), labels=1)


def test_preview_and_interpolate(digits):
    model = make_gan(**VARIANTS["conditional"])
    batch = (digits.tensors[0][:16], digits.tensors[1][:16])
    preview = model.preview(batch, gen(0))
    assert preview["samples"].shape == (80, 1, 8, 8) and preview["samples_raw"].shape == (80, 1, 8, 8)
    torch.testing.assert_close(model.preview(batch, gen(0))["samples"], preview["samples"])
    assert make_gan(ema_decay=0).preview(batch, gen(0)).keys() == {"samples"}

    fit(model, digits, max_steps=10)
    images, cols = model.render("interpolate", *batch, generator=gen(0), rows=3, steps=5)
    assert images.shape == (15, 1, 8, 8) and cols == 5
    # Each row is a continuous path: neighbours are closer than the row's two ends.
    rows = images.view(3, 5, -1)
    step = (rows[:, 1:] - rows[:, :-1]).abs().mean(2)  # (3, 4)
    assert (step.max(1).values < (rows[:, -1] - rows[:, 0]).abs().mean(1)).all()
    with pytest.raises(ValueError, match="unknown sample mode 'inpaint'"):
        model.render("inpaint", *batch)


# ------------------------------------------------------------ learning
def moment_gaps(fake: torch.Tensor, real: torch.Tensor) -> tuple[float, float]:
    """Mean squared gaps of the per-pixel mean image and per-pixel standard deviation."""
    return (fake.mean(0) - real.mean(0)).pow(2).mean().item(), (fake.std(0) - real.std(0)).pow(2).mean().item()


def test_dcgan_learns_digit_statistics(digits):
    # An untrained generator outputs ~0 everywhere (mean gap ~0.42); real digits are mostly -1 background with
    # bright strokes in the middle. 300 batches bring both per-pixel moments close (measured: mean gap 0.033,
    # std gap 0.03); a wrong loss sign or a broken generator step leaves them far off.
    real = digits.tensors[0]
    torch.manual_seed(0)
    model = make_gan(latent_dim=32, hidden_dim=32, ema_decay=0.99)
    before = moment_gaps(model.sample(1000, gen(1)), real)
    fit(model, digits, max_steps=600)
    after = moment_gaps(model.sample(1000, gen(1)), real)
    assert after[0] < 0.25 * before[0] and after[1] < 0.25 * before[1], (before, after)


@pytest.mark.slow
@pytest.mark.parametrize("variant", ["hinge_sn", "wgan_gp"])
def test_other_losses_learn_digit_statistics(variant, digits):
    # 3000 optimizer steps at lr 2e-4: 1500 generator steps for hinge + SN, 500 for WGAN-GP (n_critic 5).
    # Measured gaps (mean, std) from (0.42, 0.28) untrained: hinge + SN (0.0004, 0.0018),
    # WGAN-GP (0.0067, 0.0067).
    real = digits.tensors[0]
    torch.manual_seed(0)
    args = {**VARIANTS[variant], "lr_g": 2e-4, "lr_d": 2e-4}
    model = make_gan(**args, latent_dim=32, hidden_dim=32, ema_decay=0.99)
    before = moment_gaps(model.sample(1000, gen(1)), real)
    fit(model, digits, max_steps=3000)
    after = moment_gaps(model.sample(1000, gen(1)), real)
    assert after[0] < 0.25 * before[0] and after[1] < 0.25 * before[1], (before, after)


@pytest.mark.slow
def test_conditional_gan_draws_the_requested_digits(digits):
    # A logistic-regression digit classifier fit on the real digits (train accuracy 0.996) must recognise the
    # class asked of the generator far above chance (0.1), and each class must keep its variety (no collapse
    # to one image per class). Measured after 1500 batches: accuracy 0.967, within-class pixel std 0.32
    # against 0.33 for the real digits.
    from sklearn.linear_model import LogisticRegression

    images, targets = digits.tensors
    classifier = LogisticRegression(max_iter=2000).fit(images.flatten(1).numpy(), targets.numpy())
    torch.manual_seed(0)
    model = make_gan(**VARIANTS["conditional"], latent_dim=32, hidden_dim=32, ema_decay=0.99)
    fit(model, digits, max_steps=3000)
    labels = torch.arange(10).repeat(100)
    fake = model.sample(1000, gen(1), labels=labels)
    accuracy = (classifier.predict(fake.flatten(1).numpy()) == labels.numpy()).mean()
    within_std = lambda x, y: torch.stack([x[y == k].std(0).mean() for k in range(10)]).mean().item()  # noqa: E731
    assert accuracy > 0.8, accuracy
    assert within_std(fake, labels) > 0.6 * within_std(images, targets)
