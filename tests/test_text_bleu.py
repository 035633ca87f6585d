"""BLEU and Self-BLEU of gen_lightning/metrics/bleu.py against NLTK's own ``sentence_bleu`` (the text-GAN papers'
number), the word tokeniser against NLTK's Treebank tokeniser, and the ``sentences`` protocol on a real model."""

from __future__ import annotations

import random

import pytest
from conftest import SHARED_DATA, shared_data

from gen_lightning.data.text.words import split_words
from gen_lightning.metrics.bleu import References, corpus_mean_bleu, self_bleu

nltk_bleu = pytest.importorskip("nltk.translate.bleu_score")  # the test extra installs it (pyproject.toml)

COCO = SHARED_DATA / "image_coco"


def nltk_mean(hypotheses, references, n: int) -> float:
    smooth = nltk_bleu.SmoothingFunction().method1
    weights = tuple(1.0 / n for _ in range(n))  # Texygen's
    return sum(nltk_bleu.sentence_bleu(references, h, weights, smooth) for h in hypotheses) / len(hypotheses)


def nltk_self(sentences, n: int) -> float:
    smooth = nltk_bleu.SmoothingFunction().method1
    weights = tuple(1.0 / n for _ in range(n))
    scores = [
        nltk_bleu.sentence_bleu(sentences[:i] + sentences[i + 1 :], s, weights, smooth) for i, s in enumerate(sentences)
    ]
    return sum(scores) / len(scores)


# Hand-made corner cases: repeated n-grams (clipping), no unigram match (0), shorter and longer than every
# reference (brevity penalty, ties to the shorter reference), a hypothesis shorter than n, an empty one.
REFERENCES = [
    s.split()
    for s in (
        "the cat sat on the mat",
        "there is a cat on the mat",
        "a dog",
        "the the the cat",
        "a cat is sitting on a red mat in the sun",
    )
]
HYPOTHESES = [
    s.split()
    for s in (
        "the the the the the the the",
        "zebra xylophone",
        "the cat",
        "a",
        "",
        "a cat sat on the mat",
        "a cat is on the red mat in the sun today and tomorrow and later",
        "there is a dog on the mat",
    )
]


@pytest.mark.parametrize("n", [1, 2, 3, 4, 5])
def test_bleu_equals_nltk_on_corner_cases(n):
    ours = corpus_mean_bleu(HYPOTHESES, REFERENCES, orders=(n,))[n]
    assert ours == pytest.approx(nltk_mean(HYPOTHESES, REFERENCES, n), rel=1e-12, abs=1e-15)
    refs = References(REFERENCES)
    for h in HYPOTHESES:  # sentence by sentence too
        expected = nltk_bleu.sentence_bleu(
            REFERENCES, h, tuple(1.0 / n for _ in range(n)), nltk_bleu.SmoothingFunction().method1
        )
        assert refs.sentence_bleu(h, (n,))[n] == pytest.approx(expected, rel=1e-12, abs=1e-15)


def test_self_bleu_equals_nltk_on_corner_cases():
    sentences = [*HYPOTHESES, *REFERENCES, REFERENCES[0], REFERENCES[0]]  # duplicates: a shared top count
    ours = self_bleu(sentences, orders=(2, 3, 4, 5))
    for n in (2, 3, 4, 5):
        assert ours[n] == pytest.approx(nltk_self(sentences, n), rel=1e-12)


@pytest.fixture
def coco_lines():
    shared_data("image_coco", "train.txt", "test.txt")
    return (COCO / "train.txt").read_text().splitlines(), (COCO / "test.txt").read_text().splitlines()


def test_bleu_and_self_bleu_equal_nltk_on_coco_sample(coco_lines):
    train, test = coco_lines
    rng = random.Random(0)
    hypotheses = [split_words(s) for s in rng.sample(train, 40)]
    references = [split_words(s) for s in test[:300]]
    ours = corpus_mean_bleu(hypotheses, references)
    theirs = self_bleu(hypotheses)
    for n in (2, 3, 4, 5):
        assert ours[n] == pytest.approx(nltk_mean(hypotheses, references, n), rel=1e-12)
        assert theirs[n] == pytest.approx(nltk_self(hypotheses, n), rel=1e-12)
    assert 0.0 < ours[5] < ours[4] < ours[3] < ours[2] < 1.0  # falls with n


def test_regex_tokens_match_nltk_treebank_on_coco(coco_lines):
    from nltk.tokenize import NLTKWordTokenizer

    lines = coco_lines[0] + coco_lines[1]
    nltk_tok = NLTKWordTokenizer()
    differing = sum(split_words(s) != nltk_tok.tokenize(s) for s in lines)
    assert differing <= 40, differing  # measured: 34 of 20,000 lines (docs/TEXT_GANS.md)
    # Tokenising a decoded sample again gives its words back (the protocol re-tokenises samples).
    assert all(split_words(" ".join(split_words(s))) == split_words(s) for s in lines)


def test_bad_inputs_are_clear_errors():
    with pytest.raises(ValueError, match="at least one hypothesis"):
        corpus_mean_bleu([], REFERENCES)
    with pytest.raises(ValueError, match="at least one reference"):
        References([])
    with pytest.raises(ValueError, match="at least 2 sentences"):
        self_bleu([["a"]])
    with pytest.raises(ValueError, match="orders must be between 1 and 5"):
        corpus_mean_bleu(HYPOTHESES, References(REFERENCES, max_order=5), orders=(6,))


@pytest.mark.slow  # BLEU of 10,000 hypotheses against 10,000 references and Self-BLEU among 10,000: ~15 s
def test_texygen_protocol_reproduces_texygens_published_training_set_column(coco_lines):
    """Texygen's docs/evaluation.md scores the real training captions against the test set beside its models:
    BLEU-2..5 0.740/0.520/0.337/0.218, Self-BLEU-2..5 0.892/0.747/0.573/0.415. metrics=sentences_texygen (every
    reference, as many sentences as the test set) gives that column; the 500-reference fast mode does not."""
    from hydra.utils import instantiate

    from gen_lightning.config import compose

    protocol = instantiate(compose(["model=lstm", "data=sentences", "metrics=sentences_texygen"]).metrics)
    train, test = ([split_words(s) for s in lines if s.strip()] for lines in coco_lines)
    hypotheses = train[: protocol.num_items]
    bleu = corpus_mean_bleu(hypotheses, References(test[: protocol.num_references]))
    diversity = self_bleu(hypotheses[: protocol.self_bleu_items])
    published = {2: (0.740, 0.892), 3: (0.520, 0.747), 4: (0.337, 0.573), 5: (0.218, 0.415)}
    for n, (b, s) in published.items():
        assert bleu[n] == pytest.approx(b, abs=1.5e-3) and diversity[n] == pytest.approx(s, abs=1.5e-3)
    fast = instantiate(compose(["model=lstm", "data=sentences", "metrics=sentences_texygen_fast"]).metrics)
    assert corpus_mean_bleu(hypotheses, References(test[: fast.num_references]))[5] < 0.11  # far from 0.218
