"""The image-to-image family (gen_lightning/img2img/): networks, losses, training, pools, previews, metrics."""

from __future__ import annotations

import inspect
import json
import urllib.error
from pathlib import Path

import lightning as L
import pytest
import torch
import torch.nn.functional as F
from conftest import preset, tiny_overrides
from hydra.utils import instantiate
from omegaconf import OmegaConf
from PIL import Image
from torchmetrics.image.fid import FrechetInceptionDistance

from gen_lightning.callbacks.resume import STATE_KEY
from gen_lightning.config import compose
from gen_lightning.data.images import PairedImageDataModule, UnpairedImageDataModule
from gen_lightning.img2img.base import ImageTranslator
from gen_lightning.img2img.bicubic import Resize
from gen_lightning.img2img.cyclegan import CycleGAN, linear_decay
from gen_lightning.img2img.nets import PatchDiscriminator, ResnetGenerator, SRResNet, UNetGenerator
from gen_lightning.img2img.pix2pix import Pix2Pix
from gen_lightning.img2img.sr import SuperResolution
from gen_lightning.metrics.extractors import build_extractor, to_uint8_rgb
from gen_lightning.metrics.image import _Given
from gen_lightning.metrics.paired import PairedImageMetrics
from gen_lightning.run import train
from gen_lightning.run.checkpoint import _comparable, load_module

DIGITS = {"source": "digits", "channels": 1, "image_size": 8}


def paired(transform="downscale:2"):
    dm = PairedImageDataModule(images=DIGITS, transform=transform)
    dm.setup("fit")
    return dm


def quiet_trainer(steps: int, **kwargs) -> L.Trainer:
    options = {"accelerator": "cpu", "max_steps": steps, "logger": False, "enable_checkpointing": False,
               "enable_progress_bar": False, "enable_model_summary": False, "num_sanity_val_steps": 0,
               "use_distributed_sampler": False, "limit_val_batches": 2}  # fmt: skip
    return L.Trainer(**{**options, **kwargs})


# ---------------------------------------------------------------------------------------- networks


@pytest.mark.parametrize("scale", [2, 4, 8])
def test_srresnet_upsamples_by_pixel_shuffle(scale):
    net = SRResNet(1, 3, scale, hidden_dim=8, num_res_blocks=1)
    assert net(torch.randn(2, 1, 4, 4)).shape == (2, 3, 4 * scale, 4 * scale)
    assert sum(isinstance(m, torch.nn.PixelShuffle) for m in net.modules()) == {2: 1, 4: 2, 8: 3}[scale]


def test_other_networks_shapes_and_errors():
    unet = UNetGenerator(1, 3, num_downs=5, hidden_dim=4)
    assert unet(torch.randn(2, 1, 28, 28)).shape == (2, 3, 28, 28)  # padded to 32 inside, cropped back
    assert PatchDiscriminator(2, 28, 4, num_layers=2)(torch.randn(2, 2, 28, 28)).shape == (2, 1, 5, 5)
    with pytest.raises(ValueError, match="too deep for 8x8"):
        PatchDiscriminator(1, 8, 4, num_layers=3)
    assert ResnetGenerator(1, 1, 4, 1)(torch.randn(1, 1, 28, 28)).shape == (1, 1, 28, 28)
    with pytest.raises(ValueError, match="2, 4 or 8.*7x7 to 21x21"):
        SuperResolution(channels=1, image_size=21, source_channels=1, source_image_size=7)
    with pytest.raises(ValueError, match="one size.*data.source_image_size=28"):
        CycleGAN(channels=1, image_size=28, source_channels=1, source_image_size=7)
    with pytest.raises(ValueError, match="identity_weight=0"):
        CycleGAN(channels=3, image_size=8, source_channels=1, source_image_size=8)


def test_generate_checks_its_inputs_and_options():
    model = Resize(channels=3, image_size=8, source_channels=1, source_image_size=4)
    out = model.generate(torch.zeros(2, 1, 4, 4))
    assert out.shape == (2, 3, 8, 8) and torch.equal(out, torch.zeros(2, 3, 8, 8))
    with pytest.raises(ValueError, match=r"inputs of shape \(B, 1, 4, 4\), got \(2, 3, 4, 4\)"):
        model.generate(torch.zeros(2, 3, 4, 4))
    with pytest.raises(ValueError, match="unknown options \\['beam'\\].*accepted: none"):
        model.generate(torch.zeros(2, 1, 4, 4), beam=3)


# ---------------------------------------------------------------------------------------- training


def test_srresnet_learns_to_beat_bicubic_on_digits():
    """A tiny SRResNet, 150 steps on 4x4 -> 8x8 digits: its validation MSE falls below bicubic's."""
    dm = paired()
    torch.manual_seed(0)
    model = SuperResolution(**dm.model_kwargs(), hidden_dim=16, num_res_blocks=2, lr=2e-3)
    trainer = quiet_trainer(150, limit_val_batches=None)
    trainer.fit(model, datamodule=dm)
    val = dm.splits["val"]
    sources = torch.stack([val[i]["source"] for i in range(len(val))])
    targets = torch.stack([val[i]["target"] for i in range(len(val))])
    bicubic = Resize(**dm.model_kwargs()).generate(sources)
    assert F.mse_loss(model.generate(sources), targets) < 0.8 * F.mse_loss(bicubic, targets)


def test_cyclegan_pool_and_learning_rate_schedule():
    assert [linear_decay(s, 2, 4) for s in (0, 2, 3, 6, 9)] == pytest.approx([1.0, 1.0, 0.8, 0.2, 0.0])
    dm = UnpairedImageDataModule(domain_a=DIGITS, domain_b={**DIGITS, "image_size": 4, "pad": 2}, batch_size=3)
    dm.setup("fit")
    model = CycleGAN(**dm.model_kwargs(), hidden_dim=4, num_res_blocks=1, d_hidden_dim=4, d_layers=1, pool_size=4,
                     lr_constant_steps=2, lr_decay_steps=4)  # fmt: skip
    quiet_trainer(2 * 5).fit(model, datamodule=dm)  # 5 batches of 3: the pool (4) fills, then swaps
    assert model.pool_fill.tolist() == [4, 4] and model.pool_a.abs().sum() > 0
    opt_g = model.optimizers()[0]
    assert opt_g.param_groups[0]["lr"] == pytest.approx(2e-4 * linear_decay(5, 2, 4))
    assert set(model.state_dict()) >= {"pool_a", "pool_b", "pool_fill"}  # in checkpoints: resumes exactly


def test_training_logs_input_output_target_grids(tmp_path):
    val = ["trainer.val_check_interval=2", "trainer.check_val_every_n_epoch=null", "trainer.limit_val_batches=1"]
    cfg = compose(tiny_overrides(tmp_path / "run", "trainer.max_steps=4", *val, model="pix2pix"))
    train.fit(cfg)
    grids = sorted((tmp_path / "run" / "samples" / "translations").glob("*.png"))
    assert grids
    from gen_lightning.callbacks.samples import PADDING, TITLE_BAND, upscale

    # 3 columns of 8x8 images scaled up (nearest), under their titles: input | output | target
    cell = 8 * upscale(8, 8, 3, ("input", "output", "target")) + PADDING
    with Image.open(grids[-1]) as grid:
        assert grid.size == (3 * cell + PADDING, 8 * cell + PADDING + TITLE_BAND)


# ---------------------------------------------------------------------------------------- metrics


def test_paired_protocol_fid_and_content_match_a_direct_computation():
    """fid_clf and content_acc of the bicubic baseline equal torchmetrics' FID and the accuracy computed by hand
    on the same classifier."""
    dm = paired()
    model = Resize(**dm.model_kwargs())
    protocol = PairedImageMetrics(num_items=200, batch_size=64, classifier={"steps": 100})
    result = protocol.evaluate(model, dm)["metrics"]
    assert set(result) == {"val/psnr", "val/ssim", "val/l1", "val/fid_clf", "val/content_acc"}

    extractor = build_extractor("classifier", dm, device=torch.device("cpu"), classifier=protocol.classifier)
    val = dm.splits["val"]
    sources = torch.stack([val[i]["source"] for i in range(200)])
    labels = torch.stack([val[i]["source_label"] for i in range(200)])
    features, logits = extractor(to_uint8_rgb(model.generate(sources)))
    reference = extractor(to_uint8_rgb(dm.splits["train"].target.images.float() / 127.5 - 1))[0]
    fid = FrechetInceptionDistance(feature=_Given(extractor.feature_dim))
    fid.update(reference, real=True)
    fid.update(features, real=False)
    assert result["val/fid_clf"] == pytest.approx(float(fid.compute()), rel=1e-5)
    assert result["val/content_acc"] == pytest.approx(float((logits.argmax(1) == labels).float().mean()))


def test_unpaired_data_get_only_target_domain_scores():
    dm = UnpairedImageDataModule(domain_a=DIGITS, domain_b={**DIGITS, "pad": 0})
    dm.setup("fit")
    result = PairedImageMetrics(num_items=100, classifier={"steps": 100}).evaluate(Resize(**dm.model_kwargs()), dm)
    assert set(result["metrics"]) == {"val/fid_clf", "val/content_acc"} and result["protocol"]["paired"] is False
    # The untranslated digits against the digits themselves: the classifier reads them, FID is small (the bias of
    # 270 against 1,527 samples of 128 features).
    assert result["metrics"]["val/content_acc"] > 0.85 and result["metrics"]["val/fid_clf"] < 30


def _offline(monkeypatch, tmp_path):
    import torchvision.models._api as api

    def refuse(*args, **kwargs):
        raise urllib.error.URLError("no network")

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setattr(api, "load_state_dict_from_url", refuse)
    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", refuse)


def test_pretrained_backbones_fail_clearly_offline(monkeypatch, tmp_path):
    _offline(monkeypatch, tmp_path)
    from gen_lightning.img2img.perceptual import VGGFeatures

    with pytest.raises(RuntimeError, match=r"VGG-19.*vgg19-dcbb9e9d\.pth.*model\.features=classifier"):
        VGGFeatures()
    dm = paired()
    with pytest.raises(RuntimeError, match=r"LPIPS \(alex\).*alexnet-owt-7be5be79\.pth.*metrics\.lpips=null"):
        PairedImageMetrics(num_items=10, features=None, lpips="alex").evaluate(Resize(**dm.model_kwargs()), dm)


def test_model_and_data_must_agree_on_pairing(tmp_path):
    unpaired = [o for o in preset("cyclegan") if o.startswith("data")]
    overrides = [f"run_dir={tmp_path / 'r'}", "model=pix2pix", *unpaired, "logger=none", "metrics=none"]
    cfg = compose([*overrides, "model.hidden_dim=4", "model.d_layers=1", "trainer.max_steps=2"])
    with pytest.raises(ValueError, match="unpaired.*model=cyclegan"):
        train.fit(cfg)
    summary = json.loads((tmp_path / "r" / "metrics.json").read_text())
    assert summary["status"] == "failed"


def test_configs_build_every_model_on_its_data():
    """Each model's data config selects the paired_image protocol by default."""
    for name in ("bicubic", "srresnet", "srgan", "pix2pix", "cyclegan"):
        cfg = compose([f"model={name}", *preset(name)])
        assert cfg.metrics._target_.endswith("PairedImageMetrics")
        dm = instantiate(cfg.data)
        dm.setup("fit")
        model = instantiate(cfg.model, **dm.model_kwargs(), _convert_="all")
        assert model.task == "conditional" and PairedImageMetrics().accepts(model)


# Hyperparameters as the constructors of commit 15c097f saved them (one keyword each), before the settings
# dataclasses: a checkpoint written then must rebuild the same module with load_module's cls(**hparams).
SHAPES = {"channels": 1, "image_size": 8, "source_channels": 1, "source_image_size": 8, "num_classes": 0}
OLD_HPARAMS = {
    Pix2Pix: {**SHAPES, "hidden_dim": 4, "num_downs": None, "norm": "batch", "dropout": 0.5, "d_hidden_dim": 4,
              "d_layers": 1, "loss": "bce", "l1_weight": 100.0, "lr": 0.0002, "betas": [0.5, 0.999],
              "ema_decay": None, "gradient_clip_val": 0.0},
    CycleGAN: {**SHAPES, "hidden_dim": 4, "num_res_blocks": 1, "norm": "instance", "d_hidden_dim": 4, "d_layers": 1,
               "loss": "lsgan", "cycle_weight": 10.0, "identity_weight": 0.5, "pool_size": 2, "lr": 0.0002,
               "betas": [0.5, 0.999], "lr_constant_steps": 0, "lr_decay_steps": 0, "ema_decay": 0.9,
               "gradient_clip_val": 0.0},
    SuperResolution: {**SHAPES, "source_image_size": 4, "hidden_dim": 4, "num_res_blocks": 1, "pixel_loss": "mse",
                      "pixel_weight": 1.0, "perceptual_weight": 0.0, "adversarial_weight": 0.001,
                      "features": "classifier", "loss": "bce", "d_hidden_dim": 4, "d_dense_dim": 8,
                      "pretrain_steps": 0, "lr": 0.0001, "lr_d": 0.0001, "betas": [0.9, 0.999], "ema_decay": None,
                      "gradient_clip_val": 0.0},
}  # fmt: skip


@pytest.mark.parametrize("cls", list(OLD_HPARAMS), ids=lambda c: c.__name__)
def test_old_style_hyperparameters_rebuild_the_module_from_a_checkpoint(cls, tmp_path):
    hparams = OLD_HPARAMS[cls]
    module = cls(**hparams).eval()
    assert _comparable(dict(module.hparams)) == _comparable(hparams)
    target = f"{cls.__module__}.{cls.__qualname__}"
    torch.save({"state_dict": module.state_dict(), "hyper_parameters": hparams, STATE_KEY: {"target": target}},
               tmp_path / "old.ckpt")  # fmt: skip
    x = torch.linspace(-1, 1, hparams["source_image_size"] ** 2).view(1, 1, hparams["source_image_size"], -1)
    assert torch.equal(load_module(tmp_path / "old.ckpt").generate(x), module.generate(x))


def test_image_to_image_hyperparameters_are_one_list_and_bad_values_name_their_key():
    conf = Path(__file__).resolve().parents[1] / "conf" / "model"
    for cls, name in ((Pix2Pix, "pix2pix"), (CycleGAN, "cyclegan"), (SuperResolution, "srresnet"), (Resize, "bicubic")):
        keys = set(OmegaConf.load(conf / f"{name}.yaml")) - {"_target_"}
        assert set(inspect.signature(cls).parameters) == keys | set(SHAPES), name
    defaults = {name: p.default for name, p in inspect.signature(CycleGAN).parameters.items()}
    assert defaults["loss"] == "lsgan" and defaults["norm"] == "instance" and defaults["lr"] == 2e-4
    shapes = {**SHAPES, "hidden_dim": 4, "d_hidden_dim": 4, "d_layers": 1}
    with pytest.raises(ValueError, match=r"CycleGAN: model.pool_size=2.5 is not of type int"):
        CycleGAN(**shapes, num_res_blocks=1, pool_size=2.5)
    with pytest.raises(ValueError, match=r"Pix2Pix has no hyperparameter l1; it takes: .*l1_weight"):
        Pix2Pix(**shapes, l1=10.0)
    with pytest.raises(ValueError, match=r"model.norm must be one of .*got 'group'"):
        Pix2Pix(**shapes, norm="group")
    with pytest.raises(ValueError, match=r"unknown GAN loss 'wgan' \(model.loss\)"):
        SuperResolution(**{**SHAPES, "source_image_size": 4}, loss="wgan")
    with pytest.raises(ValueError, match="Pix2Pix needs the hyperparameter channels"):
        Pix2Pix(image_size=8, source_channels=1, source_image_size=8)


# ---------------------------------------------------------------------------------------- DDP


SLOW = pytest.mark.slow


def test_data_parallel_form_of_the_steps_trains_identically(monkeypatch):
    """Under DDP ``optimizer_step_on`` toggles nothing and adds 0 * (every parameter) to each loss, so that DDP needs
    no search for unused parameters (conf/trainer/ddp.yaml: strategy ddp). On one process that form gives the same
    weights, bit for bit, for each adversarial model (SRGAN from pixel pre-training into its adversarial phase)."""
    dm = paired()
    unpaired = UnpairedImageDataModule(domain_a=DIGITS, domain_b={**DIGITS, "image_size": 4, "pad": 2}, batch_size=3)
    unpaired.setup("fit")
    edges = paired("edges")
    makers = {
        "pix2pix": (lambda: Pix2Pix(**edges.model_kwargs(), hidden_dim=4, d_hidden_dim=4, d_layers=1), 2, edges),
        "srgan": (lambda: SuperResolution(**dm.model_kwargs(), hidden_dim=4, num_res_blocks=1, d_hidden_dim=4,
                                          d_dense_dim=8, pretrain_steps=1, perceptual_weight=0.0), 2, dm),
        "cyclegan": (lambda: CycleGAN(**unpaired.model_kwargs(), hidden_dim=4, num_res_blocks=1, d_hidden_dim=4,
                                      d_layers=1, pool_size=2), 2, unpaired),
    }  # fmt: skip
    for name, (make, per_batch, data) in makers.items():
        weights = []
        for distributed in (False, True):
            if distributed:
                monkeypatch.setattr(ImageTranslator, "optimizer_step_on", lambda m, o, f: m._step_on(o, f, True))
            torch.manual_seed(0)
            model = make()
            quiet_trainer(3 * per_batch, limit_val_batches=0).fit(model, datamodule=data)
            weights.append(model.state_dict())
        monkeypatch.undo()
        assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0]), name


@pytest.mark.parametrize("model", ["pix2pix", pytest.param("srgan", marks=SLOW), pytest.param("cyclegan", marks=SLOW)])
def test_ddp_on_two_cpu_processes(tmp_path, model):
    """2-process DDP (gloo) through the command line: the validation loss and the paired_image protocol are
    exact over both processes (equal to one process on the same weights)."""
    from test_cli import gen_lightning

    from gen_lightning.metrics.evaluate import evaluate_module
    from gen_lightning.run.checkpoint import load_module

    run_dir = tmp_path / "ddp"
    protocol = ["metrics=paired_image", "metrics.num_items=150", "metrics.batch_size=32"]
    protocol.append("metrics.classifier.steps=100")
    # 8 batches, validated after the 4th and the 8th: the last validation sees the checkpoint's weights. Lightning
    # counts both optimizers' steps (SRGAN's first 2 batches pre-train the generator alone: 1 step each).
    steps = 14 if model == "srgan" else 16
    ddp = ["trainer=ddp", "trainer.accelerator=cpu", "trainer.devices=2", f"trainer.max_steps={steps}"]
    val = ["trainer.val_check_interval=4", "trainer.check_val_every_n_epoch=null", "trainer.limit_val_batches=null"]
    overrides = [o for o in tiny_overrides(run_dir, *ddp, *val, *protocol, model=model) if o != "metrics=none"]
    proc = gen_lightning("fit", *overrides, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads((run_dir / "metrics.json").read_text())
    assert summary["status"] == "completed" and summary["protocol"]["world_size"] == 2
    module = load_module(run_dir / "checkpoints" / "last.ckpt")
    cfg = compose(overrides)
    dm = instantiate(cfg.data)
    single = quiet_trainer(1, limit_val_batches=None).validate(module, datamodule=dm, verbose=False)[0]
    assert single["val/loss"] == pytest.approx(summary["final"]["val/loss"], rel=1e-5)
    alone = evaluate_module(module, dm, cfg.metrics)["metrics"]
    assert alone.keys() == {k for k in summary["final"] if k != "val/loss"}
    for key, value in alone.items():
        assert value == pytest.approx(summary["final"][key], rel=1e-4, abs=1e-6), key
