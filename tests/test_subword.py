"""Subword tokenizers (BPE, unigram): round trips, specials, the plain-dict description, determinism, the cache."""

from __future__ import annotations

import io
import json

import pytest
import torch

from gen_lightning.data.text.corpus import embedded_text
from gen_lightning.data.text.subword import SPECIALS, SubwordTokenizer, train_cached
from gen_lightning.data.text.tokenizers import from_config

UNICODE = "Héllo,  wörld — 日本語 🎵 ÅΩ\nsecond line\ttab "


@pytest.fixture(scope="module")
def corpus() -> list[str]:
    """The first 3,000 non-empty lines of the embedded English text (CPython's pydoc topics)."""
    return [line for line in embedded_text().splitlines() if line.strip()][:3000]


@pytest.fixture(scope="module")
def bpe(corpus) -> SubwordTokenizer:
    return SubwordTokenizer.train(corpus, algorithm="bpe", vocab_size=600)


@pytest.mark.parametrize("algorithm", ["bpe", "unigram"])
def test_byte_level_round_trips_any_text(corpus, algorithm):
    tok = SubwordTokenizer.train(corpus, algorithm=algorithm, vocab_size=600)
    assert 300 < tok.vocab_size <= 600
    for text in [*corpus[:200], UNICODE, " leading space", ""]:
        ids = tok.encode(text)
        assert ids.dtype == torch.int64 and ids.dim() == 1
        assert tok.decode(ids) == text
        assert not (ids < len(SPECIALS)).any(), "encode adds no special symbols and never needs <unk>"
    # Subwords compress: fewer ids than characters on the training text.
    assert sum(len(tok.encode(t)) for t in corpus[:200]) < 0.5 * sum(len(t) for t in corpus[:200])


def test_metaspace_round_trips_seen_characters_and_drops_unknown_ones(corpus):
    tok = SubwordTokenizer.train(corpus, algorithm="bpe", vocab_size=600, pre_tokenizer="metaspace")
    for text in corpus[:200]:
        if not text.startswith(" "):  # SentencePiece's convention: a leading space is not kept
            assert tok.decode(tok.encode(text)) == text
    ids = tok.encode("def 日本(x):")
    assert tok.unk_id in ids.tolist()
    assert tok.decode(ids) == "def (x):"  # the unseen characters were <unk>, dropped from the text


def test_specials_have_fixed_ids_and_are_dropped_when_decoding(bpe):
    assert [bpe.pad_id, bpe.bos_id, bpe.eos_id, bpe.unk_id] == [0, 1, 2, 3]
    ids = bpe.encode("return the value").tolist()
    framed = [bpe.bos_id, *ids, bpe.eos_id, bpe.pad_id, bpe.pad_id]
    assert bpe.decode(framed) == "return the value"
    assert bpe.decode_batch([framed, ids]) == ["return the value"] * 2
    assert bpe.encode_batch(["return the value", "x"]) == [ids, bpe.encode("x").tolist()]


def test_description_is_plain_data_and_rebuilds_the_same_tokenizer(bpe, corpus):
    config = bpe.to_config()
    assert config["kind"] == "subword" and config["algorithm"] == "bpe"
    assert {k: config[k] for k in ("pad_id", "bos_id", "eos_id", "unk_id")} == dict(
        pad_id=0, bos_id=1, eos_id=2, unk_id=3
    )
    assert config["vocab_size"] == bpe.vocab_size
    # A checkpoint keeps it as a hyperparameter: it must survive JSON and torch.load(weights_only=True).
    buffer = io.BytesIO()
    torch.save({"hyper_parameters": {"tokenizer": json.loads(json.dumps(config))}}, buffer)
    buffer.seek(0)
    loaded = torch.load(buffer, weights_only=True)["hyper_parameters"]["tokenizer"]
    rebuilt = from_config(loaded)
    assert isinstance(rebuilt, SubwordTokenizer) and rebuilt.to_config() == config
    for text in corpus[:50]:
        assert torch.equal(rebuilt.encode(text), bpe.encode(text))


def test_bpe_training_is_deterministic(corpus, bpe):
    assert SubwordTokenizer.train(corpus, algorithm="bpe", vocab_size=600).to_config() == bpe.to_config()


def test_cache_gives_every_process_the_same_tokenizer(corpus, tmp_path):
    """Unigram training is not reproducible in `tokenizers`; the cache hands out the first one trained."""
    a = train_cached(corpus[:1000], tmp_path, algorithm="unigram", vocab_size=400)
    b = train_cached(corpus[:1000], tmp_path, algorithm="unigram", vocab_size=400)
    assert a.to_config() == b.to_config()
    assert len(list(tmp_path.glob("unigram-*.json"))) == 1
    c = train_cached(corpus[:999], tmp_path, algorithm="unigram", vocab_size=400)  # another corpus: trained anew
    assert len(list(tmp_path.glob("unigram-*.json"))) == 2 and c.vocab_size <= 400


def test_bad_settings_are_named(corpus):
    with pytest.raises(ValueError, match="algorithm must be one of"):
        SubwordTokenizer.train(corpus, algorithm="wordpiece")
    with pytest.raises(ValueError, match="pre_tokenizer must be one of"):
        SubwordTokenizer.train(corpus, pre_tokenizer="whitespace")
    with pytest.raises(ValueError, match="too small.*at least 261"):
        SubwordTokenizer.train(corpus, vocab_size=100)
    with pytest.raises(ValueError, match="empty corpus"):
        SubwordTokenizer.train(["", ""], vocab_size=400)
    with pytest.raises(ValueError, match="lacks"):
        from_config({"kind": "subword"})
