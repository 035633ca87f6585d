"""Paired and unpaired image data (gen_lightning/data/images/img2img.py, derive.py): pairs, transforms, errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from gen_lightning.data.images.derive import apply_transform, sobel_edges
from gen_lightning.data.images.img2img import PairedImageDataModule, PairSampler, UnpairedImageDataModule
from gen_lightning.data.sources import DataSourceError

DIGITS = {"source": "digits", "channels": 1, "image_size": 8}


def paired(transform="downscale:2", **kwargs):
    dm = PairedImageDataModule(images=DIGITS, transform=transform, **kwargs)
    dm.setup("fit")
    return dm


def test_derived_pairs_are_the_images_and_their_transform():
    dm = paired()
    assert dm.model_kwargs() == {
        "channels": 1,
        "image_size": 8,
        "num_classes": 10,
        "source_channels": 1,
        "source_image_size": 4,
    }
    batch = next(iter(dm.train_dataloader()))
    assert batch["source"].shape == (16, 1, 4, 4) and batch["target"].shape == (16, 1, 8, 8)
    assert batch["source"].min() >= -1 and batch["target"].max() <= 1
    assert torch.equal(batch["source_label"], batch["target_label"])
    # The input of pair i is PIL's bicubic reduction of target i (the super-resolution literature's LR images).
    pairs = dm.splits["val"]
    target = pairs.target.images[3, 0].numpy()
    expected = np.asarray(Image.fromarray(target).resize((4, 4), Image.BICUBIC))
    assert np.array_equal(pairs.source.images[3, 0].numpy(), expected)
    # The target domain is the image data itself: same cache key, (image, label) batches for the metrics.
    images, labels = next(iter(dm.reference_loader("train", 32)))
    assert images.shape == (32, 1, 8, 8) and labels.dtype == torch.int64
    assert dm.dataset_key.startswith("digits-8px")


def test_evaluation_loader_gives_the_first_items_in_order():
    dm = paired()
    batches = list(dm.evaluation_loader("val", 50, 16))
    assert [len(b["source"]) for b in batches] == [16, 16, 16, 2]
    assert torch.equal(torch.cat([b["index"] for b in batches]), torch.arange(50))
    assert torch.equal(batches[1]["target"][0], dm.splits["val"][16]["target"])


def test_transforms_and_their_errors():
    images = torch.zeros(2, 1, 8, 8, dtype=torch.uint8)
    images[:, :, 2:6, 3:5] = 255  # a bar: its outline is the edge map
    edges = sobel_edges(images)
    assert set(edges.unique().tolist()) == {0, 255} and edges[0, 0, 4, 2] == 255 and edges[0, 0, 0, 0] == 0
    holes = apply_transform("mask:0.5", images, seed=1)
    assert ((holes == 128).flatten(1).sum(1) == 16).all()  # one 4x4 hole each
    assert torch.equal(apply_transform("mask:0.5", images, seed=1), holes)  # seeded: the same pairs every run
    with pytest.raises(DataSourceError, match="multiple of 3"):
        apply_transform("downscale:3", images)
    with pytest.raises(DataSourceError, match="RGB"):
        apply_transform("grayscale", images)
    with pytest.raises(DataSourceError, match="unknown transform 'blur'.*downscale:K"):
        apply_transform("blur", images)
    rgb = apply_transform("grayscale", images.expand(-1, 3, -1, -1).contiguous())
    assert rgb.shape == (2, 1, 8, 8)


def _write(folder, name, value, size=8, mode="L"):
    folder.mkdir(parents=True, exist_ok=True)
    Image.new(mode, (size, size), value if mode == "L" else (value,) * 3).save(folder / name)


def test_paired_folders_match_by_file_name(tmp_path):
    for i in range(10):
        _write(tmp_path / "A", f"{i}.png", 10 * i)
        _write(tmp_path / "B", f"{i}.jpg", 10 * i, size=16, mode="RGB")
    dm = PairedImageDataModule(source="folders", path=str(tmp_path), channels=3, source_channels=1, val_fraction=0.2)
    dm.setup("fit")
    assert dm.model_kwargs()["source_image_size"] == 8 and dm.model_kwargs()["image_size"] == 16
    assert len(dm.splits["train"]) == 8 and dm.model_kwargs()["num_classes"] == 0
    for item in dm.splits["train"]:  # the grey level of A/i.png is the one of B/i.jpg
        assert abs(float(item["source"].mean()) - float(item["target"].mean())) < 0.05
    _write(tmp_path / "B", "extra.png", 0)
    with pytest.raises(DataSourceError, match="1 only in B \\(extra\\)"):
        PairedImageDataModule(source="folders", path=str(tmp_path)).setup("fit")


def test_images_of_different_sizes_are_a_clear_error(tmp_path):
    for i in range(4):
        _write(tmp_path / "A", f"{i}.png", 0, size=8 + i)
        _write(tmp_path / "B", f"{i}.png", 0)
    with pytest.raises(DataSourceError, match="differ in size.*data.source_image_size"):
        PairedImageDataModule(source="folders", path=str(tmp_path), channels=1).setup("fit")


def test_unpaired_domains_are_drawn_independently_and_resumably():
    b = {**DIGITS, "image_size": 4, "pad": 2}
    dm = UnpairedImageDataModule(domain_a=DIGITS, domain_b=b, batch_size=4)
    dm.setup("fit")
    assert dm.paired is False and dm.model_kwargs()["source_image_size"] == dm.model_kwargs()["image_size"] == 8
    sampler = PairSampler(10, 3, seed=0)
    order = list(sampler)
    assert sorted(i for i, _ in order) == list(range(10))  # every A image once per epoch
    assert sorted(np.bincount([j for _, j in order]).tolist()) == [3, 3, 4]  # B: permutations, repeated
    sampler.set_epoch(1)
    assert list(sampler) != order
    sampler.set_epoch(0)
    sampler.skip(4)
    assert list(sampler) == order[4:]  # exact mid-epoch resume
    pairs = [(int(i), int(j)) for i, j in order]
    assert len({j - i for i, j in pairs}) > 1  # not a fixed pairing


def test_parquet_pairs_from_two_image_columns(tmp_path):
    import io

    import datasets

    def png(value, size):
        buf = io.BytesIO()
        Image.new("L", (size, size), value).save(buf, format="PNG")
        return {"bytes": buf.getvalue(), "path": None}

    features = datasets.Features({"low": datasets.Image(), "high": datasets.Image(), "digit": datasets.Value("int64")})
    rows = {
        "low": [png(i, 4) for i in range(20)],
        "high": [png(i, 8) for i in range(20)],
        "digit": [i % 10 for i in range(20)],
    }
    datasets.Dataset.from_dict(rows, features=features).to_parquet(str(tmp_path / "pairs.parquet"))
    dm = PairedImageDataModule(source="parquet", path=str(tmp_path), source_column="low", target_column="high",
                               label_column="digit", channels=1, val_fraction=0.25)  # fmt: skip
    dm.setup("fit")
    assert dm.model_kwargs()["source_image_size"] == 4 and dm.model_kwargs()["num_classes"] == 10
    for item in dm.splits["val"]:
        assert float(item["source"].mean()) == float(item["target"].mean())  # row i: grey level i on both sides
    with pytest.raises(DataSourceError, match="image column 'photo' not found"):
        PairedImageDataModule(source="parquet", path=str(tmp_path), source_column="photo", channels=1).setup("fit")
