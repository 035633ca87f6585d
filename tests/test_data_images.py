"""The image data module: embedded digits, the hub code path on local files, folders, parquet, bad input."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from helpers import mnist_arrays, write_mnist_parquet
from PIL import Image

from gen_lightning.data.images.module import ImageDataModule
from gen_lightning.data.sources import DataSourceError


def test_digits_is_embedded_scaled_and_split_deterministically():
    a, b = ImageDataModule(source="digits", seed=1), ImageDataModule(source="digits", seed=2)
    a.setup("fit")
    b.setup("fit")
    assert a.model_kwargs() == {"channels": 1, "image_size": 8, "num_classes": 10}
    assert len(a.splits["train"]) + len(a.splits["val"]) == 1797
    # The split depends on split_seed only, not on the run seed: every run is validated on the same images.
    assert torch.equal(a.splits["val"].images, b.splits["val"].images)
    x, y = next(iter(a.train_dataloader()))
    assert x.shape == (64, 1, 8, 8) and x.dtype == torch.float32 and y.dtype == torch.long
    assert x.min() >= -1 and x.max() <= 1 and x.min() == -1 and x.max() == 1
    # No image is in both splits (digits has a few exact duplicates, so compare indices via a fresh split).
    train_set = {bytes(img.numpy()) for img in a.splits["train"].images}
    overlap = sum(bytes(img.numpy()) in train_set for img in a.splits["val"].images)
    assert overlap < 5


def test_hub_code_path_on_local_parquet_with_mnist_schema(tmp_path, mnist_dir):
    """``datasets.load_dataset(name)`` on a local directory laid out like the hub repo ylecun/mnist."""
    repo = tmp_path / "ylecun_mnist"
    write_mnist_parquet(mnist_dir, repo, 600, split="train")
    write_mnist_parquet(mnist_dir, repo, 200, split="test")
    dm = ImageDataModule(source="hub", name=str(repo), val_split="test", image_size=28, batch_size=50)
    dm.prepare_data()
    dm.setup("fit")
    assert dm.model_kwargs() == {"channels": 1, "image_size": 28, "num_classes": 10}
    images, labels = mnist_arrays(mnist_dir, 600)
    # The pixels survive PNG encoding, parquet, decoding and scaling exactly.
    expected = torch.from_numpy(images).float().div(127.5).sub(1).unsqueeze(1)
    got = torch.stack([dm.splits["train"][i][0] for i in range(600)])
    assert torch.equal(got, expected)
    assert dm.splits["train"].labels.tolist() == labels.tolist()
    assert len(dm.splits["val"]) == 200


def test_parquet_source_and_resize(tmp_path, mnist_dir):
    path = write_mnist_parquet(mnist_dir, tmp_path, 100)
    dm = ImageDataModule(source="parquet", path=str(path.parent), image_size=16, val_fraction=0.2)
    dm.setup("fit")
    assert dm.model_kwargs()["image_size"] == 16
    assert len(dm.splits["train"]) == 80 and len(dm.splits["val"]) == 20


def test_hub_download_that_cannot_happen_says_what_to_do(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    dm = ImageDataModule(source="hub", name="ylecun/mnist", val_split="test")
    with pytest.raises(DataSourceError) as err:
        dm.prepare_data()
    message = str(err.value)
    assert "ylecun/mnist" in message and "internet" in message and "data=parquet" in message


def write_folder(root, n_per_class=4, size=12):
    rng = np.random.default_rng(0)
    for cls in ("cat", "dog"):
        (root / cls).mkdir(parents=True)
        for i in range(n_per_class):
            Image.fromarray(rng.integers(0, 255, (size, size, 3), dtype=np.uint8)).save(root / cls / f"{i}.png")


def test_image_folder_with_class_subfolders(tmp_path):
    write_folder(tmp_path / "imgs")
    dm = ImageDataModule(
        source="image_folder", path=str(tmp_path / "imgs"), channels=3, image_size=8, val_fraction=0.25
    )
    dm.setup("fit")
    assert dm.model_kwargs() == {"channels": 3, "image_size": 8, "num_classes": 2}
    assert sorted(torch.cat([dm.splits["train"].labels, dm.splits["val"].labels]).tolist()) == [0] * 4 + [1] * 4


def test_unreadable_image_is_named(tmp_path):
    write_folder(tmp_path / "imgs")
    bad = tmp_path / "imgs" / "dog" / "broken.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n this is not a png")
    dm = ImageDataModule(source="image_folder", path=str(tmp_path / "imgs"), channels=3, image_size=8)
    with pytest.raises(DataSourceError, match="broken.png"):
        dm.setup("fit")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"source": "image_folder", "path": "/no/such/dir"}, "/no/such/dir.*does not exist"),
        ({"source": "parquet", "path": "/no/such/file.parquet"}, "no parquet files found at '/no/such/file.parquet'"),
    ],
)
def test_missing_paths_are_named(kwargs, message):
    with pytest.raises(DataSourceError, match=message):
        ImageDataModule(**kwargs).setup("fit")


def test_empty_folder_is_named(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataSourceError, match="empty.*contains no images"):
        ImageDataModule(source="image_folder", path=str(tmp_path / "empty")).setup("fit")


def test_bad_config_values_are_named():
    with pytest.raises(ValueError, match="data.source must be one of"):
        ImageDataModule(source="ftp")
    with pytest.raises(ValueError, match="data.channels"):
        ImageDataModule(channels=2)
    with pytest.raises(ValueError, match="needs data.name"):
        ImageDataModule(source="hub")
