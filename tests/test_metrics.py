"""Image metrics against torch-fidelity, brute force and DDP; the ImageMetrics callback in a Trainer."""

from __future__ import annotations

import gzip
import math
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import SHARED_DATA, shared_data
from hydra.utils import instantiate
from lightning.pytorch import LightningDataModule, LightningModule, Trainer
from lightning.pytorch.loggers import Logger
from omegaconf import OmegaConf
from sklearn.datasets import load_digits
from torch.utils.data import TensorDataset

from gen_lightning.data.loaders import eval_loader, train_loader
from gen_lightning.metrics import ImageFidelity, ImageMetrics, evaluate_module
from gen_lightning.metrics import image as image_metrics
from gen_lightning.metrics.extractors import (
    ClassifierExtractor,
    ClassifierNet,
    Uint8Images,
    register_with_torch_fidelity,
)
from gen_lightning.metrics.image import (
    Reference,
    extract_features,
    inception_score,
    kernel_inception_distance,
    precision_recall,
)

MNIST = SHARED_DATA / "mnist10k"
CONF = Path(__file__).resolve().parents[1] / "conf" / "metrics"
FAST = dict(features="classifier", num_samples=230, batch_size=50, kid_subsets=10, kid_subset_size=100)
FAST["classifier"] = {"steps": 60}


@pytest.fixture(autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the CPU is shared: one thread each is fastest
    yield
    torch.set_num_threads(threads)


# ---------------------------------------------------------------- stand-ins for the lead's data and families


class DigitsDataModule(LightningDataModule):
    """sklearn digits (8x8 grey) with the image data module interface the metrics rely on."""

    dataset_key = "digits-test"

    def __init__(self, labelled: bool = True) -> None:
        super().__init__()
        self.labelled = labelled

    def setup(self, stage: str) -> None:
        digits = load_digits()
        images = torch.tensor(digits.images, dtype=torch.float32)[:, None] / 8 - 1  # (1797, 1, 8, 8)
        labels = torch.tensor(digits.target)
        self.sets = {
            "train": TensorDataset(images[:1500], labels[:1500]),
            "val": TensorDataset(images[1500:], labels[1500:]),
        }

    def reference_loader(self, split: str, batch_size: int):
        return eval_loader(self.sets[split], batch_size)

    def train_dataloader(self):
        return train_loader(self.sets["train"], 100, seed=0)

    def val_dataloader(self):
        return eval_loader(self.sets["val"], 100)

    def model_kwargs(self) -> dict:
        return {"channels": 1, "image_size": 8, "num_classes": 10 if self.labelled else 0}


class PoolModule(LightningModule):
    """A 'generator' that returns pool images plus Gaussian noise; all randomness from ``generator``."""

    modality = "image"

    def __init__(self, pool: torch.Tensor, noise: float = 0.0, use_global_rng: bool = False) -> None:
        super().__init__()
        self.pool, self.noise, self.use_global_rng = pool, noise, use_global_rng
        self.w = torch.nn.Parameter(torch.ones(3))

    def training_step(self, batch, batch_idx):
        # Draws from the global RNG, so the trained weights reveal any disturbance of it.
        return ((self.w - torch.randn(3)) ** 2).sum() * batch[0].mean().abs()

    def validation_step(self, batch, batch_idx):
        self.log("val/loss", batch[0].mean())

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        generator = None if self.use_global_rng else generator
        picks = torch.randint(len(self.pool), (n,), generator=generator)
        noise = torch.randn(n, *self.pool.shape[1:], generator=generator)
        return (self.pool[picks] + self.noise * noise).clamp(-1, 1).to(self.device)

    def sample_info(self) -> dict:
        return {"sampler": "pool", "steps": 1, "weights": "raw"}


class TextModule(LightningModule):
    modality = "text"


class CaptureLogger(Logger):
    def __init__(self) -> None:
        super().__init__()
        self.metrics, self.hparams = [], []

    name, version, experiment = "capture", 0, None

    def log_metrics(self, metrics, step=None):
        self.metrics.append((step, dict(metrics)))

    def log_hyperparams(self, params, *args, **kwargs):
        self.hparams.append(dict(params))


def digits_datamodule(labelled: bool = True) -> DigitsDataModule:
    dm = DigitsDataModule(labelled)
    dm.setup("fit")
    return dm


def load_mnist(n: int) -> tuple[torch.Tensor, torch.Tensor]:
    shared_data("mnist10k", "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")
    with gzip.open(MNIST / "t10k-images-idx3-ubyte.gz") as f:
        images = np.frombuffer(f.read(), np.uint8, offset=16).reshape(-1, 1, 28, 28)[:n]
    with gzip.open(MNIST / "t10k-labels-idx1-ubyte.gz") as f:
        labels = np.frombuffer(f.read(), np.uint8, offset=8)[:n]
    return torch.tensor(images, dtype=torch.float32) / 127.5 - 1, torch.tensor(labels, dtype=torch.long)


def random_cnn(image_size: int, seed: int = 0) -> ClassifierExtractor:
    """A fixed random-init CNN: a legitimate, deterministic feature map for comparing metric code."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = ClassifierNet(10)
    return ClassifierExtractor(net, accuracy=float("nan"), image_size=image_size, settings={})


def reference_of(extractor, images: torch.Tensor) -> Reference:
    loader = eval_loader(TensorDataset(images, torch.zeros(len(images), dtype=torch.long)), 250)
    features, logits = extract_features(extractor, loader)
    return Reference(features, logits, sha256="test", meta={})


def fidelity_of(extractor, real: torch.Tensor, fake: torch.Tensor, **settings) -> dict:
    fidelity = ImageFidelity(extractor, reference_of(extractor, real), **settings)
    for first in range(0, len(fake), 250):
        fidelity.update(fake[first : first + 250], torch.arange(first, min(first + 250, len(fake))))
    return fidelity.compute()


# ---------------------------------------------------------------- against independent references


def test_matches_torch_fidelity_on_mnist():
    import torch_fidelity

    images, _ = load_mnist(2000)
    real = images[:1000]
    # Other images plus strong noise: torch-fidelity computes KID in float32, which is good to ~1e-3 only
    # when KID is not tiny next to the kernel values (~1); our float64 sums match its float64 run to 1e-4.
    noise = torch.randn(1000, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    fake = (images[1000:] + 0.6 * noise).clamp(-1, 1)
    extractor = random_cnn(28)
    ours = fidelity_of(extractor, real, fake, kid_subset_size=500)
    theirs = torch_fidelity.calculate_metrics(
        input1=Uint8Images(fake),  # torch-fidelity's convention: input1 generated, input2 real
        input2=Uint8Images(real),
        feature_extractor=register_with_torch_fidelity(extractor, "gl-test-random-cnn"),
        isc=True, fid=True, kid=True, prc=True,
        kid_subset_size=500, cuda=False, cache=False, save_cpu_ram=True, verbose=False, batch_size=250,
    )  # fmt: skip
    pairs = {
        "fid": "frechet_inception_distance",
        "is": "inception_score_mean",
        "is_std": "inception_score_std",
        "kid": "kernel_inception_distance_mean",
        "kid_std": "kernel_inception_distance_std",
        "precision": "precision",
        "recall": "recall",
    }
    for ours_key, their_key in pairs.items():
        # kid_std is the spread of 100 subset KIDs that torch-fidelity sums in float32 with NumPy, whose
        # summation order depends on the CPU's SIMD width: on an AMD EPYC it differs from ours by 0.1%.
        rel = 5e-3 if ours_key == "kid_std" else 1e-3
        assert ours[ours_key] == pytest.approx(theirs[their_key], rel=rel), ours_key
    assert ours["fid"] > 1e-3 and ours["kid"] > 1e-4 and 0 < ours["precision"] < 1  # not 0 == 0


def test_is_and_kid_follow_torch_fidelity_splits_and_subsets():
    from torch_fidelity.metric_isc import isc_features_to_metric
    from torch_fidelity.metric_kid import kid_features_to_metric

    g = torch.Generator().manual_seed(1)
    logits = torch.randn(1003, 10, generator=g) * 3  # 1003: splits of unequal size
    theirs = isc_features_to_metric(logits, splits=10, shuffle=True, rng_seed=2020)
    assert inception_score(logits) == pytest.approx(
        (theirs["inception_score_mean"], theirs["inception_score_std"]), rel=1e-6
    )
    real, fake = torch.randn(700, 16, generator=g), torch.randn(650, 16, generator=g) + 0.3
    kid, kid_std, m = kernel_inception_distance(real, fake, subsets=20, subset_size=300)
    theirs = kid_features_to_metric(
        fake.double(), real.double(), kid_subsets=20, kid_subset_size=300, rng_seed=2020, verbose=False,
        kid_kernel="poly", kid_kernel_poly_degree=3, kid_kernel_poly_gamma=None, kid_kernel_poly_coef0=1,
    )  # fmt: skip
    assert m == 300
    assert (kid, kid_std) == pytest.approx(
        (theirs["kernel_inception_distance_mean"], theirs["kernel_inception_distance_std"]), rel=1e-4
    )


def test_kid_from_whole_kernels_equals_kid_per_subset():
    # The one-pass KID (kernels of all samples once, subset sums by indicators) and the per-subset kernels of
    # torch-fidelity's loop are one estimator: equal to float64 rounding, on subsets that overlap and that do not.
    g = torch.Generator().manual_seed(2)
    real, fake = torch.randn(400, 24, generator=g).relu(), (torch.randn(300, 24, generator=g) + 0.2).relu()
    for size in (300, 120):
        whole = kernel_inception_distance(real, fake, subsets=15, subset_size=size)
        per_subset = kernel_inception_distance(real, fake, subsets=15, subset_size=size, max_kernel_entries=0)
        assert whole == pytest.approx(per_subset, rel=1e-9, abs=1e-12)
        assert whole[0] > 1e-3


def brute_force_precision_recall(real: np.ndarray, fake: np.ndarray, k: int) -> tuple[float, float]:
    def dist(a, b):
        return np.sqrt(((a[:, None, :] - b[None, :, :]) ** 2).sum(-1))

    def radii(x):
        return np.sort(dist(x, x), axis=1)[:, k]  # column 0 is the point itself

    def inside(points, support):
        return np.mean([any(dist(p[None], support)[0] <= radii(support)) for p in points])

    return inside(fake, real), inside(real, fake)


def test_precision_recall_matches_brute_force():
    rng = np.random.RandomState(0)
    real = rng.randn(70, 5)
    fake = rng.randn(55, 5) * 0.9 + 0.7
    for k in (1, 3, 5):
        expected = brute_force_precision_recall(real, fake, k)
        got = precision_recall(torch.tensor(real, dtype=torch.float32), torch.tensor(fake, dtype=torch.float32), k, 16)
        assert got == pytest.approx(expected, abs=1e-12), k
        assert 0 < expected[0] < 1 and 0 < expected[1] < 1  # neither trivially 0 nor 1
    same = torch.tensor(real, dtype=torch.float32)
    assert precision_recall(same, same, 3) == (1.0, 1.0)


def test_fid_is_zero_on_itself_and_grows_with_noise():
    images = digits_datamodule().sets["train"].tensors[0]
    extractor = random_cnn(8)
    fast = dict(kid_subsets=5, kid_subset_size=200)
    itself = fidelity_of(extractor, images, images, **fast)["fid"]
    assert abs(itself) < 1e-7
    g = torch.Generator().manual_seed(0)
    noise = torch.randn(images.shape, generator=g)
    fids = [
        fidelity_of(extractor, images, (images + s * noise).clamp(-1, 1), **fast)["fid"] for s in (0.1, 0.2, 0.4, 0.8)
    ]
    assert all(a < b for a, b in zip(fids, fids[1:])), fids
    assert fids[0] > 1000 * abs(itself)


# ---------------------------------------------------------------- DDP: two processes equal one


def _ddp_worker(rank: int, world: int, init_file: str, cache_dir: str, out_dir: str) -> None:
    torch.distributed.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    torch.set_num_threads(1)
    dm = digits_datamodule()
    result = ImageMetrics(**FAST, cache_dir=cache_dir).evaluate(PoolModule(dm.sets["val"].tensors[0], 0.3), dm)
    torch.save(result, Path(out_dir) / f"{rank}.pt")
    torch.distributed.destroy_process_group()


@pytest.mark.slow  # ~40 s on the shared 2-core machine, most of it two fresh interpreters importing torch
def test_two_processes_give_the_one_process_result(tmp_path):
    dm = digits_datamodule()
    single = ImageMetrics(**FAST, cache_dir=tmp_path / "one").evaluate(PoolModule(dm.sets["val"].tensors[0], 0.3), dm)
    # The classifier is reused; the reference is extracted again, collectively, by the two processes.
    shutil.copytree(tmp_path / "one" / "classifier", tmp_path / "two" / "classifier")
    args = (2, str(tmp_path / "init"), str(tmp_path / "two"), str(tmp_path))
    torch.multiprocessing.spawn(_ddp_worker, args=args, nprocs=2, join=True)
    results = [torch.load(tmp_path / f"{rank}.pt", weights_only=False) for rank in range(2)]
    assert results[0]["metrics"] == results[1]["metrics"]
    for name, value in single["metrics"].items():
        assert results[0]["metrics"][name] == pytest.approx(value, rel=1e-6), name
    assert results[0]["protocol"]["world_size"] == 2 and single["protocol"]["world_size"] == 1
    assert len(list((tmp_path / "two" / "reference").glob("*.pt"))) == 1


# ---------------------------------------------------------------- the callback


def test_evaluation_is_reproducible_and_leaves_the_global_rng(tmp_path):
    dm = digits_datamodule()
    callback = ImageMetrics(**FAST, cache_dir=tmp_path)
    module = PoolModule(dm.sets["val"].tensors[0], noise=0.2)
    torch.manual_seed(123)
    before = torch.get_rng_state()
    first = callback.evaluate(module, dm)
    assert torch.equal(before, torch.get_rng_state())
    second = ImageMetrics(**FAST, cache_dir=tmp_path).evaluate(module, dm)  # fresh instance, cached files
    assert first["metrics"] == second["metrics"]
    names = ("fid", "is", "is_std", "kid", "kid_std", "precision", "recall")
    assert set(first["metrics"]) == {f"val/{name}_clf" for name in names} | {"val/clf_acc"}
    card = first["protocol"]
    assert card["extractor"] == "classifier" and len(card["extractor_weights_sha256"]) == 64
    assert card["reference_split"] == "train" and card["reference_size"] == 1500
    assert card["num_samples"] == 230 and card["resize"] == "none" and "uint8" in card["quantization"]
    assert card["sample_sampler"] == "pool" and card["sample_weights"] == "raw" and card["seed"] == 0
    assert card["kid_subset_size_used"] == 100 and card["classifier_val_accuracy"] == first["metrics"]["val/clf_acc"]
    assert first["metrics"]["val/clf_acc"] > 0.5

    with pytest.warns(UserWarning, match="drew from torch's global RNG"):
        callback.evaluate(PoolModule(dm.sets["val"].tensors[0], 0.2, use_global_rng=True), dm)
    assert torch.equal(before, torch.get_rng_state())


def test_better_samples_score_better(tmp_path):
    dm = digits_datamodule()
    callback = ImageMetrics(**FAST, cache_dir=tmp_path)
    real_like = callback.evaluate(PoolModule(dm.sets["val"].tensors[0], noise=0.0), dm)["metrics"]
    noise = callback.evaluate(PoolModule(torch.zeros(1, 1, 8, 8), noise=1.0), dm)["metrics"]
    assert real_like["val/fid_clf"] < noise["val/fid_clf"] / 5
    assert real_like["val/kid_clf"] < noise["val/kid_clf"]
    assert real_like["val/precision_clf"] > 0.5 > noise["val/precision_clf"]
    assert real_like["val/is_clf"] > noise["val/is_clf"]


def test_reference_is_cached_on_disk(tmp_path, monkeypatch):
    dm = digits_datamodule()
    module = PoolModule(dm.sets["val"].tensors[0])
    calls = []

    def counting_extract(*args):
        calls.append(args)
        return extract_features(*args)

    monkeypatch.setattr(image_metrics, "extract_features", counting_extract)
    first = ImageMetrics(**FAST, cache_dir=tmp_path).evaluate(module, dm)
    second = ImageMetrics(**FAST, cache_dir=tmp_path).evaluate(module, dm)
    assert len(calls) == 1  # the second instance read the file
    assert second["protocol"]["reference_sha256"] == first["protocol"]["reference_sha256"]
    ImageMetrics(**{**FAST, "reference_split": "val"}, cache_dir=tmp_path).evaluate(module, dm)
    assert len(calls) == 2  # another split has its own statistics
    assert len(list((tmp_path / "reference").glob("*.pt"))) == 2


def test_callback_in_a_trainer_logs_metrics_card_and_keeps_training_rng(tmp_path):
    def fit(callbacks):
        torch.manual_seed(0)
        dm = DigitsDataModule()
        module = PoolModule(digits_datamodule().sets["val"].tensors[0])
        logger = CaptureLogger()
        trainer = Trainer(
            max_epochs=3, limit_train_batches=2, limit_val_batches=1, logger=logger, callbacks=callbacks,
            accelerator="cpu", devices=1, num_sanity_val_steps=0, enable_checkpointing=False,
            enable_progress_bar=False, enable_model_summary=False,
        )  # fmt: skip
        trainer.fit(module, datamodule=dm)
        return trainer, module, logger

    callback = ImageMetrics(**{**FAST, "every_n_epochs": 2}, cache_dir=tmp_path)
    trainer, module, logger = fit([callback])
    _, plain, _ = fit([])
    assert torch.equal(module.w, plain.w)  # the callback did not move the training RNG stream

    assert "val/fid_clf" in trainer.callback_metrics  # self.log at epoch 2: a checkpoint monitor can use it
    steps = [step for step, metrics in logger.metrics if "val/fid_clf" in metrics]
    assert steps == [3, 5]  # Lightning's steps for the ends of epochs 2 and 3 (4 and 6 batches)
    assert callback.last_result["protocol"]["global_step"] == 6
    card = logger.hparams[-1]
    assert card["protocol/extractor"] == "classifier" and card["protocol/num_samples"] == 230

    path = tmp_path / "last.ckpt"
    trainer.save_checkpoint(path)
    checkpoint = torch.load(path, weights_only=False)
    assert set(checkpoint["state_dict"]) == {"w"}
    assert numel(checkpoint) == 3  # only w: no extractor weights, metric states or statistics anywhere


def numel(obj) -> int:
    if isinstance(obj, torch.Tensor):
        return obj.numel()
    if isinstance(obj, dict):
        return sum(numel(v) for v in obj.values())
    return sum(numel(v) for v in obj) if isinstance(obj, (list, tuple)) else 0


def test_text_modules_are_refused_up_front():
    """A protocol refuses a model of another task when training starts, naming what fits; its hooks skip it."""
    callback = ImageMetrics(**FAST)

    class FakeTrainer:
        sanity_checking, current_epoch, global_step, datamodule, loggers = False, 0, 1, None, []

    with pytest.raises(ValueError, match="scores unconditional image models, but TextModule does unconditional text"):
        callback.setup(FakeTrainer(), TextModule(), "fit")
    callback.on_validation_epoch_end(FakeTrainer(), TextModule())
    callback.on_train_end(FakeTrainer(), TextModule())
    assert callback.last_result is None
    with pytest.raises(ValueError, match="metrics=none"):
        evaluate_module(TextModule(), digits_datamodule(), FAST)


def test_bad_configuration_and_data_raise_clear_errors(tmp_path, monkeypatch):
    with pytest.raises(ValueError, match="metrics.features"):
        ImageMetrics(features="vgg")
    with pytest.raises(ValueError, match="reference_split"):
        ImageMetrics(reference_split="test")
    with pytest.raises(TypeError, match="unexpected keyword"):
        ImageMetrics(classifier={"epochz": 3})
    pool = digits_datamodule().sets["val"].tensors[0]
    with pytest.raises(ValueError, match="needs class labels"):
        evaluate_module(PoolModule(pool), DigitsDataModule(labelled=False), {**FAST, "cache_dir": str(tmp_path)})
    # Inception requested offline: an error naming the weights path, never a silent switch of extractor.
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))

    def offline(*args, **kwargs):
        raise OSError("network unreachable")

    monkeypatch.setattr(torch.hub, "download_url_to_file", offline)
    with pytest.raises(RuntimeError, match=re.escape(str(tmp_path / "torch" / "hub" / "checkpoints"))):
        evaluate_module(PoolModule(pool), digits_datamodule(), {**FAST, "features": "inception"})


def test_non_finite_samples_give_nan_not_numbers(tmp_path):
    dm = digits_datamodule()
    pool = dm.sets["val"].tensors[0].clone()
    pool[::2] = float("nan")
    result = ImageMetrics(**FAST, cache_dir=tmp_path).evaluate(PoolModule(pool), dm)
    assert result["protocol"]["nonfinite_samples"] > 0
    assert all(math.isnan(v) for k, v in result["metrics"].items() if k != "val/clf_acc")


def test_config_files_instantiate_the_callback():
    for name, features in (("inception", "inception"), ("classifier", "classifier")):
        callback = instantiate(OmegaConf.load(CONF / f"{name}.yaml"))
        assert isinstance(callback, ImageMetrics) and callback.features == features
    assert not OmegaConf.load(CONF / "none.yaml")  # empty: no callback
