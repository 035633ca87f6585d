"""``TextClassifier``: a sequence family's network fine-tuned (or trained from scratch) to classify texts.

The prediction task of docs/CONTRACT.md: batches ``{"source", "source_mask", "target"}``, cross-entropy of the
class logits (label smoothing optional), validation accuracy and macro F1 (torchmetrics objects, exact under
DDP), ``predict(texts) -> (B, num_classes)`` probabilities. The body is BERT's encoder, GPT's decoder or an
LSTM/GRU (gen_lightning/classifier/nets.py), with the parameter names of its language model, so that
``init_from=CKPT`` starts it from a pre-trained checkpoint (pre-train, then fine-tune: Howard & Ruder 2018,
Radford et al. 2018, Devlin et al. 2019).

Fine-tuning options: ``freeze_body_epochs`` trains only the head for the first epochs (the body runs without
gradients, so AdamW neither updates nor decays it), then everything (ULMFiT's gradual unfreezing, in one step);
``body_lr_scale`` gives the body a smaller learning rate than the head (ULMFiT's discriminative fine-tuning).
Both follow the warm-up + cosine schedule of gen_lightning/nn/optim.py.
"""

from __future__ import annotations

from dataclasses import MISSING

import lightning as L
import torch
import torch.nn.functional as F
from torchmetrics import MeanMetric
from torchmetrics.classification import MulticlassAccuracy, MulticlassF1Score

from gen_lightning.classifier.nets import BODIES, DEFAULT_POOLING, POOLINGS, ClassifierHead, build_body, pool
from gen_lightning.data.text.tokenizers import from_config
from gen_lightning.nn.eval_mode import evaluating
from gen_lightning.nn.optim import adamw_warmup_cosine, optimizer_args
from gen_lightning.transformer.nets import TransformerConfig

PREVIEW_ROWS = 8
# The language models whose checkpoints fit each body, and their hyperparameters that fix the body's shapes.
SOURCES = {"BERT": "bert", "GPT": "gpt", "CharRNN": None}  # CharRNN: its ``cell`` (lstm or gru)
LAYOUT = tuple(TransformerConfig.layout_defaults())  # activation, norm, ...: saved only when set (nets.py)
TRANSFORMER_SHAPE = ("hidden_dim", "num_layers", "num_heads", "block_size", "bias", *LAYOUT)
RNN_SHAPE = ("hidden_dim", "num_layers")
SHAPE = {"bert": TRANSFORMER_SHAPE, "gpt": TRANSFORMER_SHAPE, "lstm": RNN_SHAPE, "gru": RNN_SHAPE}


class TextClassifier(L.LightningModule):
    task, source_modality, modality = "prediction", "text", "label"
    monitor = ("val/acc", "max")
    metric_directions = {"val/loss": "min", "val/acc": "max", "val/f1_macro": "max"}

    def __init__(
        self,
        tokenizer: dict,
        num_classes: int,
        class_names: list[str],
        body: str = "bert",
        pooling: str | None = None,
        block_size: int = 256,
        hidden_dim: int = 256,
        num_layers: int = 4,
        num_heads: int = 4,
        dropout: float = 0.1,
        bias: bool = True,
        head_dropout: float = 0.1,
        label_smoothing: float = 0.0,
        bidirectional: bool = False,
        freeze_body_epochs: int = 0,
        body_lr_scale: float = 1.0,
        lr: float = 5e-4,
        min_lr: float = 5e-5,
        betas: tuple[float, float] = (0.9, 0.99),
        weight_decay: float = 0.01,
        warmup_steps: int = 100,
        lr_decay_steps: int = 2000,
        activation: str = "gelu",
        norm: str = "pre",
        norm_eps: float = 1e-5,
        mlp_dim: int | None = None,
        token_types: int = 0,
    ) -> None:
        super().__init__()
        pooling = pooling or DEFAULT_POOLING.get(body)
        if pooling not in POOLINGS or (pooling == "first" and body != "bert"):
            raise ValueError(f"pooling must be one of {POOLINGS} ('first' only for body=bert), got {pooling!r}")
        if bidirectional and (body not in ("lstm", "gru") or pooling not in ("mean", "max")):
            raise ValueError(f"bidirectional needs body=lstm|gru and pooling=mean|max, got {body}, {pooling}")
        if num_classes < 2 or len(class_names) != num_classes:
            raise ValueError(f"need num_classes >= 2 names, got {num_classes} and {class_names}")
        if not 0.0 < body_lr_scale <= 1.0 or freeze_body_epochs < 0:
            raise ValueError(
                f"need 0 < body_lr_scale <= 1 and freeze_body_epochs >= 0, got {body_lr_scale}, {freeze_body_epochs}"
            )
        # Not sent to loggers: the run logs its config itself, and a subword tokenizer's description is ~1 MB.
        # The transformer layout options (Hugging Face checkpoints) only when set: older checkpoints stay comparable.
        layout = dict(activation=activation, norm=norm, norm_eps=norm_eps, mlp_dim=mlp_dim)
        layout["token_types"] = token_types
        unset = [k for k, v in layout.items() if v == TransformerConfig.layout_defaults()[k]]
        self.save_hyperparameters(logger=False, ignore=unset)
        self.tokenizer = from_config(tokenizer)
        shape = dict(block_size=block_size, num_layers=num_layers, num_heads=num_heads, hidden_dim=hidden_dim)
        shape |= dict(dropout=dropout, bias=bias, bidirectional=bidirectional, **layout)
        cls_id = getattr(self.tokenizer, "cls_id", None)
        self.net = build_body(body, self.tokenizer.vocab_size, cls_id, **shape)
        self.head = ClassifierHead(self.net.width, num_classes, head_dropout)
        self.pooling = pooling
        self.val_loss = MeanMetric()
        self.val_acc = MulticlassAccuracy(num_classes, average="micro")
        self.val_f1 = MulticlassF1Score(num_classes, average="macro")

    # ---- pre-trained weights (gen_lightning/run/init_from.py) -----------------------------------------------------
    @property
    def init_prefixes(self) -> tuple[str, ...]:
        """The parameters a language model's checkpoint must provide: the body's, named as in that model."""
        return tuple(f"net.{p}" for p in self.net.pretrained)

    @classmethod
    def init_shape(cls, model_cfg, target: str | None = None, cell: str | None = None) -> dict:
        """The hyperparameters a language model's checkpoint (of the class ``target``; a CharRNN's ``cell``) fixes
        for this body (gen_lightning/run/init_from.py), each with its value where a checkpoint lacks it (a layout
        option's default); none for a checkpoint of another body."""
        body = model_cfg.get("body") if target is None else SOURCES.get(target.rpartition(".")[2], "?") or cell
        if body != model_cfg.get("body") or body not in SHAPE or model_cfg.get("bidirectional"):
            return {}  # check_init_source names what fits
        defaults = TransformerConfig.layout_defaults()
        return {k: defaults.get(k, MISSING) for k in SHAPE[body]}

    def check_init_source(self, target: str, hparams: dict) -> None:
        """Refuse a checkpoint of another body or other shapes, naming the overrides that fit it."""
        if self.hparams.bidirectional:
            raise ValueError("a bidirectional body has no pre-trained language model (one reads left to right)")
        name = target.rpartition(".")[2]
        body = SOURCES.get(name, "?") or hparams.get("cell")
        if body != self.hparams.body:
            fits = f"model.body={body}" if body in BODIES else f"a checkpoint of {sorted(SOURCES)}"
            raise ValueError(f"init_from holds a {target}, which does not fit body={self.hparams.body}: use {fits}")
        defaults = TransformerConfig.layout_defaults()
        differ = [k for k in SHAPE[body] if (k in hparams or k in defaults)
                  and hparams.get(k, defaults.get(k)) != self.hparams.get(k, defaults.get(k))]  # fmt: skip
        if differ:
            fix = " ".join(f"model.{k}={hparams.get(k, defaults.get(k))}" for k in differ)
            raise ValueError(f"init_from's {name} has other shapes than this model: set {fix}")

    # ---- forward, training, validation ------------------------------------------------------------------------
    def forward(self, source: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """(B, S) ids and mask -> (B, num_classes) logits; longer texts are cut to the body's positions."""
        if self.pooling == "first":  # prepend [CLS] (a Hugging Face tokenizer's; else the [MASK] symbol)
            cls = torch.full_like(source[:, :1], self.net.cls_id)
            source, mask = torch.cat([cls, source], 1), torch.cat([torch.ones_like(mask[:, :1]), mask], 1)
        if self.net.block_size is not None:
            source, mask = source[:, : self.net.block_size], mask[:, : self.net.block_size]
        frozen = self.training and self._body_frozen()
        with torch.set_grad_enabled(torch.is_grad_enabled() and not frozen):
            states = self.net(source, mask)  # (B, S, C)
        return self.head(pool(states, mask, self.pooling))

    def _loss(self, batch) -> tuple[torch.Tensor, torch.Tensor]:
        logits = self(batch["source"], batch["source_mask"])
        loss = F.cross_entropy(logits, batch["target"], label_smoothing=self.hparams.label_smoothing)
        return loss, logits

    def training_step(self, batch, batch_idx: int) -> torch.Tensor:
        loss, _ = self._loss(batch)
        self.log("train/loss", loss, on_step=True, on_epoch=False, prog_bar=True, batch_size=len(batch["target"]))
        if self._body_frozen() and self.trainer.world_size > 1:
            # DDP without its unused-parameter search (conf/trainer/ddp.yaml) needs a gradient for every parameter:
            # zeros for the frozen body, dropped again before the step (on_before_optimizer_step).
            loss = loss + 0.0 * sum(p.sum() for p in self.net.parameters())
        return loss

    def on_before_optimizer_step(self, optimizer) -> None:
        if self._body_frozen():  # no gradient: AdamW neither updates nor decays the body
            for p in self.net.parameters():
                p.grad = None

    def _body_frozen(self) -> bool:
        return self.current_epoch < self.hparams.freeze_body_epochs

    def validation_step(self, batch, batch_idx: int) -> None:
        loss, logits = self._loss(batch)
        n = len(batch["target"])
        self.val_loss.update(loss, weight=n)
        self.val_acc.update(logits, batch["target"])
        self.val_f1.update(logits, batch["target"])
        for name, metric in (("loss", self.val_loss), ("acc", self.val_acc), ("f1_macro", self.val_f1)):
            self.log(f"val/{name}", metric, on_step=False, on_epoch=True, batch_size=n, prog_bar=name == "acc")

    def configure_optimizers(self):
        scales = {"net.": self.hparams.body_lr_scale} if self.hparams.body_lr_scale != 1.0 else None
        return adamw_warmup_cosine(self.named_parameters(), **optimizer_args(self.hparams), lr_scales=scales)

    # ---- what the model produces ------------------------------------------------------------------------------
    def encode(self, texts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """Raw texts -> right-padded ids (B, S) and mask on the module's device; an empty text is a ValueError."""
        if isinstance(texts, str) or not texts:
            raise ValueError("predict takes a non-empty list of texts")
        ids = [self.tokenizer.encode(t) if t else torch.zeros(0, dtype=torch.long) for t in texts]
        empty = [i for i, x in enumerate(ids) if len(x) == 0]
        if empty:
            raise ValueError(f"text(s) {empty} are empty: a classifier needs at least one token per text")
        limit = self.net.block_size or max(len(x) for x in ids)
        ids = [x[:limit] for x in ids]
        pad = int(self.hparams.tokenizer.get("pad_id", 0))
        source = torch.full((len(ids), max(len(x) for x in ids)), pad, dtype=torch.long)
        mask = torch.zeros_like(source, dtype=torch.bool)
        for row, x in enumerate(ids):
            source[row, : len(x)], mask[row, : len(x)] = x, True
        return source.to(self.device), mask.to(self.device)

    def predict(self, sources: list[str], batch_size: int = 64, **options) -> torch.Tensor:
        """(B, num_classes) class probabilities of raw texts (eval mode, no gradients)."""
        if options:
            raise ValueError(f"{type(self).__name__}.predict takes batch_size only, not {sorted(options)}")
        out = []
        with evaluating(self):
            for start in range(0, len(sources), batch_size):
                out.append(self(*self.encode(list(sources[start : start + batch_size]))).softmax(dim=-1))
        return torch.cat(out)

    def preview(self, batch, generator: torch.Generator | None = None) -> dict[str, list[dict[str, str]]]:
        """A table of the first validation texts: text, label, predicted class and its probability."""
        n = min(PREVIEW_ROWS, len(batch["target"]))
        with evaluating(self):
            probs = self(batch["source"][:n], batch["source_mask"][:n]).softmax(dim=-1)
        names = self.hparams.class_names
        rows = []
        for i in range(n):
            text = self.tokenizer.decode(batch["source"][i][batch["source_mask"][i]].tolist())
            p, k = probs[i].max(dim=0)
            rows.append(
                {"text": text, "label": names[int(batch["target"][i])], "predicted": names[int(k)], "p": f"{p:.3f}"}
            )
        return {"predictions": rows}

    def sample_info(self) -> dict:
        return {"body": self.hparams.body, "pooling": self.pooling, "weights": "raw"}
