"""Transformer networks in plain PyTorch: a decoder-only GPT and an encoder-only BERT.

Vaswani et al. 2017 ("Attention Is All You Need") for the blocks; GPT-2 (Radford et al. 2019) for the pre-norm
layout, learned positions, weight tying and the residual-projection initialisation, following nanoGPT's
``model.py``; BERT (Devlin et al. 2019) for the bidirectional encoder with a masked-language-model head
(dense, GELU, LayerNorm, then the tied embedding matrix plus a bias). Both share the same pre-norm blocks
(original BERT is post-norm; pre-norm trains stably without warm-up tuning and keeps one block class).
``TransformerConfig``'s layout options (activation, ``norm="post"``, LayerNorm epsilon, MLP width, token-type
embeddings) let the same classes hold published GPT-2 and BERT weights (gen_lightning/interop/hf.py).

Generation keeps a key/value cache per layer. With learned absolute positions a window cannot slide by one
token and reuse its cache, so both the cached and the uncached path use the same context rule: the context
grows to ``block_size`` tokens, then restarts from its last ``block_size // 2`` tokens (the cache is refilled
once every ``block_size // 2`` steps). The two paths therefore give the same tokens for the same generator.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from gen_lightning.nn.hparams import IF_SET
from gen_lightning.nn.sampling import sample_next, sample_probs


@dataclass
class TransformerConfig:
    vocab_size: int
    block_size: int = 256
    num_layers: int = 6
    num_heads: int = 6
    hidden_dim: int = 384
    dropout: float = 0.0
    bias: bool = False
    causal: bool = True
    # Layouts of published checkpoints (gen_lightning/interop/hf.py); the defaults are this package's own layout,
    # and a module saves them only when set otherwise (checkpoints written before them stay comparable on resume).
    activation: str = field(default="gelu", metadata=IF_SET)  # of the MLPs (and BERT's head): gelu (erf),
    # gelu_tanh (GPT-2's "gelu_new"), relu
    norm: str = field(default="pre", metadata=IF_SET)  # pre (GPT-2, nanoGPT) or post (BERT): see NORMS
    norm_eps: float = field(default=1e-5, metadata=IF_SET)  # LayerNorm epsilon (BERT's is 1e-12)
    mlp_dim: int | None = field(default=None, metadata=IF_SET)  # MLPs' hidden width (None: 4 * hidden_dim)
    token_types: int = field(default=0, metadata=IF_SET)  # BERT's token types; type 0 is added everywhere

    @classmethod
    def from_hparams(cls, hparams, vocab_size: int, causal: bool) -> TransformerConfig:
        """The network's shape out of a module's hyperparameters (block_size, num_layers, ..., bias)."""
        fields = [f for f in dataclasses.fields(cls) if f.name not in ("vocab_size", "causal")]
        return cls(vocab_size=vocab_size, causal=causal, **{f.name: hparams.get(f.name, f.default) for f in fields})

    @classmethod
    def layout_defaults(cls) -> dict:
        """The layout options (those saved only when set) at this package's defaults."""
        return {f.name: f.default for f in dataclasses.fields(cls) if f.metadata == IF_SET}

    def __post_init__(self) -> None:
        if self.hidden_dim % self.num_heads:
            raise ValueError(f"hidden_dim {self.hidden_dim} is not divisible by num_heads {self.num_heads}")
        if self.activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {tuple(ACTIVATIONS)}, got {self.activation!r}")
        if self.norm not in NORMS:
            raise ValueError(f"norm must be one of {NORMS}, got {self.norm!r}")


ACTIVATIONS = {
    "gelu": F.gelu,
    "gelu_tanh": functools.partial(F.gelu, approximate="tanh"),  # Hendrycks & Gimpel's approximation (GPT-2)
    "relu": F.relu,
}
# pre: x + f(ln(x)) and a final LayerNorm (GPT-2, nanoGPT); post: ln(x + f(x)) with a LayerNorm on the embeddings
# and none at the end (the original Transformer's order, as BERT has it).
NORMS = ("pre", "post")


class KVCache:
    """Keys and values of one layer for the positions seen so far: (B, H, block_size, D) buffers."""

    def __init__(self, batch: int, cfg: TransformerConfig, device, dtype) -> None:
        shape = (batch, cfg.num_heads, cfg.block_size, cfg.hidden_dim // cfg.num_heads)
        self.k = torch.zeros(shape, device=device, dtype=dtype)
        self.v = torch.zeros(shape, device=device, dtype=dtype)
        self.length = 0

    def append(self, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Store (B, H, t, D) new keys/values; return all (B, H, length, D) so far."""
        end = self.length + k.size(2)
        self.k[:, :, self.length : end] = k
        self.v[:, :, self.length : end] = v
        self.length = end
        return self.k[:, :, :end], self.v[:, :, :end]


def attention(q, k, v, mask, dropout: float, is_causal: bool) -> torch.Tensor:
    """``F.scaled_dot_product_attention`` of (B, H, T, D) tensors; in float32 under CPU bf16 autocast.

    PyTorch's CPU flash-attention kernel is 3.4x slower in bf16 than in float32 at this package's head sizes
    (forward + backward, B=12, H=4, T=64, D=32: 7.9 ms against 2.4 ms, torch 2.14, AVX-512 BF16 host; see
    benchmarks/nanogpt_profile.py): mixed precision on the CPU keeps the matrix products in bf16 and attention in
    float32. CUDA kernels are fastest in bf16 and are left alone.
    """
    if q.device.type == "cpu" and torch.is_autocast_enabled("cpu"):
        with torch.autocast("cpu", enabled=False):
            y = F.scaled_dot_product_attention(
                q.float(), k.float(), v.float(), attn_mask=mask, dropout_p=dropout, is_causal=is_causal
            )
        return y.to(q.dtype)
    return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=dropout, is_causal=is_causal)


class SelfAttention(nn.Module):
    def __init__(self, cfg: TransformerConfig) -> None:
        super().__init__()
        self.qkv = nn.Linear(cfg.hidden_dim, 3 * cfg.hidden_dim, bias=cfg.bias)
        self.proj = nn.Linear(cfg.hidden_dim, cfg.hidden_dim, bias=cfg.bias)
        self.resid_drop = nn.Dropout(cfg.dropout)
        self.num_heads = cfg.num_heads
        self.dropout = cfg.dropout
        self.causal = cfg.causal

    def forward(
        self, x: torch.Tensor, cache: KVCache | None = None, key_mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        """``key_mask`` (B, T) bool, True at real tokens: padded positions are never attended to."""
        B, T, C = x.shape
        q, k, v = self.qkv(x).split(C, dim=2)  # 3 x (B, T, C)
        q, k, v = (t.view(B, T, self.num_heads, C // self.num_heads).transpose(1, 2) for t in (q, k, v))
        past = 0
        if cache is not None:
            past = cache.length
            k, v = cache.append(k, v)  # (B, H, past + T, D)
        mask, is_causal = None, self.causal and T > 1
        if is_causal and (past > 0 or key_mask is not None):
            # queries at positions past..past+T-1 see keys up to their own position
            mask = torch.ones(T, past + T, dtype=torch.bool, device=x.device).tril(diagonal=past)
            is_causal = False
        if key_mask is not None:
            keep = key_mask[:, None, None, :]  # (B, 1, 1, T)
            mask = keep if mask is None else mask & keep
        y = attention(q, k, v, mask, self.dropout if self.training else 0.0, is_causal)  # (B, H, T, D)
        return self.resid_drop(self.proj(y.transpose(1, 2).reshape(B, T, C)))


class MLP(nn.Module):
    def __init__(self, cfg: TransformerConfig) -> None:
        super().__init__()
        width = cfg.mlp_dim or 4 * cfg.hidden_dim
        self.fc = nn.Linear(cfg.hidden_dim, width, bias=cfg.bias)
        self.proj = nn.Linear(width, cfg.hidden_dim, bias=cfg.bias)
        self.drop = nn.Dropout(cfg.dropout)
        self.act = ACTIVATIONS[cfg.activation]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.drop(self.proj(self.act(self.fc(x))))


def layer_norm(cfg: TransformerConfig) -> nn.LayerNorm:
    return nn.LayerNorm(cfg.hidden_dim, eps=cfg.norm_eps, bias=cfg.bias)


class Block(nn.Module):
    """Pre-norm block: x + attn(ln1(x)), then x + mlp(ln2(x)); post-norm: ln1(x + attn(x)), then ln2(x + mlp(x))."""

    def __init__(self, cfg: TransformerConfig) -> None:
        super().__init__()
        self.ln1 = layer_norm(cfg)
        self.attn = SelfAttention(cfg)
        self.ln2 = layer_norm(cfg)
        self.mlp = MLP(cfg)
        self.post = cfg.norm == "post"

    def forward(self, x: torch.Tensor, cache: KVCache | None = None, key_mask: torch.Tensor | None = None):
        if self.post:
            x = self.ln1(x + self.attn(x, cache, key_mask))
            return self.ln2(x + self.mlp(x))
        x = x + self.attn(self.ln1(x), cache, key_mask)
        return x + self.mlp(self.ln2(x))


class Transformer(nn.Module):
    """Token + learned position (+ token-type) embeddings, the blocks, a final LayerNorm: ids (B, T) -> (B, T, C).

    With ``norm="post"`` the LayerNorm is on the embeddings (``ln_emb``) instead of after the last block."""

    def __init__(self, cfg: TransformerConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.tok_emb = nn.Embedding(cfg.vocab_size, cfg.hidden_dim)
        self.pos_emb = nn.Embedding(cfg.block_size, cfg.hidden_dim)
        if cfg.token_types:
            self.type_emb = nn.Embedding(cfg.token_types, cfg.hidden_dim)
        self.drop = nn.Dropout(cfg.dropout)
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.num_layers))
        if cfg.norm == "post":
            self.ln_emb = layer_norm(cfg)
        else:
            self.ln_f = layer_norm(cfg)

    def forward(
        self, idx: torch.Tensor, caches: list[KVCache] | None = None, key_mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        T = idx.size(1)
        start = caches[0].length if caches else 0
        if start + T > self.cfg.block_size:
            raise ValueError(f"sequence of {start + T} tokens exceeds block_size {self.cfg.block_size}")
        pos = torch.arange(start, start + T, device=idx.device)
        x = self.tok_emb(idx) + self.pos_emb(pos)  # (B, T, C)
        if self.cfg.token_types:
            x = x + self.type_emb.weight[0]  # every token is of type 0 (one segment)
        x = self.drop(self.ln_emb(x) if self.cfg.norm == "post" else x)
        for i, block in enumerate(self.blocks):
            x = block(x, caches[i] if caches else None, key_mask)
        return x if self.cfg.norm == "post" else self.ln_f(x)

    def new_caches(self, batch: int) -> list[KVCache]:
        w = self.tok_emb.weight
        return [KVCache(batch, self.cfg, w.device, w.dtype) for _ in self.blocks]


def init_weights(model: nn.Module, num_layers: int) -> None:
    """GPT-2 initialisation: N(0, 0.02) matrices, zero biases, residual projections / sqrt(2 * num_layers)."""
    for name, p in model.named_parameters():
        if p.dim() >= 2:
            std = 0.02 / math.sqrt(2 * num_layers) if name.endswith("proj.weight") else 0.02
            nn.init.normal_(p, mean=0.0, std=std)
        elif name.endswith("bias"):
            nn.init.zeros_(p)


def context_start(length: int, start: int, block_size: int) -> int:
    """Start of the context for a sequence of ``length`` tokens whose previous context began at ``start``."""
    if length - start > block_size:
        return length - block_size // 2
    return start


class GPTNet(nn.Module):
    """Decoder-only Transformer language model: ids (B, T) -> next-token logits (B, T, V)."""

    def __init__(self, cfg: TransformerConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.transformer = Transformer(cfg)
        self.head = nn.Linear(cfg.hidden_dim, cfg.vocab_size, bias=False)
        self.head.weight = self.transformer.tok_emb.weight  # weight tying (Press & Wolf 2017)
        init_weights(self, cfg.num_layers)

    def forward(self, idx: torch.Tensor, caches: list[KVCache] | None = None) -> torch.Tensor:
        return self.head(self.transformer(idx, caches))

    @torch.no_grad()
    def generate(
        self,
        idx: torch.Tensor,
        max_new_tokens: int,
        temperature: float = 1.0,
        top_k: int | None = None,
        top_p: float | None = None,
        generator: torch.Generator | None = None,
        use_cache: bool = True,
    ) -> torch.Tensor:
        """Append ``max_new_tokens`` sampled ids to (B, P) ``idx``; returns (B, P + max_new_tokens)."""
        block = self.cfg.block_size
        start, caches = max(0, idx.size(1) - block), None
        for _ in range(max_new_tokens):
            new_start = context_start(idx.size(1), start, block)
            if not use_cache:
                logits = self(idx[:, new_start:])
            elif caches is None or new_start != start:  # (re)fill the cache with the whole context
                caches = self.transformer.new_caches(idx.size(0))
                logits = self(idx[:, new_start:], caches)
            else:  # one new token at the next position
                logits = self(idx[:, -1:], caches)
            start = new_start
            idx = torch.cat([idx, sample_next(logits[:, -1], temperature, top_k, top_p, generator)], dim=1)
        return idx


FILL_ORDERS = ("confidence", "left_to_right", "random")


def check_fill_order(order: str) -> None:
    if order not in FILL_ORDERS:
        raise ValueError(f"fill_order must be one of {FILL_ORDERS}, got {order!r}")


def fill_scores(order: str, conf: torch.Tensor, pos: torch.Tensor, generator) -> torch.Tensor:
    """(B, m) scores of the masked positions ``pos``; the ``fill_per_step`` highest are filled next."""
    if order == "confidence":
        return conf
    if order == "left_to_right":
        return -pos.float()
    device = generator.device if generator is not None else conf.device
    return torch.rand(conf.shape, generator=generator, device=device).to(conf.device)


class BERTNet(nn.Module):
    """Bidirectional encoder and MLM head: ids (B, T) over V + 1 symbols (the last is [MASK]) -> (B, T, V).

    The [MASK] id is ``vocab_size``: the tokenizer's ids stay unchanged, and the head never predicts [MASK].
    """

    def __init__(self, cfg: TransformerConfig) -> None:
        super().__init__()
        self.vocab_size = cfg.vocab_size
        self.mask_id = cfg.vocab_size
        enc_cfg = TransformerConfig(**{**cfg.__dict__, "vocab_size": cfg.vocab_size + 1, "causal": False})
        self.cfg = enc_cfg
        self.transformer = Transformer(enc_cfg)
        self.dense = nn.Linear(cfg.hidden_dim, cfg.hidden_dim)
        self.ln = nn.LayerNorm(cfg.hidden_dim, eps=cfg.norm_eps)
        self.act = ACTIVATIONS[cfg.activation]
        self.out_bias = nn.Parameter(torch.zeros(cfg.vocab_size))
        init_weights(self, cfg.num_layers)

    def forward(self, idx: torch.Tensor, select: torch.Tensor | None = None) -> torch.Tensor:
        """(B, T, V) logits, or (M, V) at the M positions where ``select`` (B, T) is True: the MLM loss needs only
        the masked positions, and with a subword vocabulary the head dominates the cost of the others."""
        h = self.transformer(idx)  # (B, T, C)
        if select is not None:
            h = h[select]  # (M, C)
        h = self.ln(self.act(self.dense(h)))
        # Decoder tied to the input embeddings of the V real symbols (not [MASK]).
        return F.linear(h, self.transformer.tok_emb.weight[: self.vocab_size], self.out_bias)  # (..., V)

    @torch.no_grad()
    def generate(
        self,
        idx: torch.Tensor,
        max_new_tokens: int,
        temperature: float = 1.0,
        top_k: int | None = None,
        top_p: float | None = None,
        generator: torch.Generator | None = None,
        fill_per_step: int = 1,
        fill_order: str = "confidence",
    ) -> torch.Tensor:
        """Iterative mask filling: (B, P) ids -> (B, P + max_new_tokens).

        Masks are appended after the context; each forward pass samples every masked position and fills
        ``fill_per_step`` of them, until none is left: by ``fill_order`` ``confidence``, those whose sampled token
        is most probable (MaskGIT, Chang et al. 2022); ``left_to_right``, the leftmost (sequential generation,
        Wang & Cho 2019: a weak model filled by confidence writes its most frequent symbol everywhere first);
        ``random``, positions drawn uniformly. Longer texts are made window by window, each keeping up to half a
        block of context (or more when few tokens remain).
        """
        check_fill_order(fill_order)
        block, remaining = self.cfg.block_size, max_new_tokens
        while remaining > 0:
            chunk = min(remaining, block - min(idx.size(1), block // 2))
            ctx = min(idx.size(1), block - chunk)
            mask = torch.full((idx.size(0), chunk), self.mask_id, dtype=idx.dtype, device=idx.device)
            x = torch.cat([idx[:, idx.size(1) - ctx :], mask], dim=1)  # (B, T)
            filled = self._fill(x, ctx, temperature, top_k, top_p, generator, fill_per_step, fill_order)
            idx = torch.cat([idx, filled], 1)
            remaining -= chunk
        return idx

    def _fill(self, x, ctx, temperature, top_k, top_p, generator, fill_per_step, fill_order) -> torch.Tensor:
        """Fill the masks of (B, T) ``x`` after position ``ctx``; returns the (B, T - ctx) filled ids."""
        B = x.size(0)
        masked = x == self.mask_id
        masked[:, :ctx] = False  # a context token is never refilled
        while masked.any():
            m = int(masked[0].sum())  # every row has the same number of masks left
            pos = masked.nonzero()[:, 1].view(B, m)  # (B, m) masked positions, row by row
            logits = self(x)[masked]  # (B * m, V)
            ids, conf = sample_probs(logits, temperature, top_k, top_p, generator)
            pick = fill_scores(fill_order, conf.view(B, m), pos, generator).topk(min(fill_per_step, m), dim=1).indices
            where = pos.gather(1, pick)
            x = x.scatter(1, where, ids.view(B, m).gather(1, pick))
            masked = masked.scatter(1, where, False)
        return x[:, ctx:]


def mask_tokens(
    ids: torch.Tensor, vocab_size: int, mask_id: int, mask_prob: float = 0.15, generator=None
) -> tuple[torch.Tensor, torch.Tensor]:
    """BERT's corruption (Devlin et al. 2019, section 3.1 and appendix A.1) of (B, T) ids.

    Each sequence has ``max(1, round(mask_prob * T))`` positions selected uniformly (as BERT's
    ``create_pretraining_data.py``); a selected token becomes [MASK] with probability 0.8, a uniformly random
    symbol with 0.1, and stays with 0.1. Returns the corrupted inputs and the labels: the original id at the
    selected positions, -100 (ignored by ``F.cross_entropy``) elsewhere.
    """
    B, T = ids.shape
    device = generator.device if generator is not None else ids.device
    num = max(1, round(mask_prob * T))
    scores = torch.rand(B, T, generator=generator, device=device)
    chosen = scores.topk(num, dim=1).indices  # (B, num) a uniform random subset per row
    selected = torch.zeros(B, T, dtype=torch.bool, device=device).scatter_(1, chosen, True)
    action = torch.rand(B, T, generator=generator, device=device)
    random_ids = torch.randint(vocab_size, (B, T), generator=generator, device=device)
    selected, action, random_ids = selected.to(ids.device), action.to(ids.device), random_ids.to(ids.device)
    inputs = ids.masked_fill(selected & (action < 0.8), mask_id)
    swap = selected & (action >= 0.8) & (action < 0.9)
    inputs = torch.where(swap, random_ids, inputs)
    return inputs, ids.masked_fill(~selected, -100)
