"""``sentences``: the text-GAN benchmark protocol for unconditional text generators (LSTM, GRU, GPT, the GANs).

The model writes ``num_items`` sentences at ``temperature`` (sample ``i`` belongs to batch ``i // batch_size``,
drawn with a generator seeded from ``(seed, batch)``; process ``r`` of ``W`` draws batches ``r, r + W, ...``, so
one process and many give the same sentences). A sample is ``max_length + 1`` tokens from the start of a line; its
sentence is its first line (``unfinished`` on the card counts samples with no line end). Sentences are tokenised
by the data's own tokeniser, as the references are (Texygen tokenises both with NLTK's ``word_tokenize``).

- ``bleu2`` .. ``bleu5``: mean over the generated sentences of NLTK's sentence BLEU against the split's sentences
  as references, smoothing method 1 (gen_lightning/metrics/bleu.py, equal to NLTK's). ``num_references``: the
  first N sentences of the split (Texygen's "fast" mode: 500, ``metrics=sentences_texygen_fast``), all by default
  (Texygen's published table: ``metrics=sentences_texygen``).
- ``self_bleu2`` .. ``self_bleu5``: each of the first ``self_bleu_items`` generated sentences (all by default)
  against the others (Zhu et al. 2018): lower is more diverse. Not ranked (no direction): it trades off against
  quality, which is the point of reporting both (Caccia et al. 2020).
- ``nll_test``: mean negative log-likelihood per token (nats; the closing ``<eos>`` counts, padding does not) of
  the split's sentences under the model, for models with a next-token likelihood.
- ``nll_oracle``: mean NLL per token of the generated sequences under the data's oracle (``data=oracle``).
- ``temperatures``: more sampling temperatures, each scored the same way (``bleu5_t0.8``, ``self_bleu5_t0.8``):
  the quality/diversity curve of a likelihood model (Caccia et al. 2020).

The card gives the number of hypotheses and references, the tokeniser, the smoothing and the temperature.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from gen_lightning.metrics.bleu import SMOOTHING, References, corpus_mean_bleu, self_bleu
from gen_lightning.metrics.protocol import EvaluationCallback, batch_generator, gather_objects

ORDERS = (2, 3, 4, 5)


def has_likelihood(module) -> bool:
    """Whether ``module(inputs)`` gives next-token logits: the model says so with ``next_token_likelihood`` (every
    ``LanguageModel`` does, True or False); any other model has none."""
    return bool(getattr(module, "next_token_likelihood", False))


class SentenceMetrics(EvaluationCallback):
    """BLEU, Self-BLEU, NLL_test and NLL_oracle of an unconditional text model; see the file docstring.

    Args (besides ``EvaluationCallback``'s; ``num_items`` is the number of generated sentences): ``temperature``,
    ``top_k``, ``num_references`` (first N sentences of the split; null: all), ``self_bleu_items`` (first N
    generated sentences for Self-BLEU; null: all), ``nll`` (compute NLL_test / NLL_oracle where they apply),
    ``temperatures`` (extra temperatures scored with BLEU and Self-BLEU)."""

    protocol_name = "sentences"
    tasks = (("unconditional", None, "text"),)
    metric_directions = {
        **{f"bleu{n}": "max" for n in ORDERS},
        "nll_test": "min",
        "nll_oracle": "min",
    }

    def __init__(
        self,
        every_n_epochs: int = 0,
        split: str = "test",
        num_items: int | None = 2000,
        batch_size: int = 500,
        seed: int = 0,
        temperature: float = 1.0,
        top_k: int | None = None,
        num_references: int | None = None,
        self_bleu_items: int | None = None,
        nll: bool = True,
        temperatures: list[float] | None = None,
    ) -> None:
        super().__init__(every_n_epochs, split, num_items or 2000, batch_size, seed)
        for key, value in {
            "temperature": temperature,
            **{f"temperatures[{i}]": t for i, t in enumerate(temperatures or [])},
        }.items():
            if not isinstance(value, (int, float)) or isinstance(value, bool) or not value > 0:
                raise ValueError(f"metrics.{key} must be a positive number, got {value!r}")
        for key, value in {"num_references": num_references, "self_bleu_items": self_bleu_items}.items():
            if value is not None and value < 2:
                raise ValueError(f"metrics.{key} must be null (all) or at least 2, got {value}")
        self.temperature, self.top_k, self.nll = float(temperature), top_k, nll
        self.num_references, self.self_bleu_items = num_references, self_bleu_items
        self.temperatures = [float(t) for t in temperatures or []]
        self._references: tuple | None = None

    def settings(self) -> dict:
        return {
            "temperature": self.temperature,
            "top_k": self.top_k,
            "temperatures": ",".join(map(str, self.temperatures)) or None,
            "bleu": f"NLTK sentence_bleu, mean over hypotheses, weights 1/n, smoothing {SMOOTHING}",
            "self_bleu_items": self.self_bleu_items,
        }

    # ------------------------------------------------------------ pieces

    def sentences(self, module, datamodule, temperature: float) -> tuple[list[list[str]], int]:
        """The generated sentences, tokenised, and how many samples had no line end."""
        from gen_lightning.metrics.extractors import dist_info

        rank, world = dist_info()
        length = datamodule.hparams.max_length + 1
        rows = []
        for b in range(rank, -(-self.num_items // self.batch_size), world):
            n = min(self.batch_size, self.num_items - b * self.batch_size)
            generator = batch_generator(self.seed, b, module.device)
            texts = module.sample(n, length, temperature=temperature, top_k=self.top_k, generator=generator)
            rows += [(b * self.batch_size + i, t) for i, t in enumerate(texts)]
        texts = [t for _, t in sorted(gather_objects(rows))]
        split = datamodule.tokenizer.split
        return [split(t.split("\n", 1)[0]) for t in texts], sum("\n" not in t for t in texts)

    def references(self, datamodule, split: str) -> References:
        """The split's first ``num_references`` sentences, counted once per data module and split."""
        key = (id(datamodule), split, self.num_references)
        if self._references is None or self._references[0] != key:
            sentences = datamodule.sentences(split)[: self.num_references]
            self._references = (key, References(sentences, max(ORDERS)))
        return self._references[1]

    def bleu_scores(self, hypotheses: list[list[str]], references: References, suffix: str = "") -> dict:
        out = {f"bleu{n}{suffix}": v for n, v in corpus_mean_bleu(hypotheses, references, ORDERS).items()}
        diverse = hypotheses[: self.self_bleu_items]
        out.update({f"self_bleu{n}{suffix}": v for n, v in self_bleu(diverse, ORDERS).items()})
        return out

    def nll_test(self, module, datamodule, split: str) -> tuple[float, int]:
        """Mean NLL per token of the split's sentences (padding targets, -100, are not counted)."""
        total = torch.zeros(2, dtype=torch.float64, device=module.device)  # (nats, tokens)
        for inputs, targets in datamodule.nll_loader(split, self.batch_size):
            inputs, targets = inputs.to(module.device), targets.to(module.device)
            logits = module(inputs)  # (B, T, V)
            nll = F.cross_entropy(logits.flatten(0, 1).float(), targets.flatten(), reduction="sum")
            total += torch.stack([nll.double(), (targets != -100).sum().double()])
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            torch.distributed.all_reduce(total)
        return float(total[0] / total[1]), int(total[1])

    # ------------------------------------------------------------ the protocol

    def compute(self, module, datamodule, split: str) -> dict:
        if not hasattr(datamodule, "sentences"):
            raise ValueError(
                "metrics=sentences needs sentence data (data=sentences or data=oracle), "
                f"got {type(datamodule).__name__}"
            )
        references = self.references(datamodule, split)
        hypotheses, unfinished = self.sentences(module, datamodule, self.temperature)
        metrics = self.bleu_scores(hypotheses, references)
        card = {
            **datamodule.card(),
            "hypotheses": len(hypotheses),
            "references": references.size,
            "self_bleu_hypotheses": len(hypotheses[: self.self_bleu_items]),
            "unfinished": unfinished,
            "empty_hypotheses": sum(not h for h in hypotheses),
        }
        if self.nll and has_likelihood(module):
            metrics["nll_test"], card["nll_test_tokens"] = self.nll_test(module, datamodule, split)
        if self.nll and hasattr(datamodule, "oracle_nll"):
            metrics["nll_oracle"], card["nll_oracle_invalid"] = datamodule.oracle_nll(hypotheses)
        for t in self.temperatures:
            swept, unfinished_t = self.sentences(module, datamodule, t)
            metrics.update(self.bleu_scores(swept, references, f"_t{t:g}"))
            card[f"unfinished_t{t:g}"] = unfinished_t
        metrics = {k: v for k, v in metrics.items() if not (isinstance(v, float) and math.isnan(v))}
        return {"metrics": metrics, "protocol": card, "outputs": [" ".join(h) for h in hypotheses]}
