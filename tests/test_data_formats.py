"""Image data in the formats people have (gen_lightning/data/images/local.py, idx.py): MNIST IDX files as distributed,
a zip of images, a CSV of image paths and labels, datasets' save_to_disk folders; and the errors for the rest."""

from __future__ import annotations

import gzip
import json
import pickle
import struct
import zipfile
from pathlib import Path

import datasets
import numpy as np
import pytest
import torch
from PIL import Image

from gen_lightning.config import compose
from gen_lightning.data.images import ImageDataModule
from gen_lightning.data.images.idx import read_idx
from gen_lightning.data.images.local import FORMATS
from gen_lightning.data.sources import DataSourceError
from gen_lightning.run import train

RNG = np.random.default_rng(0)
IMAGES = RNG.integers(0, 256, (7, 4, 5), dtype=np.uint8)  # (N, H, W): not square, so rows and columns cannot swap
LABELS = np.array([3, 1, 4, 1, 5, 9, 2], dtype=np.uint8)


def idx_bytes(array: np.ndarray) -> bytes:
    """The IDX encoding of a uint8 array, written here from the format's definition (not by the reader under test):
    magic 00 00 08 NDIM, big-endian uint32 sizes, the bytes."""
    return struct.pack(">BBBB", 0, 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape) + array.tobytes()


def write_idx(folder: Path, prefix: str = "train", gz: bool = False, images=IMAGES, labels=LABELS) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for kind, array, dims in (("images", images, 3), ("labels", labels, 1)):
        data = idx_bytes(array)
        name = f"{prefix}-{kind}-idx{dims}-ubyte"
        if gz:
            (folder / f"{name}.gz").write_bytes(gzip.compress(data))
        else:
            (folder / name).write_bytes(data)
    return folder


@pytest.mark.parametrize("gz", [False, True], ids=["raw", "gz"])
def test_idx_files_read_the_values_written(tmp_path, gz):
    folder = write_idx(tmp_path / "mnist", gz=gz)
    write_idx(folder, prefix="t10k", gz=gz, images=IMAGES[:2], labels=LABELS[:2])
    suffix = ".gz" if gz else ""
    assert np.array_equal(read_idx(folder / f"train-images-idx3-ubyte{suffix}"), IMAGES)
    assert np.array_equal(read_idx(folder / f"train-labels-idx1-ubyte{suffix}"), LABELS)
    # data=mnist data.path=DIR: the hub config's local copy, read split by split (t10k-* is the hub's "test")
    dm = ImageDataModule(source="hub", name="ylecun/mnist", path=str(folder), val_split="test", label_column="label")
    dm.prepare_data()  # nothing to download: HF_DATASETS_OFFLINE is set and no error is raised
    dm.setup("fit")
    assert torch.equal(dm.splits["train"].images[:, 0], torch.from_numpy(IMAGES))
    assert dm.splits["train"].labels.tolist() == LABELS.tolist()
    assert torch.equal(dm.splits["val"].images[:, 0], torch.from_numpy(IMAGES[:2]))
    assert dm.image_shape == (1, 4, 5) and dm.num_classes == 10


def test_idx_as_kaggle_names_it_and_resized(tmp_path):
    folder = tmp_path / "fashion"
    folder.mkdir()
    (folder / "train-images.idx3-ubyte").write_bytes(idx_bytes(IMAGES))
    (folder / "train-labels.idx1-ubyte").write_bytes(idx_bytes(LABELS))
    dm = ImageDataModule(source="local", path=str(folder), image_size=8, channels=3, val_fraction=0.3)
    dm.setup("fit")
    assert dm.model_kwargs() == {"channels": 3, "image_size": 8, "num_classes": 10}
    assert len(dm.splits["train"]) + len(dm.splits["val"]) == 7


def test_mnist10k_is_read_as_distributed(mnist_dir):
    images = read_idx(mnist_dir / "t10k-images-idx3-ubyte.gz")
    labels = read_idx(mnist_dir / "t10k-labels-idx1-ubyte.gz")
    assert images.shape == (10_000, 28, 28) and images.dtype == np.uint8 and images.max() == 255
    # The published class counts of the MNIST test set, and its first ten labels.
    assert np.bincount(labels).tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
    assert labels[:10].tolist() == [7, 2, 1, 0, 4, 1, 4, 9, 5, 9]


@pytest.mark.parametrize(
    "damage, expected",
    [
        (lambda data: data[:-3], r"is truncated: its header declares 7 x 4 x 5 values of uint8 \(140 bytes\) but it "
                                 r"holds 137 bytes after the header: the file is damaged or incomplete: download it"),
        (lambda data: data[:10], r"is truncated: 10 bytes, shorter than its 16-byte header"),
        (lambda data: data + b"\0", r"is longer than its header says"),
        (lambda data: b"\x00\x01" + data[2:], r"is not an IDX file: its magic number is 0x00010803"),
        (lambda data: gzip.compress(data)[:-20], r"is a damaged gzip file"),
    ],
    ids=["truncated", "short header", "trailing bytes", "wrong magic", "truncated gzip"],
)  # fmt: skip
def test_a_damaged_idx_file_is_one_clear_error_naming_it(tmp_path, damage, expected):
    folder = write_idx(tmp_path / "mnist")
    bad = folder / "train-images-idx3-ubyte"
    bad.write_bytes(damage(bad.read_bytes()))
    with pytest.raises(DataSourceError, match=f"IDX file '{bad}' {expected}|'{bad}' {expected}"):
        ImageDataModule(source="local", path=str(folder)).setup("fit")


def test_images_and_labels_of_different_counts(tmp_path):
    folder = write_idx(tmp_path / "mnist", labels=LABELS[:6])
    with pytest.raises(DataSourceError, match=r"IDX files of different counts: .*holds 7 images, .*6 labels"):
        ImageDataModule(source="local", path=str(folder)).setup("fit")


def test_a_missing_idx_split_says_which_splits_there_are(tmp_path):
    folder = write_idx(tmp_path / "mnist10k", prefix="t10k", gz=True)
    with pytest.raises(DataSourceError, match=r"split\(s\) test \(t10k-images.*set data.train_split=test"):
        ImageDataModule(source="hub", name="ylecun/mnist", path=str(folder), val_split="test").setup("fit")


def write_class_folders(root: Path) -> dict[str, list[np.ndarray]]:
    """Two classes of 3 grey 6x6 images each, as PNG; the pixels by class."""
    pixels = {}
    for cls in ("cat", "dog"):
        (root / cls).mkdir(parents=True)
        pixels[cls] = [RNG.integers(0, 256, (6, 6), dtype=np.uint8) for _ in range(3)]
        for i, arr in enumerate(pixels[cls]):
            Image.fromarray(arr).save(root / cls / f"{i}.png")
    return pixels


def test_a_zip_of_class_folders(tmp_path):
    pixels = write_class_folders(tmp_path / "pets")
    archive = tmp_path / "pets.zip"
    with zipfile.ZipFile(archive, "w") as z:  # as `zip -r pets.zip pets/` makes: one folder around everything
        for f in sorted((tmp_path / "pets").rglob("*.png")):
            z.write(f, f.relative_to(tmp_path))
    dm = ImageDataModule(source="local", path=str(archive), val_fraction=0.5, label_column="auto")
    dm.setup("fit")
    got = {(bytes(x.numpy()), int(y)) for split in ("train", "val") for x, y in zip(*whole_split(dm, split))}
    expected = {(bytes(arr), label) for label, cls in enumerate(("cat", "dog")) for arr in pixels[cls]}
    assert got == expected and dm.num_classes == 2


def whole_split(dm: ImageDataModule, split: str) -> tuple[torch.Tensor, torch.Tensor]:
    return dm.splits[split].images[:, 0], dm.splits[split].labels


def test_a_csv_of_image_paths_and_text_labels(tmp_path):
    pixels = write_class_folders(tmp_path / "pets")
    rows = [f"pets/{cls}/{i}.png,{cls}" for cls in ("dog", "cat") for i in range(3)]  # dog first: labels by name
    (tmp_path / "labels.csv").write_text("file,species\n" + "\n".join(rows) + "\n")
    dm = ImageDataModule(
        source="local", path=str(tmp_path / "labels.csv"), image_column="file", label_column="species",
        val_fraction=0.5,
    )  # fmt: skip
    dm.setup("fit")
    got = {(bytes(x.numpy()), int(y)) for split in ("train", "val") for x, y in zip(*whole_split(dm, split))}
    expected = {(bytes(arr), label) for label, cls in enumerate(("cat", "dog")) for arr in pixels[cls]}
    assert got == expected  # classes numbered in sorted order: cat 0, dog 1, whatever the rows' order


def test_save_to_disk_folders_dataset_and_dataset_dict(tmp_path):
    features = datasets.Features({"image": datasets.Array2D((4, 5), "uint8"), "label": datasets.ClassLabel(10)})
    table = datasets.Dataset.from_dict({"image": IMAGES, "label": LABELS.astype(int)}, features=features)
    table.save_to_disk(str(tmp_path / "one"))
    datasets.DatasetDict(train=table, test=table.select(range(2))).save_to_disk(str(tmp_path / "splits"))

    dm = ImageDataModule(source="local", path=str(tmp_path / "splits"), val_split="test")
    dm.setup("fit")
    assert torch.equal(dm.splits["train"].images[:, 0], torch.from_numpy(IMAGES))
    assert dm.splits["train"].labels.tolist() == LABELS.tolist() and len(dm.splits["val"]) == 2

    dm = ImageDataModule(source="local", path=str(tmp_path / "one"), val_fraction=2 / 7)
    dm.setup("fit")
    assert len(dm.splits["train"]) == 5 and len(dm.splits["val"]) == 2
    with pytest.raises(DataSourceError, match=r"holds one split, so the split 'test' \(data.val_split\).*=null"):
        ImageDataModule(source="local", path=str(tmp_path / "one"), val_split="test").setup("fit")
    with pytest.raises(DataSourceError, match=r"has no split 'val'; it has \['test', 'train'\]"):
        ImageDataModule(source="local", path=str(tmp_path / "splits"), val_split="val").setup("fit")


def test_a_path_of_no_format_names_it_and_every_format(tmp_path):
    (tmp_path / "notes.txt").write_text("not images")
    for path in (tmp_path, tmp_path / "notes.txt"):
        with pytest.raises(DataSourceError) as info:
            ImageDataModule(source="local", path=str(path)).setup("fit")
        message = str(info.value)
        assert message.startswith(f"data.path={str(path)!r} is ") and "in none of the image formats" in message
        assert all(description in message for description in FORMATS.values()), message
        assert "save_to_disk(DIR)" in message


def test_sr_mnist_x4_trains_on_the_idx_files_as_distributed(tmp_path, mnist_dir):
    """`gen-lightning fit experiment=sr_mnist_x4 data.images.path=../shared/data/mnist10k`, a few steps of it."""
    mnist = mnist_dir
    cfg = compose([
        "experiment=sr_mnist_x4", f"data.images.path={mnist}", f"run_dir={tmp_path / 'run'}", "logger=none",
        "metrics=none", "trainer.max_epochs=-1", "trainer.max_steps=6", "+trainer.limit_val_batches=1",
        "data.eval_batch_size=64", "trainer.enable_progress_bar=false", "samples.every_n_epochs=0",
    ])  # fmt: skip
    summary = train.fit(cfg)
    assert summary["status"] == "completed"
    ckpt = torch.load(tmp_path / "run" / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)
    assert ckpt["global_step"] == 6
    hp = ckpt["hyper_parameters"]
    assert (hp["source_image_size"], hp["image_size"], hp["channels"]) == (7, 28, 1)  # 7x7 inputs -> 28x28 MNIST
    # The run records the files it read (its data fingerprint), as distributed.
    fingerprint = json.loads((tmp_path / "run" / "data_fingerprint.json").read_text())
    assert sorted(Path(f).name for f in fingerprint) == ["t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"]


def test_labelled_texts_from_a_save_to_disk_folder(tmp_path):
    """A hub dataset saved where the hub cannot be reached (``load_dataset(...).save_to_disk(DIR)``), as
    ``data=text_classification data.path=DIR``: its ClassLabel names are the classes; a DatasetDict gives ``train``."""
    from gen_lightning.data.text.classification import TextClassificationDataModule

    names = datasets.ClassLabel(names=["negative", "positive"])
    features = datasets.Features({"sentence": datasets.Value("string"), "label": names})
    rows = {
        "sentence": [f"{'good' if i % 2 else 'bad'} review {i}" for i in range(20)],
        "label": [i % 2 for i in range(20)],
    }
    train = datasets.Dataset.from_dict(rows, features=features)
    datasets.DatasetDict(train=train, test=train.select(range(4))).save_to_disk(str(tmp_path / "sst2"))
    dm = TextClassificationDataModule(path=str(tmp_path / "sst2"), text_column="sentence", val_fraction=0.2)
    dm.setup("fit")
    assert dm.class_names == ["negative", "positive"]
    texts = {t: y for split in ("train", "val", "test") for t, y in zip(dm.texts[split], dm.labels[split])}
    assert texts == {t: y for t, y in zip(rows["sentence"], rows["label"])}  # all 20 train rows, labels kept


def test_paired_images_from_a_csv_of_two_path_columns(tmp_path):
    """``data=paired_parquet data.source=local data.path=pairs.csv``: inputs and targets named row by row."""
    from gen_lightning.data.images import PairedImageDataModule

    (tmp_path / "low").mkdir()
    (tmp_path / "high").mkdir()
    lows, highs = [], []
    for i in range(6):
        lows.append(RNG.integers(0, 256, (2, 2), dtype=np.uint8))
        highs.append(RNG.integers(0, 256, (4, 4), dtype=np.uint8))
        Image.fromarray(lows[-1]).save(tmp_path / "low" / f"{i}.png")
        Image.fromarray(highs[-1]).save(tmp_path / "high" / f"{i}.png")
    rows = "\n".join(f"low/{i}.png,high/{i}.png" for i in range(6))
    (tmp_path / "pairs.csv").write_text(f"source,target\n{rows}\n")
    dm = PairedImageDataModule(source="local", path=str(tmp_path / "pairs.csv"), channels=1, val_fraction=1 / 3)
    dm.setup("fit")
    assert dm.model_kwargs()["source_image_size"] == 2 and dm.model_kwargs()["image_size"] == 4
    got = {(bytes(s[0].numpy()), bytes(t[0].numpy())) for split in ("train", "val")
           for s, t in zip(dm.splits[split].source.images, dm.splits[split].target.images)}  # fmt: skip
    assert got == {(bytes(lo), bytes(hi)) for lo, hi in zip(lows, highs)}  # every pair kept together


def write_cifar(folder: Path, binary: bool) -> tuple[np.ndarray, np.ndarray]:
    """A CIFAR-10 folder of the given layout: 5 train batches of 2 images, a test batch of 1; (train pixels
    ``(10, 32, 32, 3)``, train labels), written from the format's description."""
    folder.mkdir(parents=True)
    rgb = RNG.integers(0, 256, (11, 3, 32, 32), dtype=np.uint8)  # channel planes, as the files store them
    labels = RNG.integers(0, 10, 11)
    for name, index in [(f"data_batch_{i + 1}", [2 * i, 2 * i + 1]) for i in range(5)] + [("test_batch", [10])]:
        data = rgb[index].reshape(len(index), -1)
        if binary:
            records = np.concatenate([labels[index, None].astype(np.uint8), data], axis=1)
            (folder / f"{name}.bin").write_bytes(records.tobytes())
        else:
            batch = {b"data": data, b"labels": labels[index].tolist(), b"batch_label": name.encode()}
            (folder / name).write_bytes(pickle.dumps(batch, protocol=2))
    return rgb[:10].transpose(0, 2, 3, 1), labels[:10]


@pytest.mark.parametrize("binary", [False, True], ids=["python", "binary"])
def test_cifar_as_distributed(tmp_path, binary):
    pixels, labels = write_cifar(tmp_path / "cifar-10-batches", binary)
    # data=cifar10 data.path=DIR: the hub config (image column "img", splits train / test) on the local copy
    dm = ImageDataModule(
        source="hub", name="uoft-cs/cifar10", path=str(tmp_path / "cifar-10-batches"), image_column="img",
        label_column="label", val_split="test", channels=3, image_size=32,
    )  # fmt: skip
    dm.setup("fit")
    assert torch.equal(dm.splits["train"].images, torch.from_numpy(pixels).permute(0, 3, 1, 2))
    assert dm.splits["train"].labels.tolist() == labels.tolist() and len(dm.splits["val"]) == 1


def test_a_cifar_pickle_that_names_anything_but_arrays_is_refused(tmp_path):
    folder = tmp_path / "cifar"
    write_cifar(folder, binary=False)
    (folder / "test_batch").write_bytes(pickle.dumps({b"data": Path("x"), b"labels": [0]}, protocol=2))
    with pytest.raises(DataSourceError, match=r"test_batch' is not a CIFAR batch .*names pathlib\.\w*Path"):
        ImageDataModule(source="local", path=str(folder), val_split="test", channels=3).setup("fit")
