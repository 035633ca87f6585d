"""Sequence-to-sequence LightningModules: the Transformer encoder-decoder and the attentive RNN.

``Seq2Seq`` owns what both share: teacher-forced cross-entropy with label smoothing (Szegedy et al. 2016; 0.1 as
in Vaswani et al. 2017) over the real target tokens, ``val/loss`` (unsmoothed nats per target token) and
``val/ppl``, AdamW with the warm-up + cosine schedule of ``gen_lightning/nn/optim.py``, ``generate`` from raw texts
to detokenised texts (greedy, beam search, sampling: ``decoding.py``), the preview table (source | reference |
hypothesis) and ``sample_info``. Decoding settings are hyperparameters (so a study can vary them per evaluation)
and keyword arguments of ``generate`` (per call).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

import lightning as L
import torch
import torch.nn.functional as F
from torchmetrics import MeanMetric

from gen_lightning.data.text.seq2seq import Vocabulary, pad
from gen_lightning.nn import hparams
from gen_lightning.nn.eval_mode import evaluating
from gen_lightning.nn.optim import WarmupCosine, adamw_warmup_cosine, optimizer_args
from gen_lightning.nn.token_metrics import Perplexity
from gen_lightning.seq2seq.decoding import beam_search, greedy, length_limits
from gen_lightning.seq2seq.nets import Seq2SeqConfig, TransformerSeq2SeqNet
from gen_lightning.seq2seq.rnn_nets import RNNSeq2SeqConfig, RNNSeq2SeqNet


@dataclass
class Training(WarmupCosine):
    """How both models learn: the loss's label smoothing and AdamW with warm-up and cosine decay."""

    label_smoothing: float = 0.1  # epsilon_ls of Vaswani et al. section 5.4


@dataclass
class Decoding:
    """The decoding settings: hyperparameters (a study may vary them per evaluation) and per-call options of
    ``generate``."""

    beam: int = 1  # 1: greedy (or sampling when temperature > 0); > 1: beam search
    length_penalty: float = 1.0  # beam scores are sum(log p) / length ** length_penalty
    max_len_a: float = 1.2  # at most max_len_a * source_length + max_len_b target tokens
    max_len_b: int = 10
    temperature: float = 0.0  # 0: deterministic (greedy / beam); > 0: sampling
    top_k: int | None = None  # sampling: keep the k most probable tokens
    top_p: float | None = None  # sampling: keep the nucleus of probability top_p
    use_cache: bool = True  # decoder self-attention KV cache (an RNN always carries its state)
    no_repeat_ngram: int = 0  # > 0: never repeat an n-gram of this size in one output

    def __post_init__(self) -> None:
        if self.beam < 1:
            raise ValueError(f"beam must be >= 1, got {self.beam}")
        if self.temperature > 0 and self.beam > 1:
            raise ValueError("sampling (temperature > 0) draws one hypothesis: use beam=1 with it")


DECODING = tuple(f.name for f in fields(Decoding))
VOCAB_SIZES = ("source_vocab_size", "target_vocab_size")  # from the tokenizers, not hyperparameters
PREVIEW_ROWS = 8


class Seq2Seq(L.LightningModule):
    """A subclass names its ``network`` config dataclass; its hyperparameters are that dataclass's fields (less
    the vocabulary sizes), ``Training``'s and ``Decoding``'s, with the subclass's own ``defaults`` first."""

    task, source_modality, modality = "conditional", "text", "text"
    monitor = ("val/loss", "min")
    metric_directions = {"val/loss": "min", "val/ppl": "min"}
    network: type
    defaults: dict = {}

    def __init_subclass__(cls, **kwargs) -> None:
        super().__init_subclass__(**kwargs)
        cls.__signature__ = hparams.signature(cls.__init__, cls.groups(), cls.defaults, VOCAB_SIZES)

    @classmethod
    def groups(cls) -> tuple[type, ...]:
        return (cls.network, Training, Decoding)

    def _configure(self, tokenizer: dict, source_tokenizer: dict | None, settings: dict, **named):
        """Checks and saves the hyperparameters, builds the vocabularies; returns the network's config."""
        net, training, decoding = hparams.parse(
            type(self).__name__, settings, self.groups(), self.defaults, VOCAB_SIZES
        )
        # The run logs its config; the tokenizer (~0.7 MB) stays out of the loggers.
        every = {"tokenizer": tokenizer, "source_tokenizer": source_tokenizer, **named, **net, **training, **decoding}
        self.save_hyperparameters(every, logger=False)
        self.target_vocab = Vocabulary(tokenizer)
        self.source_vocab = Vocabulary(source_tokenizer) if source_tokenizer else self.target_vocab
        self.val_loss, self.val_ppl = MeanMetric(), Perplexity()
        sizes = {"source_vocab_size": self.source_vocab.size, "target_vocab_size": self.target_vocab.size}
        # One embedding for both sides needs one vocabulary: only when the data module has no source tokenizer.
        share = net["share_embeddings"] and source_tokenizer is None
        return self.network(**sizes, **{**net, "share_embeddings": share})

    def forward(self, batch: dict) -> torch.Tensor:
        """Teacher forcing: (B, T - 1, V) logits of target[:, 1:] given the source and target[:, :-1]."""
        return self.net(batch["source"], batch["source_mask"], batch["target"][:, :-1])

    def _loss(self, batch: dict, smoothing: float) -> tuple[torch.Tensor, int]:
        logits = self(batch)
        labels = batch["target"][:, 1:].masked_fill(~batch["target_mask"][:, 1:], -100)  # pad: ignored
        loss = F.cross_entropy(logits.flatten(0, 1).float(), labels.flatten(), label_smoothing=smoothing)
        return loss, int(batch["target_mask"][:, 1:].sum())

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        loss, _ = self._loss(batch, self.hparams.label_smoothing)
        self.log("train/loss", loss, on_step=True, on_epoch=False, prog_bar=True, batch_size=batch["source"].size(0))
        return loss

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        loss, num_tokens = self._loss(batch, 0.0)
        for name, metric in (("loss", self.val_loss), ("ppl", self.val_ppl)):
            metric.update(loss.detach(), weight=num_tokens)
            self.log(f"val/{name}", metric, on_epoch=True, batch_size=batch["source"].size(0), prog_bar=name == "loss")

    def configure_optimizers(self):
        return adamw_warmup_cosine(self.net.named_parameters(), **optimizer_args(self.hparams))

    # ---- generation ----------------------------------------------------------------------------------
    def decoding(self, **options) -> dict:
        """The decoding settings of a call: the hyperparameters, replaced by ``options``."""
        unknown = sorted(set(options) - set(DECODING))
        if unknown:
            raise ValueError(f"{type(self).__name__}.generate takes the options {list(DECODING)}, not {unknown}")
        return asdict(Decoding(**{**{k: self.hparams[k] for k in DECODING}, **options}))

    def encode_sources(self, sources: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        if isinstance(sources, str) or not all(isinstance(s, str) for s in sources):
            raise ValueError("generate takes a list of source texts (list[str])")
        empty = [i for i, s in enumerate(sources) if not s.strip()]
        if empty:
            raise ValueError(f"source texts must not be empty (indices {empty[:10]})")
        ids = self.source_vocab.encode_batch(list(sources))
        framed = [self.source_vocab.frame_source(row, self.max_source_len) for row in ids]
        source, mask = pad(framed, self.source_vocab.pad)
        return source.to(self.device), mask.to(self.device)

    def generate_ids(self, source, source_mask, generator=None, **options) -> list[list[int]]:
        """Target ids (without bos/eos) for (B, S) source ids, decoded as ``options`` say."""
        s = self.decoding(**options)
        v = self.target_vocab
        limits = length_limits(source_mask, s["max_len_a"], s["max_len_b"], self.max_target_len - 1)
        common = dict(bos=v.bos, eos=v.eos, banned=(v.pad, v.bos), limits=limits, use_cache=s["use_cache"],
                      no_repeat_ngram=s["no_repeat_ngram"])  # fmt: skip
        with evaluating(self):
            if s["beam"] > 1:
                return beam_search(self.net, source, source_mask, beam=s["beam"], length_penalty=s["length_penalty"],
                                   **common)  # fmt: skip
            return greedy(self.net, source, source_mask, temperature=s["temperature"], top_k=s["top_k"],
                          top_p=s["top_p"], generator=generator, **common)  # fmt: skip

    def generate(self, sources: list[str], generator: torch.Generator | None = None, **options) -> list[str]:
        """Detokenised outputs for raw source texts (docs/CONTRACT.md); options: ``DECODING``."""
        source, mask = self.encode_sources(sources)
        # A byte-level vocabulary may start a text with a space token: outputs are single lines, stripped.
        return [self.target_vocab.decode(ids).strip() for ids in self.generate_ids(source, mask, generator, **options)]

    def preview(self, batch: dict, generator: torch.Generator) -> dict[str, list[dict[str, str]]]:
        """A table of the first rows of a validation batch: source | reference | hypothesis."""
        n = min(PREVIEW_ROWS, batch["source"].size(0))
        source, mask = batch["source"][:n], batch["source_mask"][:n]
        hypotheses = self.generate_ids(source, mask, generator)
        rows = []
        for i in range(n):
            rows.append({
                "source": self.source_vocab.decode(source[i][mask[i]].tolist()),
                "reference": self.target_vocab.decode(batch["target"][i][batch["target_mask"][i]].tolist()),
                "hypothesis": self.target_vocab.decode(hypotheses[i]),
            })  # fmt: skip
        return {"outputs": rows}

    def sample_info(self) -> dict:
        s = self.decoding()
        info = {"decoding": "beam" if s["beam"] > 1 else "greedy" if s["temperature"] == 0 else "sampling"}
        info.update({k: s[k] for k in DECODING if k != "use_cache"})
        return {**info, "kv_cache": bool(s["use_cache"]), "weights": "raw"}

    @property
    def max_source_len(self) -> int:
        return self.hparams.max_len

    @property
    def max_target_len(self) -> int:
        return self.hparams.max_len


class TransformerSeq2Seq(Seq2Seq):
    """Transformer encoder-decoder (Vaswani et al. 2017), pre-norm; see ``nets.py`` (``Seq2SeqConfig``)."""

    network = Seq2SeqConfig
    defaults = {"max_len": 128, "share_embeddings": True}

    def __init__(self, tokenizer: dict, source_tokenizer: dict | None = None, **settings) -> None:
        super().__init__()
        self.net = TransformerSeq2SeqNet(self._configure(tokenizer, source_tokenizer, settings))


class RNNSeq2Seq(Seq2Seq):
    """Attentive RNN encoder-decoder (Bahdanau et al. 2015 / Luong et al. 2015); see ``rnn_nets.py``."""

    network = RNNSeq2SeqConfig
    defaults = {"share_embeddings": True, "warmup_steps": 200}

    def __init__(self, tokenizer: dict, source_tokenizer: dict | None = None, max_len: int = 128, **settings) -> None:
        """``max_len``: the longest generated target (the RNN itself has no position limit)."""
        super().__init__()
        self.net = RNNSeq2SeqNet(self._configure(tokenizer, source_tokenizer, settings, max_len=max_len))
