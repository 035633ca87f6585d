"""Text data: tokenizers, sources (file, folder, hub code path on local parquet, embedded), splits."""

from __future__ import annotations

import pytest
import torch
from conftest import shared_data

from gen_lightning.data.text.corpus import SEPARATOR, TextDataModule, embedded_text
from gen_lightning.data.text.tokenizers import ByteTokenizer, CharTokenizer, from_config

UNICODE = "Héllo, wörld — 日本語 🎵 ÅΩ\nsecond line\ttab\n"


def _setup(**kwargs) -> TextDataModule:
    dm = TextDataModule(**kwargs)
    dm.prepare_data()
    dm.setup("fit")
    return dm


def _all_ids(dm: TextDataModule) -> torch.Tensor:
    return torch.cat([dm.train_set.ids, dm.val_set.ids]).long()


def test_char_tokenizer_round_trip_and_vocabulary():
    tok = CharTokenizer.from_text(UNICODE)
    assert tok.chars == "".join(sorted(set(UNICODE)))  # sorted set of the whole text
    ids = tok.encode(UNICODE)
    assert ids.dtype == torch.int64 and len(ids) == len(UNICODE)
    assert tok.decode(ids) == UNICODE
    rebuilt = from_config(tok.to_config())
    assert rebuilt.chars == tok.chars and rebuilt.decode(ids) == UNICODE
    with pytest.raises(ValueError, match="'Z'"):
        tok.encode("Zebra")


def test_byte_tokenizer_round_trip_any_bytes():
    tok = ByteTokenizer()
    ids = tok.encode(UNICODE)
    assert tok.vocab_size == 256 and len(ids) == len(UNICODE.encode("utf-8")) and int(ids.max()) < 256
    assert tok.decode(ids) == UNICODE
    assert tok.encode(b"\xff\x00\x80").tolist() == [255, 0, 128]
    assert tok.decode(tok.encode("日")[:2]) == "\ufffd"  # a cut multi-byte character decodes to U+FFFD
    assert isinstance(from_config(tok.to_config()), ByteTokenizer)
    with pytest.raises(ValueError, match="unknown tokenizer kind"):
        from_config({"kind": "morpheme"})  # ("word" is a kind now: data/words.py)


def test_split_is_contiguous_and_disjoint(tmp_path):
    text = "".join(chr(ord("a") + (i * 7) % 26) for i in range(1000))
    file = tmp_path / "letters.txt"
    file.write_text(text)
    dm = _setup(path=str(file), block_size=8, batch_size=4, val_fraction=0.1)
    train, val = dm.train_set.ids.long(), dm.val_set.ids.long()
    assert len(train) == 900 and len(val) == 100  # first 90% train, last 10% val
    assert dm.tokenizer.decode(train) == text[:900] and dm.tokenizer.decode(val) == text[900:]
    # The last training window ends inside the training split: no target is a validation token.
    last_inputs, last_targets = dm.train_set[len(dm.train_set) - 1]
    assert len(dm.train_set) == 900 - 8 and torch.equal(last_targets, train[-8:])
    # Validation windows are fixed, non-overlapping, in order.
    assert len(dm.val_set) == (100 - 1) // 8
    inputs = torch.cat([dm.val_set[k][0] for k in range(len(dm.val_set))])
    assert torch.equal(inputs, val[: len(inputs)])


def test_windows_targets_are_inputs_shifted_by_one(tmp_path):
    g = torch.Generator().manual_seed(0)
    text = "".join(chr(ord("a") + int(i)) for i in torch.randint(26, (3000,), generator=g))
    file = tmp_path / "random_letters.txt"  # every 16-letter window occurs once
    file.write_text(text)
    dm = _setup(path=str(file), block_size=16, batch_size=5, seed=3)
    inputs, targets = next(iter(dm.train_dataloader()))
    assert inputs.shape == targets.shape == (5, 16) and inputs.dtype == targets.dtype == torch.int64
    assert torch.equal(inputs[:, 1:], targets[:, :-1])
    for x, y in zip(inputs, targets):
        start = text.index(dm.tokenizer.decode(x))
        assert dm.tokenizer.decode(y) == text[start + 1 : start + 17]
    again = next(iter(_setup(path=str(file), block_size=16, batch_size=5, seed=3).train_dataloader()))[0]
    assert torch.equal(inputs, again)  # the order is a function of the seed


def test_embedded_default_is_sizable_python_documentation():
    text = embedded_text()
    assert len(text) > 400_000 and "assert" in text
    dm = _setup(block_size=64)
    assert dm.model_kwargs()["tokenizer"]["chars"] == "".join(sorted(set(text)))
    assert dm.tokenizer.decode(_all_ids(dm)) == text


def test_folder_is_sorted_concatenation_of_files(tmp_path):
    tunes = tmp_path / "abc"
    tunes.mkdir()
    (tunes / "b.abc").write_text("X:2\nT:Second\nK:G\nGABc|\n")
    (tunes / "a.abc").write_text("X:1\nT:First\nK:D\nDEFG|\n")
    (tunes / ".hidden").write_text("not music")
    dm = _setup(path=str(tunes), block_size=4, batch_size=2, val_fraction=0.3)
    expected = "X:1\nT:First\nK:D\nDEFG|\n" + SEPARATOR + "X:2\nT:Second\nK:G\nGABc|\n"
    assert dm.tokenizer.decode(_all_ids(dm)) == expected


def test_folder_given_through_dot_dot_is_read(tmp_path, monkeypatch):
    # `../shared/data/...` is how the README points at a folder beside the project: ".." is not a hidden folder.
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "a.txt").write_text("one sentence\n" * 50)
    (tmp_path / "project").mkdir()
    monkeypatch.chdir(tmp_path / "project")
    dm = _setup(path="../data", block_size=4, batch_size=2)
    assert dm.tokenizer.decode(_all_ids(dm)) == "one sentence\n" * 50


def test_missing_empty_and_non_utf8_files_name_the_file(tmp_path):
    missing = tmp_path / "nowhere.txt"
    with pytest.raises(FileNotFoundError, match="nowhere.txt"):
        _setup(path=str(missing))
    empty = tmp_path / "empty.txt"
    empty.write_text("")
    with pytest.raises(ValueError, match="empty.txt.*empty"):
        _setup(path=str(empty))
    latin1 = tmp_path / "latin1.txt"
    latin1.write_bytes("café au lait, crème brûlée ".encode("latin-1") * 20)
    with pytest.raises(ValueError, match="latin1.txt is not valid UTF-8"):
        _setup(path=str(latin1), block_size=8)
    dm = _setup(path=str(latin1), block_size=8, tokenizer="byte")  # bytes are always fine
    assert dm.tokenizer.vocab_size == 256 and len(_all_ids(dm)) == latin1.stat().st_size


def test_bad_arguments_raise_with_the_problem(tmp_path):
    with pytest.raises(ValueError, match="tokenizer"):
        TextDataModule(tokenizer="word")
    with pytest.raises(ValueError, match="val_fraction"):
        TextDataModule(val_fraction=0.0)
    with pytest.raises(ValueError, match="not both"):
        TextDataModule(path="x.txt", hub_name="y")
    with pytest.raises(RuntimeError, match="setup"):
        TextDataModule().model_kwargs()
    short = tmp_path / "short.txt"
    short.write_text("to be or not to be")
    with pytest.raises(ValueError, match="validation split of .*short.txt"):
        _setup(path=str(short), block_size=8)


def test_hub_code_path_on_local_parquet(tmp_path):
    datasets = pytest.importorskip("datasets")
    rows = ["First Citizen: Before we proceed any further, hear me speak.", "All: Speak, speak. ünïcode"] * 20
    file = tmp_path / "shakespeare.parquet"
    datasets.Dataset.from_dict({"text": rows, "id": list(range(len(rows)))}).to_parquet(str(file))
    hub = {"data_files": str(file), "cache_dir": str(tmp_path / "cache")}
    dm = _setup(hub_name="parquet", text_column="text", hub_kwargs=hub, block_size=16)
    assert dm.tokenizer.decode(_all_ids(dm)) == SEPARATOR.join(rows)
    with pytest.raises(ValueError, match="no column 'content'.*'text'"):
        _setup(hub_name="parquet", text_column="content", hub_kwargs=hub)


def test_hub_failure_says_what_to_do(monkeypatch):
    datasets = pytest.importorskip("datasets")

    def offline(*args, **kwargs):
        raise ConnectionError("Couldn't reach 'someone/corpus' on the Hub (LocalEntryNotFoundError)")

    monkeypatch.setattr(datasets, "load_dataset", offline)
    with pytest.raises(RuntimeError, match=r"'someone/corpus'.*Connect to the internet.*path="):
        _setup(hub_name="someone/corpus")


def test_shakespeare_matches_nanogpt_preparation():
    path = shared_data("tinyshakespeare", "input.txt") / "input.txt"
    dm = _setup(path=str(path), block_size=64)
    # nanoGPT's shakespeare_char/prepare.py: 65 characters, 1,003,854 train and 111,540 val tokens.
    assert dm.tokenizer.vocab_size == 65
    assert (len(dm.train_set.ids), len(dm.val_set.ids)) == (1_003_854, 111_540)


def test_unigram_baseline_is_the_cross_entropy_of_training_frequencies(tmp_path):
    """bits per token of the validation targets under add-one smoothed training counts, computed independently."""
    import math
    from collections import Counter

    text = "the cat sat on the mat; " * 30 + "a dog! " * 20 + "zebra? " * 3
    path = tmp_path / "t.txt"
    path.write_text(text)
    dm = TextDataModule(path=str(path), block_size=8, batch_size=2, val_fraction=0.25)
    dm.setup()
    n_train = int(len(text) * 0.75)
    train, val = text[:n_train], text[n_train:]
    counts, vocab = Counter(train), sorted(set(text))
    total = len(train) + len(vocab)
    windows = [val[i : i + 9] for i in range(0, len(val) - 8, 8)]  # non-overlapping windows of block_size + 1
    targets = "".join(w[1:] for w in windows)
    expected = -sum(math.log2((counts[c] + 1) / total) for c in targets) / len(targets)
    assert dm.unigram_bpc() == pytest.approx(expected, rel=1e-9)
    first = "".join(w[1:] for w in windows[:3])
    assert dm.unigram_bpc(3) == pytest.approx(-sum(math.log2((counts[c] + 1) / total) for c in first) / 24, rel=1e-9)
