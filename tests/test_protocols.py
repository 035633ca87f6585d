"""The metric protocols of conditional and prediction tasks against independent references, on one process and two.

- paired_image: PSNR and SSIM against a direct numpy/scipy implementation of their definitions (Wang et al. 2004);
- text_generation: BLEU, chrF and ROUGE equal to sacrebleu and rouge-score called directly on the same pairs;
- classification: accuracy, macro F1 and the confusion matrix equal to scikit-learn's;
- every protocol: the same numbers from two processes (gloo) as from one, whatever the batch split.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.signal import correlate2d
from torch.utils.data import Dataset, default_collate

from gen_lightning.data.loaders import BatchShardSampler, evaluation_loader
from gen_lightning.metrics.classification import ClassificationMetrics
from gen_lightning.metrics.paired import PairedImageMetrics
from gen_lightning.metrics.text import TextGenerationMetrics

SOURCES = [
    "ein mann fährt fahrrad .",
    "zwei hunde spielen im schnee .",
    "eine frau liest ein buch im park .",
    "kinder spielen fußball auf der straße .",
    "ein alter mann sitzt auf einer bank .",
    "eine gruppe von menschen steht vor einem gebäude .",
    "ein hund springt über einen zaun .",
]
REFERENCES = [
    "A man rides a bike.",
    "Two dogs are playing in the snow.",
    "A woman reads a book in the park.",
    "Children play soccer on the street.",
    "An old man sits on a bench.",
    "A group of people stands in front of a building.",
    "A dog jumps over a fence.",
]
HYPOTHESES = [
    "A man is riding a bike.",
    "Two dogs play in snow.",
    "A woman is reading a book in a park.",
    "Kids play football on the road.",
    "An old man is sitting on a bench.",
    "People stand in front of a house.",
    "A dog jumps a fence.",
]


class ListData(Dataset):
    def __init__(self, items: list[dict]) -> None:
        self.items = items

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> dict:
        return self.items[i]


def collate(items: list[dict]) -> dict:
    return {
        k: [x[k] for x in items] if isinstance(items[0][k], str) else default_collate([x[k] for x in items])
        for k in items[0]
    }


class PairData:
    """A conditional/prediction data module reduced to the contract's evaluation_loader."""

    def __init__(self, items: list[dict]) -> None:
        self.data = ListData(items)

    def setup(self, stage=None) -> None:
        pass

    def model_kwargs(self) -> dict:
        return {}

    def evaluation_loader(self, split: str, num_items, batch_size: int):
        return evaluation_loader(self.data, num_items, batch_size, collate)


class LookupTranslator(torch.nn.Module):
    """Answers each known source with its fixed hypothesis, like a trained model would answer with its own."""

    task, source_modality, modality = "conditional", "text", "text"

    def __init__(self) -> None:
        super().__init__()
        self.table = dict(zip(SOURCES, HYPOTHESES))
        self.register_buffer("anchor", torch.zeros(()))

    @property
    def device(self):
        return self.anchor.device

    def generate(self, sources, generator=None, **options):
        return [self.table[s] for s in sources]


class NoisyIdentity(torch.nn.Module):
    """An image -> image model: its input plus noise drawn from the protocol's per-batch generator."""

    task, source_modality, modality = "conditional", "image", "image"

    def __init__(self, noise: float = 0.2) -> None:
        super().__init__()
        self.noise = noise
        self.register_buffer("anchor", torch.zeros(()))

    @property
    def device(self):
        return self.anchor.device

    def generate(self, sources, generator=None):
        eps = torch.randn(sources.shape, generator=generator)
        return (sources + self.noise * eps).clamp(-1, 1)


class FixedClassifier(torch.nn.Module):
    """A prediction model that reads its answer from the text (the digit it starts with)."""

    task, source_modality, modality = "prediction", "text", "label"

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("anchor", torch.zeros(()))
        self.hparams = {"class_names": ["neg", "neu", "pos"]}

    @property
    def device(self):
        return self.anchor.device

    def predict(self, sources):
        return torch.nn.functional.one_hot(torch.tensor([int(s[0]) for s in sources]), 3).float()


def image_pairs(n: int = 23, size: int = 12) -> list[dict]:
    g = torch.Generator().manual_seed(0)
    target = torch.rand(n, 1, size, size, generator=g) * 2 - 1
    return [{"source": t, "target": t} for t in target]


def text_pairs() -> list[dict]:
    return [{"source": s, "target": r} for s, r in zip(SOURCES, REFERENCES)]


def label_pairs() -> list[dict]:
    g = torch.Generator().manual_seed(1)
    truth = torch.randint(0, 3, (40,), generator=g).tolist()
    guess = [t if i % 3 else (t + 1) % 3 for i, t in enumerate(truth)]
    return [{"source": f"{p} text {i}", "target": t} for i, (p, t) in enumerate(zip(guess, truth))]


# ---------------------------------------------------------------- independent references


def ssim_reference(x: np.ndarray, y: np.ndarray, k: int, sigma: float = 1.5) -> float:
    """Wang et al. 2004, eq. 13 with a Gaussian window, over the positions where the window fits (data range 1)."""
    ax = np.arange(k) - (k - 1) / 2
    g = np.exp(-(ax**2) / (2 * sigma**2))
    w = np.outer(g, g) / np.outer(g, g).sum()

    def filt(a):
        return correlate2d(a, w, mode="valid")

    c1, c2 = 0.01**2, 0.03**2
    mx, my = filt(x), filt(y)
    vx, vy, cxy = filt(x * x) - mx**2, filt(y * y) - my**2, filt(x * y) - mx * my
    ssim = ((2 * mx * my + c1) * (2 * cxy + c2)) / ((mx**2 + my**2 + c1) * (vx + vy + c2))
    return float(ssim.mean())


def test_paired_image_matches_the_definitions():
    pairs = image_pairs()
    model = NoisyIdentity()
    protocol = PairedImageMetrics(num_items=None, batch_size=5, ssim_kernel=11)
    result = protocol.evaluate(model, PairData(pairs))
    # The outputs the protocol saw: per-batch generators, so rebuild them batch by batch.
    from gen_lightning.metrics.protocol import batch_generator

    psnr, ssim, l1 = [], [], []
    for b, start in enumerate(range(0, len(pairs), 5)):
        src = torch.stack([p["source"] for p in pairs[start : start + 5]])
        out = model.generate(src, batch_generator(0, b, torch.device("cpu")))
        for o, t in zip(out, src):
            x, y = ((o.double().numpy() + 1) / 2)[0], ((t.double().numpy() + 1) / 2)[0]
            psnr.append(10 * math.log10(1 / ((x - y) ** 2).mean()))
            ssim.append(ssim_reference(x, y, k=11))
            l1.append(np.abs(x - y).mean())
    assert result["metrics"]["val/psnr"] == pytest.approx(np.mean(psnr), rel=1e-5)
    assert result["metrics"]["val/ssim"] == pytest.approx(np.mean(ssim), abs=2e-4)
    assert result["metrics"]["val/l1"] == pytest.approx(np.mean(l1), rel=1e-5)
    assert result["protocol"]["pairs"] == len(pairs) and result["protocol"]["ssim_kernel"] == 11


def test_text_generation_equals_sacrebleu_and_rouge_score_called_directly():
    import sacrebleu
    from rouge_score import rouge_scorer

    protocol = TextGenerationMetrics(
        num_items=None, batch_size=3, metrics=["bleu", "chrf", "rouge1", "rouge2", "rougeL"]
    )
    result = protocol.evaluate(LookupTranslator(), PairData(text_pairs()), split="test")
    m = result["metrics"]
    assert m["test/bleu"] == pytest.approx(sacrebleu.corpus_bleu(HYPOTHESES, [REFERENCES]).score, abs=1e-9)
    assert m["test/chrf"] == pytest.approx(sacrebleu.corpus_chrf(HYPOTHESES, [REFERENCES]).score, abs=1e-9)
    scorer = rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeL"], use_stemmer=False)
    scores = [scorer.score(r, h) for r, h in zip(REFERENCES, HYPOTHESES)]
    for name in ("rouge1", "rouge2", "rougeL"):
        assert m[f"test/{name}"] == pytest.approx(100 * np.mean([s[name].fmeasure for s in scores]), abs=1e-9)
    assert result["outputs"] == HYPOTHESES  # in the order of the split, for the hypotheses file
    assert result["protocol"]["bleu_signature"].startswith("nrefs:1|case:mixed|eff:no|tok:13a|smooth:exp|version:")
    assert 10 < m["test/bleu"] < 90  # not a degenerate 0 or 100


def test_classification_equals_scikit_learn():
    from sklearn.metrics import accuracy_score, confusion_matrix, f1_score

    pairs = label_pairs()
    result = ClassificationMetrics(batch_size=7).evaluate(FixedClassifier(), PairData(pairs))
    truth = [p["target"] for p in pairs]
    preds = [int(p["source"][0]) for p in pairs]
    assert result["metrics"]["val/acc"] == pytest.approx(accuracy_score(truth, preds))
    assert result["metrics"]["val/f1_macro"] == pytest.approx(f1_score(truth, preds, average="macro"))
    assert result["outputs"] == [["neg", "neu", "pos"][p] for p in preds]
    figure = result["figures"]["confusion_matrix"]
    assert figure.shape[0] == 3 and figure.shape[1] > 100  # a drawn figure, (3, H, W) in [0, 1]
    assert confusion_matrix(truth, preds).trace() == sum(t == p for t, p in zip(truth, preds))


def test_batches_are_the_same_on_any_number_of_processes(monkeypatch):
    """Which items share a batch, and so a per-batch seed, does not depend on the world size."""
    import gen_lightning.data.loaders as loaders

    seen = {}
    for world in (1, 2, 3):
        batches = []
        for rank in range(world):
            monkeypatch.setattr(loaders, "_dist_info", lambda r=rank, w=world: (r, w))
            batches += list(BatchShardSampler(23, 5))
        seen[world] = sorted(batches)
    assert seen[1] == seen[2] == seen[3]
    assert [i for b in seen[1] for i in b] == list(range(23))


def protocol_results() -> dict:
    """The three protocols on their fixed pairs, with batch sizes that split the data unevenly."""
    image = PairedImageMetrics(num_items=None, batch_size=4)
    text = TextGenerationMetrics(num_items=None, batch_size=2, metrics=["bleu", "rougeL"])
    return {
        "image": image.evaluate(NoisyIdentity(), PairData(image_pairs()))["metrics"],
        "text": text.evaluate(LookupTranslator(), PairData(text_pairs()))["metrics"],
        "labels": ClassificationMetrics(batch_size=6).evaluate(FixedClassifier(), PairData(label_pairs()))["metrics"],
    }


def _ddp_worker(rank: int, world: int, init: str, out: str) -> None:
    torch.distributed.init_process_group("gloo", init_method=init, rank=rank, world_size=world)
    torch.save(protocol_results(), f"{out}/{rank}.pt")
    torch.distributed.destroy_process_group()


@pytest.mark.slow  # two fresh interpreters importing torch: ~50 s on the shared 2-core machine
def test_two_processes_give_the_one_process_numbers(tmp_path):
    single = protocol_results()
    init = f"file://{tmp_path / 'init'}"
    torch.multiprocessing.spawn(_ddp_worker, args=(2, init, str(tmp_path)), nprocs=2, join=True)
    for rank in range(2):
        results = torch.load(tmp_path / f"{rank}.pt", weights_only=True)
        for kind, values in single.items():
            for name, value in values.items():
                assert results[kind][name] == pytest.approx(value, rel=1e-9), (rank, kind, name)


# ---------------------------------------------------------------- a test report scores the whole split (issue 24)


@pytest.mark.parametrize(
    "protocol, model, items",
    [
        (lambda: TextGenerationMetrics(num_items=3, batch_size=2), LookupTranslator, text_pairs),
        (lambda: PairedImageMetrics(num_items=5, batch_size=4), NoisyIdentity, image_pairs),
        (lambda: ClassificationMetrics(num_items=9, batch_size=4), FixedClassifier, label_pairs),
    ],
    ids=["text_generation", "paired_image", "classification"],
)
def test_another_split_is_scored_whole_unless_the_subset_is_asked_for(protocol, model, items):
    """`num_items` keeps periodic validation cheap; `evaluate split=test` scored the first 500 of 1,000 test pairs
    with it. The protocol's own split keeps its subset (the number training logged); another split is whole unless
    the command line gave metrics.num_items; the card says how many of how many were scored."""
    from gen_lightning.metrics.evaluate import evaluate_module

    def scored(split, given=()):
        card = evaluate_module(model(), PairData(items()), protocol(), split, given)["protocol"]
        return card.get("pairs", card.get("examples")), card["split_items"], card["num_items"]

    subset, total = protocol().num_items, len(items())
    assert scored("val") == scored(None) == (subset, total, subset)
    assert scored("test") == (total, total, None)
    assert scored("test", [f"metrics.num_items={subset}"]) == (subset, total, subset)
    assert scored("test", ["metrics.batch_size=2"]) == (total, total, None)


def test_tune_validity_keeps_its_sample_count_on_any_split():
    """The music protocol's num_items counts generated tunes, not examples of a split."""
    from gen_lightning.music.protocol import TuneValidity

    protocol = TuneValidity(num_items=16)
    assert protocol.for_split("test") is protocol and protocol.num_items == 16


def test_evaluate_split_test_on_a_run_scores_the_whole_test_split(tmp_path):
    """Through the command line, on a run whose protocol validated on the first 8 pairs."""
    import json

    from conftest import tiny_overrides

    from gen_lightning import cli
    from gen_lightning.config import compose
    from gen_lightning.data.text.docstrings import stdlib_summaries
    from gen_lightning.run import train

    run_dir = tmp_path / "run"
    overrides = ["trainer.max_steps=2", "trainer.max_epochs=-1", "metrics.num_items=8", "metrics.batch_size=64"]
    cfg = compose([*tiny_overrides(run_dir, *overrides, model="transformer_seq2seq"), "metrics=text_generation"])
    assert train.fit(cfg)["protocol"]["pairs"] == 8
    ckpt = run_dir / "checkpoints" / "last.ckpt"
    cli.main(["evaluate", f"ckpt={ckpt}", "split=test"])
    card = json.loads((ckpt.parent / "last.test.eval.json").read_text())["protocol"]
    test_pairs = len(stdlib_summaries()["test"][0])
    assert (card["split"], card["num_items"], card["pairs"], card["split_items"]) == (
        "test",
        None,
        test_pairs,
        test_pairs,
    )
    assert len((ckpt.parent / "last.test.outputs.txt").read_text(encoding="utf-8").splitlines()) == test_pairs


@pytest.mark.parametrize(
    "setting, message",
    [
        ("num_items: 0", "metrics.num_items must be a positive integer or null (all), got 0"),
        ("num_items: abc", "metrics.num_items must be a positive integer or null (all), got 'abc'"),
        ("batch_size: -4", "metrics.batch_size must be a positive integer, got -4"),
        ("every_n_epochs: 1.5", "metrics.every_n_epochs must be an integer >= 0 (0: only at the end), got 1.5"),
    ],
)
def test_bad_protocol_settings_are_one_message_naming_the_key(setting, message):
    """`evaluate metrics.num_items=0` printed Hydra's InstantiationException, `=abc` a TypeError from a comparison."""
    import yaml

    from gen_lightning.metrics.evaluate import build_protocol

    config = {"_target_": "gen_lightning.metrics.text.TextGenerationMetrics", **yaml.safe_load(setting)}
    with pytest.raises(ValueError) as info:
        build_protocol(config)
    assert str(info.value) == message
