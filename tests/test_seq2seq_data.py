"""Sequence-to-sequence data: sources and their errors, batches, length buckets, DDP shards, the stdlib corpus."""

from __future__ import annotations

import gzip
import json

import pytest
import torch

from gen_lightning.data import buckets
from gen_lightning.data.buckets import BucketBatchSampler
from gen_lightning.data.sources import DataSourceError
from gen_lightning.data.text.docstrings import stdlib_summaries
from gen_lightning.data.text.parallel import read_folder_split
from gen_lightning.data.text.seq2seq import Seq2SeqDataModule

DE = ["Ein Mann fährt Fahrrad.", "Zwei Hunde spielen im Schnee.", "Eine Frau liest ein Buch.", "Kinder lachen."]
EN = ["A man rides a bike.", "Two dogs play in the snow.", "A woman reads a book.", "Children laugh."]


def write(path, lines, gz=False, encoding="utf-8"):
    data = ("\n".join(lines) + "\n").encode(encoding)
    (path.with_name(path.name + ".gz").write_bytes(gzip.compress(data)) if gz else path.write_bytes(data))


@pytest.fixture
def folder(tmp_path):
    for split, n in (("train", 4), ("val", 2), ("test_2016", 2)):
        write(tmp_path / f"{split}.de", DE[:n] * 10, gz=split == "train")
        write(tmp_path / f"{split}.en", EN[:n] * 10, gz=split == "train")
    return tmp_path


def test_aligned_line_files_gz_and_plain(folder):
    sources, targets = read_folder_split(folder, "train", "de", "en", "de", "en")
    assert len(sources) == len(targets) == 40 and sources[1] == DE[1] and targets[1] == EN[1]
    assert read_folder_split(folder, "val", "de", "en", "de", "en")[1][:2] == EN[:2]


def test_tsv_and_jsonl_with_nested_fields(tmp_path):
    write(tmp_path / "train.tsv", [f"{d}\t{e}" for d, e in zip(DE, EN)])
    rows = [json.dumps({"id": i, "translation": {"de": d, "en": e}}) for i, (d, e) in enumerate(zip(DE, EN))]
    write(tmp_path / "val.jsonl", rows, gz=True)
    assert read_folder_split(tmp_path, "train", "de", "en", "de", "en") == (DE, EN)
    assert read_folder_split(tmp_path, "val", "de", "en", "translation.de", "translation.en") == (DE, EN)
    with pytest.raises(DataSourceError, match=r"no field 'translation.fr'.*\['de', 'en'\]"):
        read_folder_split(tmp_path, "val", "de", "en", "translation.fr", "translation.en")
    write(tmp_path / "test.tsv", ["only one column"])
    with pytest.raises(DataSourceError, match="test.tsv line 1: expected 'source<TAB>target', found 1 columns"):
        read_folder_split(tmp_path, "test", "de", "en", "de", "en")


def test_bad_files_are_named_with_the_fix(tmp_path):
    write(tmp_path / "train.de", DE)
    write(tmp_path / "train.en", EN[:3])
    with pytest.raises(DataSourceError, match=r"misaligned.*train.de has 4 lines.*train.en has 3"):
        read_folder_split(tmp_path, "train", "de", "en", "de", "en")
    write(tmp_path / "val.de", [DE[0], "  ", DE[2]])
    write(tmp_path / "val.en", EN[:3])
    with pytest.raises(DataSourceError, match=r"val.de: the source on line 2 is empty"):
        read_folder_split(tmp_path, "val", "de", "en", "de", "en")
    write(tmp_path / "test.de", ["Grüße aus Köln"], encoding="latin-1")
    write(tmp_path / "test.en", ["Greetings from Cologne"])
    with pytest.raises(DataSourceError, match=r"test.de is not valid UTF-8 text: line 1.*iconv -f latin1"):
        read_folder_split(tmp_path, "test", "de", "en", "de", "en")
    with pytest.raises(DataSourceError, match=r"no files for split 'dev'.*found \[.*'test.de'.*data.splits"):
        read_folder_split(tmp_path, "dev", "de", "en", "de", "en")
    (tmp_path / "train.en").unlink()
    (tmp_path / "train.de.gz").write_bytes(b"not gzip")
    with pytest.raises(DataSourceError, match="found train.de but not its other side"):
        read_folder_split(tmp_path, "train", "de", "en", "de", "en")


def test_hub_source_by_name_offline(tmp_path):
    """The hub path on a local dataset folder of the same schema; an unknown name offline is a clear error."""
    rows = [json.dumps({"translation": {"de": d, "en": e}}) for d, e in zip(DE, EN)]
    write(tmp_path / "train.jsonl", rows)
    dm = Seq2SeqDataModule(hub_name=str(tmp_path), source_field="translation.de", target_field="translation.en")
    assert dm.pairs("train") == (DE, EN)
    with pytest.raises(DataSourceError, match="could not load the hub dataset 'no-such/dataset'"):
        Seq2SeqDataModule(hub_name="no-such/dataset").pairs("train")


def test_batches_frame_and_pad_the_pairs(folder):
    dm = Seq2SeqDataModule(path=str(folder), splits={"test": "test_2016"}, vocab_size=300, batch_size=8, max_len=6)
    dm.setup("fit")
    v = dm.target_vocab
    batch = next(iter(dm.train_dataloader()))
    assert set(batch) == {"source", "source_mask", "target", "target_mask"}
    for key in ("source", "target"):
        ids, mask = batch[key], batch[f"{key}_mask"]
        assert ids.dtype == torch.int64 and mask.dtype == torch.bool and ids.shape == mask.shape
        assert torch.equal(ids[~mask], torch.full_like(ids[~mask], v.pad))
        assert ids.size(1) <= 6  # truncated to max_len
    lengths = batch["target_mask"].sum(1)
    assert (batch["target"][:, 0] == v.bos).all()
    assert (batch["target"].gather(1, (lengths - 1)[:, None]) == v.eos).all()
    full = [v.decode(t[m].tolist()) for t, m in zip(batch["target"], batch["target_mask"])]
    assert all(any(e.startswith(text) for e in EN) for text in full)  # the decoded targets are (prefixes of) EN
    assert dm.model_kwargs().keys() == {"tokenizer"}
    rows = list(dm.evaluation_loader("test", num_items=3, batch_size=2))
    assert [r["source"] for r in rows] == [DE[:2], [DE[0]]] and rows[0]["target"] == EN[:2]
    assert rows[1]["index"].tolist() == [2] and rows[1]["batch"] == 1


def test_separate_vocabularies_give_a_source_tokenizer(folder):
    dm = Seq2SeqDataModule(path=str(folder), joint_vocab=False, vocab_size=300, tokenizer="unigram")
    dm.setup("fit")
    kwargs = dm.model_kwargs()
    assert set(kwargs) == {"tokenizer", "source_tokenizer"} and kwargs["tokenizer"] != kwargs["source_tokenizer"]


def test_buckets_cover_every_example_once_with_little_padding():
    lengths = torch.randint(3, 60, (1000,), generator=torch.Generator().manual_seed(0)).tolist()
    sampler = BucketBatchSampler(lengths, 16, shuffle=True, seed=3, pool=20)
    epoch0 = list(sampler)
    assert len(epoch0) == len(sampler) and sorted(i for b in epoch0 for i in b) == list(range(1000))
    waste = sum(max(lengths[i] for i in b) * len(b) - sum(lengths[i] for i in b) for b in epoch0)
    order = torch.randperm(1000, generator=torch.Generator().manual_seed(1)).tolist()
    random_waste = sum(
        max(lengths[i] for i in order[s : s + 16]) * len(order[s : s + 16]) - sum(lengths[i] for i in order[s : s + 16])
        for s in range(0, 1000, 16)
    )
    assert waste < 0.1 * random_waste  # pools of sorted lengths: a tenth of the padding of random batches
    assert list(sampler) == epoch0  # a pure function of (seed, epoch)
    sampler.set_epoch(1)
    assert list(sampler) != epoch0
    sampler.set_epoch(0)
    sampler.skip(5)
    assert len(sampler) == len(epoch0) - 5 and list(sampler) == epoch0[5:]
    assert list(sampler) == epoch0  # the skip applies to one iteration only


@pytest.mark.parametrize("shuffle", [True, False])
def test_ddp_shards_are_disjoint(monkeypatch, shuffle):
    lengths = list(range(3, 103))  # 100 examples, 13 batches of 8
    shards, steps = [], []
    for rank in range(2):
        monkeypatch.setattr(buckets, "_dist_info", lambda rank=rank: (rank, 2))
        sampler = BucketBatchSampler(lengths, 8, shuffle=shuffle, seed=0)
        shards.append([i for b in sampler for i in b])
        steps.append(len(list(sampler)))
        assert steps[-1] == len(sampler)
    assert not set(shards[0]) & set(shards[1])
    if shuffle:  # training: equal steps on both processes; the epoch's last odd batch (of 13) is left out
        assert steps == [6, 6] and len(shards[0]) + len(shards[1]) >= 100 - 8
    else:  # evaluation: every example exactly once, nothing padded
        assert sorted(shards[0] + shards[1]) == list(range(100))


def test_stdlib_summaries_are_code_and_first_sentences():
    splits = stdlib_summaries()
    assert len(splits["train"][0]) > 3000 and len(splits["val"][0]) > 100 and len(splits["test"][0]) > 100
    for documents, summaries in splits.values():
        for doc, summary in zip(documents[:200], summaries[:200]):
            assert doc.lstrip().startswith(("def ", "async def ", "@")) and summary and "\n" not in summary
            assert summary not in doc  # the docstring was removed from the code
            assert 3 <= len(summary.split()) <= 40
    assert not set(splits["train"][0]) & set(splits["test"][0])
