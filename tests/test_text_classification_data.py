"""Text classification data: the local layouts, encodings, the errors a user can act on, stratified splits and
k-fold cross-validation, the hub path (tested on a local dataset of the hub's layout), batches and raw texts."""

from __future__ import annotations

import json

import pytest
import torch

from gen_lightning.data.text import labelled as lt
from gen_lightning.data.text.classification import TextClassificationDataModule

POS = ["a gripping , funny film", "warm and wise", "the best movie of the year", "a joy to watch", "moving"]
NEG = ["dull and boring", "a waste of time", "flat , lifeless and long", "nothing works", "tedious"]


def class_files(folder, encoding="utf-8", pos=POS, neg=NEG):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "reviews.pos").write_bytes(("\n".join(pos) + "\n").encode(encoding))
    (folder / "reviews.neg").write_bytes(("\n".join(neg) + "\n\n").encode(encoding))
    return folder


def module(path, **kw):
    dm = TextClassificationDataModule(path=str(path), batch_size=4, val_fraction=0.2, test_fraction=0.2, **kw)
    dm.setup("fit")
    return dm


def all_texts(dm):
    return sorted(t for split in ("train", "val", "test") for t in dm.texts[split])


def test_class_files_share_a_stem_so_the_extension_is_the_label(tmp_path):
    dm = module(class_files(tmp_path / "mr"))
    assert dm.class_names == ["neg", "pos"]
    assert all_texts(dm) == sorted(POS + NEG)  # blank lines skipped
    kw = dm.model_kwargs()
    assert kw["num_classes"] == 2 and kw["class_names"] == ["neg", "pos"] and kw["tokenizer"]["kind"] == "char"


def test_class_folders_and_tables_give_the_same_examples(tmp_path):
    for label, texts in (("pos", POS), ("neg", NEG)):
        (tmp_path / "folders" / label).mkdir(parents=True)
        for i, text in enumerate(texts):
            (tmp_path / "folders" / label / f"{i}.txt").write_text(text)
    rows = [{"sentence": t, "y": y} for y, texts in (("pos", POS), ("neg", NEG)) for t in texts]
    (tmp_path / "t.jsonl").write_text("\n".join(json.dumps(r) for r in rows))
    (tmp_path / "t.csv").write_text("sentence,y\n" + "\n".join(f'"{r["sentence"]}",{r["y"]}' for r in rows))
    expected = sorted(POS + NEG)
    assert all_texts(module(tmp_path / "folders")) == expected
    for table in ("t.jsonl", "t.csv"):
        dm = module(tmp_path / table, text_column="sentence", label_column="y")
        assert all_texts(dm) == expected and dm.class_names == ["neg", "pos"]
    with pytest.raises(lt.LabelledTextError, match=r"no column\(s\) \['text'\].*data.text_column"):
        module(tmp_path / "t.csv", label_column="y")


def test_latin1_file_names_the_file_and_the_encoding_option(tmp_path):
    folder = class_files(tmp_path / "mr", "latin-1", pos=[*POS, "un film tr\u00e8s r\u00e9ussi"])
    with pytest.raises(lt.LabelledTextError, match=r"reviews\.pos is not valid UTF-8.*data\.encoding=latin-1"):
        module(folder)
    dm = module(folder, encoding="latin-1")
    assert "un film tr\u00e8s r\u00e9ussi" in all_texts(dm)


def test_latin1_control_bytes_do_not_split_lines(tmp_path):
    """Byte 0x85 decodes to U+0085, a line break for str.splitlines: MR would gain 16 sentences."""
    folder = class_files(tmp_path / "mr", "latin-1", pos=[*POS, "it\u0085s good"])
    assert "it\u0085s good" in all_texts(module(folder, encoding="latin-1"))


def test_empty_file_and_a_single_class_are_refused(tmp_path):
    folder = class_files(tmp_path / "a")
    (folder / "reviews.neg").write_text("\n\n")
    with pytest.raises(lt.LabelledTextError, match=r"class file .*reviews\.neg is empty"):
        module(folder)
    (folder / "reviews.neg").unlink()
    with pytest.raises(lt.LabelledTextError, match="only the class 'pos'.*at least two classes"):
        module(folder)


def test_k_folds_are_disjoint_cover_every_text_and_are_stratified(tmp_path):
    labels = [0] * 53 + [1] * 31 + [2] * 16
    folds = lt.stratified_folds(labels, 10, seed=3)
    assert sorted(set(folds)) == list(range(10))
    for k in range(10):
        counts = [sum(1 for i, f in enumerate(folds) if f == k and labels[i] == c) for c in range(3)]
        assert [abs(c - n / 10) < 1 for c, n in zip(counts, (53, 31, 16))] == [True] * 3
    folder = class_files(tmp_path / "mr", pos=[f"good {i}" for i in range(20)], neg=[f"bad {i}" for i in range(20)])
    tests = []
    for fold in range(5):
        dm = module(folder, num_folds=5, fold=fold)
        splits = {s: set(dm.texts[s]) for s in ("train", "val", "test")}
        assert not (
            splits["train"] & splits["val"] or splits["train"] & splits["test"] or splits["val"] & splits["test"]
        )
        assert len(splits["train"] | splits["val"] | splits["test"]) == 40
        assert sorted(dm.labels["test"]) == [0] * 4 + [1] * 4  # stratified
        tests += dm.texts["test"]
    assert sorted(tests) == sorted(f"{w} {i}" for w in ("good", "bad") for i in range(20))  # the folds cover all
    with pytest.raises(lt.LabelledTextError, match="fewer than data.num_folds=30"):
        module(folder, num_folds=30, fold=0)


def test_batches_are_padded_with_a_mask_and_evaluation_gives_raw_texts(tmp_path):
    dm = module(class_files(tmp_path / "mr"), tokenizer="bpe", vocab_size=300)
    assert dm.tokenizer.to_config()["kind"] == "subword" and dm.pad_id == 0
    batch = next(iter(dm.train_dataloader()))
    assert batch["source"].dtype == torch.long and batch["source_mask"].dtype == torch.bool
    assert batch["source"].shape == batch["source_mask"].shape and batch["target"].shape == (4,)
    assert (batch["source"][~batch["source_mask"]] == 0).all() and batch["source_mask"][:, 0].all()
    rows = list(dm.evaluation_loader("test", None, 2))
    assert [t for r in rows for t in r["source"]] == dm.texts["test"]
    assert torch.cat([r["target"] for r in rows]).tolist() == dm.labels["test"]
    with pytest.raises(ValueError, match="split must be one of"):
        dm.evaluation_loader("dev", None, 2)


def test_embedded_default_is_essen_regions():
    dm = TextClassificationDataModule(max_length=32)
    dm.setup("fit")
    assert dm.class_names == ["China", "Deutschland", "Lothringen", "Luxemburg"]
    assert sum(len(v) for v in dm.texts.values()) > 7000 and set(dm.labels["val"]) == {0, 1, 2, 3}


def test_hub_dataset_by_name_and_columns(tmp_path):
    """A local folder with the hub's parquet layout loads by the same code; an unknown name offline is explained."""
    import datasets

    names = datasets.ClassLabel(names=["negative", "positive"])
    features = datasets.Features({"sentence": datasets.Value("string"), "label": names})
    (tmp_path / "sst2" / "data").mkdir(parents=True)
    for split, n in (("train", 10), ("validation", 4)):
        rows = {"sentence": [f"{'good' if i % 2 else 'bad'} {split} {i}" for i in range(n)]}
        rows["label"] = [i % 2 for i in range(n)]
        path = tmp_path / "sst2" / "data" / f"{split}-00000-of-00001.parquet"
        datasets.Dataset.from_dict(rows, features=features).to_parquet(str(path))
    dm = TextClassificationDataModule(
        hub_name=str(tmp_path / "sst2"), text_column="sentence", hub_test_split="validation", val_fraction=0.2
    )
    dm.prepare_data()
    dm.setup("fit")
    assert dm.class_names == ["negative", "positive"] and len(dm.texts["test"]) == 4
    assert dm.texts["test"][0] == "bad validation 0" and dm.labels["test"][:2] == [0, 1]
    with pytest.raises(lt.LabelledTextError, match="could not load the hub dataset 'stanfordnlp/sst2'.*data.path="):
        TextClassificationDataModule(hub_name="stanfordnlp/sst2").prepare_data()
