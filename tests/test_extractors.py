"""Feature extractors: uint8 quantisation, Inception weights offline, the resize, the cached classifier."""

from __future__ import annotations

import pytest
import torch
from lightning.pytorch import LightningDataModule, LightningModule
from sklearn.datasets import load_digits
from torch.utils.data import TensorDataset

from gen_lightning.data.loaders import eval_loader
from gen_lightning.metrics import ImageMetrics, evaluate_module, extractors
from gen_lightning.metrics.extractors import (
    ClassifierSettings,
    InceptionExtractor,
    inception_weights_path,
    load_or_train_classifier,
    register_with_torch_fidelity,
    to_uint8_rgb,
)

CPU = torch.device("cpu")


@pytest.fixture(autouse=True)
def one_thread():
    # The CPU is shared: two threads fighting over it are far slower than one.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def digits_sets() -> tuple[TensorDataset, TensorDataset]:
    digits = load_digits()
    images = torch.tensor(digits.images, dtype=torch.float32)[:, None] / 8 - 1  # (1797, 1, 8, 8) in [-1, 1]
    labels = torch.tensor(digits.target)
    return TensorDataset(images[:1500], labels[:1500]), TensorDataset(images[1500:], labels[1500:])


def test_uint8_quantisation_rounds_clamps_and_repeats_grey():
    x = torch.tensor([-1.5, -1.0, -0.999, 0.0, 0.5, 1.0, 2.0]).view(1, 1, 1, 7)
    out = to_uint8_rgb(x)
    assert out.dtype == torch.uint8 and out.shape == (1, 3, 1, 7)
    # 0.0 -> 127.5 -> 128 (half to even); -0.999 -> 0.1275 -> 0; out of range clamps.
    assert out[0, 0, 0].tolist() == [0, 0, 0, 128, 191, 255, 255]
    assert torch.equal(out[:, 0], out[:, 2])
    with pytest.raises(ValueError, match="expected images"):
        to_uint8_rgb(torch.zeros(2, 2, 8, 8))


def test_inception_offline_error_names_the_weights_path(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))

    def no_network(*args, **kwargs):
        raise OSError("network unreachable")

    monkeypatch.setattr(torch.hub, "download_url_to_file", no_network)
    expected = tmp_path / "hub" / "checkpoints" / "weights-inception-2015-12-05-6726825d.pth"
    assert inception_weights_path() == expected
    with pytest.raises(RuntimeError) as err:
        InceptionExtractor()
    assert str(expected) in str(err.value) and "could not be downloaded" in str(err.value)
    assert "metrics=classifier" in str(err.value)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        InceptionExtractor(tmp_path / "missing.pth")


@pytest.fixture(scope="module")
def random_inception_weights(tmp_path_factory):
    """A randomly initialised Inception state dict saved where torch hub looks (no download)."""
    from torch_fidelity import feature_extractor_inceptionv3 as tf_inception

    home = tmp_path_factory.mktemp("torch_home")
    with pytest.MonkeyPatch.context() as mp, torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        mp.setattr(tf_inception, "load_state_dict_from_url", lambda *a, **k: None)
        mp.setattr(tf_inception.FeatureExtractorInceptionV3, "load_state_dict", lambda self, sd: None)
        net = tf_inception.FeatureExtractorInceptionV3("inception-v3-compat", ["2048"])
    path = home / "hub" / "checkpoints" / "weights-inception-2015-12-05-6726825d.pth"
    path.parent.mkdir(parents=True)
    torch.save(net.state_dict(), path)
    return home


def test_inception_uses_torch_fidelity_resize_not_torchmetrics_default(random_inception_weights, monkeypatch):
    from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3
    from torchmetrics.image.fid import NoTrainInceptionV3

    monkeypatch.setenv("TORCH_HOME", str(random_inception_weights))
    monkeypatch.setattr(torch.hub, "download_url_to_file", lambda *a, **k: pytest.fail("must not download"))
    ours = InceptionExtractor()
    assert len(ours.weights_sha256) == 64
    images = to_uint8_rgb(torch.rand(2, 1, 28, 28) * 2 - 1)
    features, logits = ours(images)
    assert features.shape == (2, 2048) and logits.shape == (2, 1008)

    path = str(inception_weights_path())
    reference = FeatureExtractorInceptionV3("inception-v3-compat", ["2048"], feature_extractor_weights_path=path)
    assert torch.allclose(features, reference(images)[0], rtol=1e-5, atol=1e-6)
    # torchmetrics' FID with antialias=False is the same network and resize ...
    tm_compat = NoTrainInceptionV3("inception-v3-compat", ["2048"], path, antialias=False)
    assert torch.allclose(features, tm_compat(images), rtol=1e-5, atol=1e-6)
    # ... its default (and IS / KID, which have no switch) resizes differently.
    tm_default = NoTrainInceptionV3("inception-v3-compat", ["2048"], path)
    assert (features - tm_default(images)).abs().max() > 1e-2 * features.abs().max()


class TinyImages(LightningDataModule):
    """20 random 28x28 grey images: just enough data module for the Inception path end to end."""

    dataset_key = "tiny-random"

    def setup(self, stage: str) -> None:
        images = torch.rand(20, 1, 28, 28, generator=torch.Generator().manual_seed(0)) * 2 - 1
        self.images = TensorDataset(images, torch.zeros(20, dtype=torch.long))

    def reference_loader(self, split: str, batch_size: int):
        return eval_loader(self.images, batch_size)

    def model_kwargs(self) -> dict:
        return {"channels": 1, "image_size": 28, "num_classes": 0}


class NoiseImages(LightningModule):
    modality = "image"

    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        return torch.rand(n, 1, 28, 28, generator=generator) * 2 - 1

    def sample_info(self) -> dict:
        return {"sampler": "uniform", "weights": "raw"}


def test_inception_protocol_end_to_end(random_inception_weights, monkeypatch, tmp_path):
    monkeypatch.setenv("TORCH_HOME", str(random_inception_weights))
    settings = dict(num_samples=20, batch_size=10, is_splits=2, kid_subsets=3, kid_subset_size=10)
    with pytest.warns(UserWarning, match="rank-deficient"):
        metrics = ImageMetrics(features="inception", cache_dir=tmp_path, **settings)
    result = evaluate_module(NoiseImages(), TinyImages(), metrics)
    names = ("fid", "is", "is_std", "kid", "kid_std", "precision", "recall")
    assert set(result["metrics"]) == {f"val/{name}" for name in names}  # no suffix for Inception
    card = result["protocol"]
    assert card["extractor"] == "inception-v3-compat" and card["feature_layer"] == "2048"
    assert card["logits_layer"] == "logits_unbiased" and card["resize"].startswith("torch-fidelity tf1x")
    assert card["extractor_weights_sha256"] == extractors.file_sha256(inception_weights_path())
    assert card["reference_size"] == 20 and card["sample_sampler"] == "uniform"
    assert result["metrics"]["val/fid"] > 0


def test_classifier_is_accurate_cached_and_leaves_global_rng(tmp_path):
    train, val = digits_sets()
    settings = ClassifierSettings(steps=150, seed=0)
    kwargs = dict(num_classes=10, image_size=8, dataset_key="digits-test", device=CPU, cache_dir=tmp_path)
    before = torch.get_rng_state()
    first = load_or_train_classifier(train, val, settings=settings, **kwargs)
    assert torch.equal(before, torch.get_rng_state())
    assert first.accuracy > 0.85, first.accuracy  # 10 classes: chance is 0.1
    assert len(list((tmp_path / "classifier").glob("*.pt"))) == 1

    def must_not_train(*args, **kwargs):
        raise AssertionError("the cached classifier should be loaded, not retrained")

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(extractors, "train_classifier", must_not_train)
        again = load_or_train_classifier(train, val, settings=settings, **kwargs)
    assert again.weights_sha256 == first.weights_sha256 and again.accuracy == first.accuracy
    images = to_uint8_rgb(val.tensors[0][:16])
    assert all(torch.equal(a, b) for a, b in zip(first(images), again(images)))

    # Same settings retrained from scratch (other cache): bit-identical weights, deterministic seed.
    other = load_or_train_classifier(train, val, settings=settings, **{**kwargs, "cache_dir": tmp_path / "b"})
    assert other.weights_sha256 == first.weights_sha256
    with pytest.raises(ValueError, match="same|trained on 8x8"):
        first(to_uint8_rgb(torch.zeros(1, 1, 28, 28)))


def test_classifier_needs_labels(tmp_path):
    train, val = digits_sets()
    with pytest.raises(ValueError, match="needs class labels.*num_classes=0"):
        load_or_train_classifier(
            train,
            val,
            num_classes=0,
            image_size=8,
            dataset_key="x",
            settings=ClassifierSettings(),
            device=CPU,
        )


def test_torch_fidelity_registration_wraps_the_same_extractor(tmp_path):
    from torch_fidelity.utils import create_feature_extractor

    train, val = digits_sets()
    ours = load_or_train_classifier(
        train, val, num_classes=10, image_size=8, dataset_key="digits-test", device=CPU,
        settings=ClassifierSettings(steps=10), cache_dir=tmp_path,
    )  # fmt: skip
    name = register_with_torch_fidelity(ours, "gl-test-registration")
    wrapped = create_feature_extractor(name, ["logits", "features"], cuda=False, verbose=False)
    images = to_uint8_rgb(val.tensors[0][:8])
    logits, features = wrapped(images)
    assert torch.equal(features, ours(images)[0]) and torch.equal(logits, ours(images)[1])
