"""What the sequence families share as LightningModules: one loss, one optimiser, one way to sample.

A subclass lists its hyperparameters in ``settings`` (dataclasses, e.g. its network's config; the optimiser's
``WarmupCosine`` follows) with its own ``defaults``, passes the tokenizer and its keyword arguments to
``LanguageModel.__init__`` (which checks and saves them, see ``hparams.py``, and sets ``self.tokenizer``), then
sets ``self.net``: a network with ``net(ids) -> logits`` and ``net.generate(ids, max_new_tokens, temperature=,
top_k=, top_p=, generator=, ...)``. It gets next-token cross-entropy training and validation (``train/loss``,
``val/loss``, ``val/bpc``, ``val/ppl``), AdamW with the warm-up + cosine schedule of ``optim.py`` from its
hyperparameters, ``sample`` and the per-validation text preview. BERT replaces the loss (masked tokens) and
keeps the rest.
"""

from __future__ import annotations

import dataclasses
import inspect

import lightning as L
import torch
import torch.nn.functional as F

from gen_lightning.data.text.tokenizers import from_config
from gen_lightning.nn import hparams
from gen_lightning.nn.eval_mode import evaluating
from gen_lightning.nn.optim import WarmupCosine, adamw_warmup_cosine, optimizer_args
from gen_lightning.nn.sampling import sample_text
from gen_lightning.nn.token_metrics import TokenLossMetrics

PREVIEW_SAMPLES, PREVIEW_LENGTH = 4, 200
_SAMPLING = ("temperature", "top_k", "top_p", "generator")  # every family's generate takes these


class LanguageModel(L.LightningModule):
    task = "unconditional"
    source_modality: str | None = None
    modality = "text"
    monitor = ("val/loss", "min")
    # Lower is better for each (token_metrics.py): the cross-entropy, in bits per token, and its perplexity.
    metric_directions: dict[str, str] = {"val/loss": "min", "val/bpc": "min", "val/ppl": "min"}
    sample_modes: tuple[str, ...] = ()
    # Whether forward(inputs) gives next-token logits, so a text protocol may report the likelihood of held-out text
    # (metrics/sentences.py: nll_test); a model trained otherwise (BERT's masked tokens) says False.
    next_token_likelihood = True
    settings: tuple[type, ...] = ()  # the hyperparameter dataclasses before the optimiser's
    defaults: dict = {}  # this model's defaults where they differ from the dataclasses'
    SHAPE = ("vocab_size", "causal")  # network config fields set by the tokenizer and the model, not by the user

    def __init_subclass__(cls, **kwargs) -> None:
        super().__init_subclass__(**kwargs)
        cls.__signature__ = hparams.signature(cls.__init__, cls.groups(), cls.defaults, cls.SHAPE)

    @classmethod
    def init_shape(cls, model_cfg, target: str | None = None, cell: str | None = None) -> dict:
        """The hyperparameters a checkpoint (of the class ``target``) fixes for this model
        (gen_lightning/run/init_from.py): its network config's fields but dropout, each with its value where a
        checkpoint lacks it (an ``IF_SET`` field's default; else MISSING); none for a checkpoint of another class."""
        if (target is not None and target.rpartition(".")[2] != cls.__name__) or not cls.settings:
            return {}
        fields = [f for f in dataclasses.fields(cls.settings[0]) if f.name not in (*cls.SHAPE, "dropout")]
        return {f.name: f.default if f.metadata == hparams.IF_SET else dataclasses.MISSING for f in fields}

    @classmethod
    def groups(cls) -> tuple[type, ...]:
        return (*cls.settings, WarmupCosine)

    def __init__(self, tokenizer: dict, settings: dict) -> None:
        """Checks ``settings`` (the keyword arguments) against ``groups()``; saves them with the tokenizer."""
        super().__init__()
        groups = hparams.parse(type(self).__name__, settings, self.groups(), self.defaults, self.SHAPE)
        given = hparams.saved({k: v for values in groups for k, v in values.items()}, self.groups())
        self.save_hyperparameters({"tokenizer": tokenizer, **given})
        self.tokenizer = from_config(tokenizer)
        self.val_metrics = TokenLossMetrics("val")

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        """(B, T) ids -> (B, T, V) next-token logits (through ``torch.compile`` with the ``compile`` option)."""
        if not self.hparams.get("compile", False):
            return self.net(idx)
        if "_compiled_net" not in self.__dict__:  # kept out of the module tree: the state_dict keys stay the same
            self.__dict__["_compiled_net"] = torch.compile(self.net)
        return self.__dict__["_compiled_net"](idx)

    def next_token_loss(self, batch) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean cross-entropy of every next token of a batch of windows, and the number of tokens."""
        inputs, targets = batch  # (B, T) each
        logits = self(inputs)  # (B, T, V)
        # Targets of -100 (padding of sentence data, data/sentences.py) are ignored, and not counted.
        return F.cross_entropy(logits.flatten(0, 1), targets.flatten()), (targets != -100).sum()

    def training_step(self, batch, batch_idx: int) -> torch.Tensor:
        loss, _ = self.next_token_loss(batch)
        self.log("train/loss", loss, on_step=True, on_epoch=False, prog_bar=True)
        return loss

    def validation_step(self, batch, batch_idx: int) -> None:
        loss, num_tokens = self.next_token_loss(batch)
        self.val_metrics.update(loss, num_tokens)
        self.val_metrics.log_to(self, batch_size=batch[0].size(0))

    def configure_optimizers(self):
        return adamw_warmup_cosine(self.net.named_parameters(), **optimizer_args(self.hparams))

    def configure_gradient_clipping(self, optimizer, gradient_clip_val=None, gradient_clip_algorithm=None) -> None:
        # Lightning's mixed-precision plugin refuses to clip for a fused optimizer, for fear of scaled gradients;
        # under bf16 nothing is scaled. Clip as Lightning's own path does (the optimiser's parameters, in order).
        if not gradient_clip_val or getattr(self.trainer.precision_plugin, "scaler", None) is not None:
            return super().configure_gradient_clipping(optimizer, gradient_clip_val, gradient_clip_algorithm)
        params = [p for group in optimizer.param_groups for p in group["params"]]
        if gradient_clip_algorithm == "value":
            return torch.nn.utils.clip_grad_value_(params, gradient_clip_val)
        torch.nn.utils.clip_grad_norm_(params, gradient_clip_val)

    def generate_defaults(self) -> dict:
        """Keyword arguments of ``net.generate`` taken from the hyperparameters (overridable per call)."""
        return {}

    def sample(
        self,
        n: int,
        length: int,
        prompt: str = "",
        temperature: float = 1.0,
        top_k: int | None = None,
        top_p: float | None = None,
        generator: torch.Generator | None = None,
        **options,
    ) -> list[str]:
        """n texts: the prompt followed by ``length`` generated tokens (all randomness from ``generator``).

        ``options`` go to the network's ``generate`` (GPT: ``use_cache``; BERT: ``fill_per_step``)."""
        known = [p for p in inspect.signature(self.net.generate).parameters if p not in ("idx", "max_new_tokens")]
        unknown = sorted(set(options) - set(known))
        if unknown:
            extra = [p for p in known if p not in _SAMPLING]
            raise ValueError(
                f"{type(self).__name__} does not take the sampling option(s) {unknown}; besides n, length, prompt, "
                f"temperature, top_k, top_p it takes {extra or 'nothing'}"
            )
        with evaluating(self):
            return sample_text(
                self.net.generate,
                self.tokenizer,
                n,
                length,
                prompt,
                self.device,
                temperature=temperature,
                top_k=top_k,
                top_p=top_p,
                generator=generator,
                **{**self.generate_defaults(), **options},
            )

    def preview(self, batch, generator: torch.Generator) -> dict[str, list[str]]:
        return {"text": self.sample(PREVIEW_SAMPLES, PREVIEW_LENGTH, generator=generator)}
