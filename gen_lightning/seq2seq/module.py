"""Sequence-to-sequence LightningModules: the Transformer encoder-decoder and the attentive RNN.

``Seq2Seq`` owns what both share: teacher-forced cross-entropy with label smoothing (Szegedy et al. 2016; 0.1 as
in Vaswani et al. 2017) over the real target tokens, ``val/loss`` (unsmoothed nats per target token) and
``val/ppl``, AdamW with the warm-up + cosine schedule of ``gen_lightning/nn/optim.py``, ``generate`` from raw texts
to detokenised texts (greedy, beam search, sampling: ``decoding.py``), the preview table (source | reference |
hypothesis) and ``sample_info``. Decoding settings are hyperparameters (so a study can vary them per evaluation)
and keyword arguments of ``generate`` (per call).
"""

from __future__ import annotations

import lightning as L
import torch
import torch.nn.functional as F
from torchmetrics import MeanMetric

from gen_lightning.data.text.seq2seq import Vocabulary, pad
from gen_lightning.nn.optim import adamw_warmup_cosine, optimizer_args
from gen_lightning.nn.sampling import evaluating
from gen_lightning.nn.token_metrics import Perplexity
from gen_lightning.seq2seq.decoding import beam_search, greedy, length_limits
from gen_lightning.seq2seq.nets import Seq2SeqConfig, TransformerSeq2SeqNet
from gen_lightning.seq2seq.rnn_nets import RNNSeq2SeqNet

DECODING = ("beam", "length_penalty", "max_len_a", "max_len_b", "temperature", "top_k", "top_p", "use_cache",
            "no_repeat_ngram")  # fmt: skip
PREVIEW_ROWS = 8


class Seq2Seq(L.LightningModule):
    task, source_modality, modality = "conditional", "text", "text"
    monitor = ("val/loss", "min")
    metric_directions = {"val/loss": "min", "val/ppl": "min"}

    def _vocabularies(self, tokenizer: dict, source_tokenizer: dict | None) -> None:
        self.target_vocab = Vocabulary(tokenizer)
        self.source_vocab = Vocabulary(source_tokenizer) if source_tokenizer else self.target_vocab
        self.val_loss, self.val_ppl = MeanMetric(), Perplexity()

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
        # Checkpoints older than an option decode with its neutral value.
        settings = {"no_repeat_ngram": 0, **{k: self.hparams[k] for k in DECODING if k in self.hparams}, **options}
        if settings["beam"] < 1:
            raise ValueError(f"beam must be >= 1, got {settings['beam']}")
        if settings["temperature"] > 0 and settings["beam"] > 1:
            raise ValueError("sampling (temperature > 0) draws one hypothesis: use beam=1 with it")
        return settings

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
    """Transformer encoder-decoder (Vaswani et al. 2017), pre-norm; see ``nets.py``."""

    def __init__(
        self,
        tokenizer: dict,
        source_tokenizer: dict | None = None,
        max_len: int = 128,
        num_layers: int = 3,
        num_decoder_layers: int = 3,
        num_heads: int = 4,
        hidden_dim: int = 256,
        dropout: float = 0.1,
        bias: bool = True,
        positions: str = "sinusoidal",
        share_embeddings: bool = True,
        tie_output: bool = True,
        label_smoothing: float = 0.1,
        lr: float = 1e-3,
        min_lr: float = 1e-4,
        betas: tuple[float, float] = (0.9, 0.98),
        weight_decay: float = 0.01,
        warmup_steps: int = 400,
        lr_decay_steps: int = 10000,
        beam: int = 1,
        length_penalty: float = 1.0,
        max_len_a: float = 1.2,
        max_len_b: int = 10,
        temperature: float = 0.0,
        top_k: int | None = None,
        top_p: float | None = None,
        use_cache: bool = True,
        no_repeat_ngram: int = 0,
    ) -> None:
        super().__init__()
        self.save_hyperparameters(logger=False)  # the run logs its config; the tokenizer (~0.7 MB) stays out
        self._vocabularies(tokenizer, source_tokenizer)
        cfg = Seq2SeqConfig(
            source_vocab_size=self.source_vocab.size,
            target_vocab_size=self.target_vocab.size,
            max_len=max_len,
            num_layers=num_layers,
            num_decoder_layers=num_decoder_layers,
            num_heads=num_heads,
            hidden_dim=hidden_dim,
            dropout=dropout,
            bias=bias,
            positions=positions,
            share_embeddings=share_embeddings and source_tokenizer is None,
            tie_output=tie_output,
        )
        self.net = TransformerSeq2SeqNet(cfg)


class RNNSeq2Seq(Seq2Seq):
    """Attentive RNN encoder-decoder (Bahdanau et al. 2015 / Luong et al. 2015); see ``rnn_nets.py``."""

    def __init__(
        self,
        tokenizer: dict,
        source_tokenizer: dict | None = None,
        max_len: int = 128,
        cell: str = "gru",
        attention: str = "bahdanau",
        hidden_dim: int = 256,
        num_layers: int = 1,
        dropout: float = 0.1,
        share_embeddings: bool = True,
        tie_output: bool = True,
        label_smoothing: float = 0.1,
        lr: float = 1e-3,
        min_lr: float = 1e-4,
        betas: tuple[float, float] = (0.9, 0.98),
        weight_decay: float = 0.01,
        warmup_steps: int = 200,
        lr_decay_steps: int = 10000,
        beam: int = 1,
        length_penalty: float = 1.0,
        max_len_a: float = 1.2,
        max_len_b: int = 10,
        temperature: float = 0.0,
        top_k: int | None = None,
        top_p: float | None = None,
        use_cache: bool = True,
        no_repeat_ngram: int = 0,
    ) -> None:
        super().__init__()
        self.save_hyperparameters(logger=False)  # the run logs its config; the tokenizer (~0.7 MB) stays out
        self._vocabularies(tokenizer, source_tokenizer)
        self.net = RNNSeq2SeqNet(
            self.source_vocab.size,
            self.target_vocab.size,
            cell=cell,
            attention=attention,
            hidden_dim=hidden_dim,
            num_layers=num_layers,
            dropout=dropout,
            share_embeddings=share_embeddings and source_tokenizer is None,
            tie_output=tie_output,
        )
