"""GPT: a decoder-only Transformer language model trained by next-token prediction.

Radford et al. 2018/2019 (GPT, GPT-2), in the shape of Karpathy's nanoGPT: pre-norm blocks, causal
``F.scaled_dot_product_attention``, learned positions, tied input/output embeddings, AdamW with decay on
matrices only, linear warm-up then cosine decay stepped every optimizer step. Gradient clipping is the
Trainer's ``gradient_clip_val`` (automatic optimisation). Sampling uses a key/value cache, temperature, top-k
and top-p.

Speed options (measured in benchmarks/nanogpt_speed.py): ``fused_optimizer`` (one-kernel AdamW),
``compile`` (``torch.compile`` of the training and validation forward; generation stays eager), and the
Trainer's ``precision=bf16-mixed`` (bf16 matrix products; attention stays float32 on the CPU, see ``nets.py``).
"""

from __future__ import annotations

from gen_lightning.data.text.tokenizers import from_config
from gen_lightning.nn.language_model import LanguageModel
from gen_lightning.transformer.nets import GPTNet, TransformerConfig


class GPT(LanguageModel):
    def __init__(
        self,
        tokenizer: dict,
        block_size: int = 256,
        num_layers: int = 6,
        num_heads: int = 6,
        hidden_dim: int = 384,
        dropout: float = 0.2,
        bias: bool = False,
        lr: float = 1e-3,
        min_lr: float = 1e-4,
        betas: tuple[float, float] = (0.9, 0.99),
        weight_decay: float = 0.1,
        warmup_steps: int = 100,
        lr_decay_steps: int = 5000,
        fused_optimizer: bool = False,
        compile: bool = False,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.tokenizer = from_config(tokenizer)
        self.net = GPTNet(TransformerConfig.from_hparams(self.hparams, self.tokenizer.vocab_size, causal=True))

    def sample_info(self) -> dict:
        context = self.hparams.block_size
        return {"sampler": "ancestral", "kv_cache": True, "context": context, "weights": "raw"}
