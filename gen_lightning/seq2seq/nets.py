"""The Transformer encoder-decoder in plain PyTorch (Vaswani et al. 2017, "Attention Is All You Need").

Pre-norm layers (Xiong et al. 2020; as GPT-2 and the GPT blocks of ``gen_lightning/transformer/nets.py``, whose
causal ``SelfAttention``, ``KVCache`` and ``MLP`` the decoder reuses), a final LayerNorm on each side, token
embeddings scaled by sqrt(d_model) plus sinusoidal (section 3.5) or learned positions, optional sharing of the
source and target embeddings and tying of the output layer to the target embedding (section 3.4, Press & Wolf
2017). Padding: the encoder and the cross-attention never attend to padded source positions; the decoder's
self-attention is causal, and right-padding of the target then only affects positions the loss ignores.

Decoding state (``start``/``step``/``reorder``, the interface of ``decoding.py``): the encoder output is projected
to every layer's cross-attention keys/values once; the decoder's self-attention keys/values are cached per layer,
so a step costs one position. ``use_cache=False`` recomputes the whole prefix each step (the reference that the
cached path must equal).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from gen_lightning.transformer.nets import MLP, KVCache, SelfAttention, TransformerConfig, attention, init_weights


@dataclass
class Seq2SeqConfig:
    source_vocab_size: int
    target_vocab_size: int
    max_len: int = 256  # positions of either side, specials included
    num_layers: int = 3  # encoder layers
    num_decoder_layers: int = 3
    num_heads: int = 4
    hidden_dim: int = 256
    dropout: float = 0.1
    bias: bool = True
    positions: str = "sinusoidal"  # or "learned"
    share_embeddings: bool = False  # one embedding for source and target (needs one joint vocabulary)
    tie_output: bool = True  # output layer = target embedding matrix

    def __post_init__(self) -> None:
        if self.positions not in ("sinusoidal", "learned"):
            raise ValueError(f"positions must be sinusoidal or learned, got {self.positions!r}")
        if self.share_embeddings and self.source_vocab_size != self.target_vocab_size:
            raise ValueError(
                "share_embeddings needs one joint vocabulary for source and target (data.joint_vocab=true), got "
                f"{self.source_vocab_size} and {self.target_vocab_size} symbols"
            )

    def blocks(self, causal: bool) -> TransformerConfig:
        return TransformerConfig(
            vocab_size=self.target_vocab_size,
            block_size=self.max_len,
            num_layers=self.num_decoder_layers,
            num_heads=self.num_heads,
            hidden_dim=self.hidden_dim,
            dropout=self.dropout,
            bias=self.bias,
            causal=causal,
        )


def sinusoids(length: int, dim: int) -> torch.Tensor:
    """(length, dim) PE(pos, 2i) = sin(pos / 10000^(2i/d)), PE(pos, 2i+1) = cos(...) (section 3.5)."""
    pos = torch.arange(length, dtype=torch.float32)[:, None]
    freq = torch.exp(torch.arange(0, dim, 2, dtype=torch.float32) * (-math.log(10000.0) / dim))
    pe = torch.zeros(length, dim)
    pe[:, 0::2], pe[:, 1::2] = torch.sin(pos * freq), torch.cos(pos * freq)
    return pe


class Embedding(nn.Module):
    """ids (B, T) starting at position ``start`` -> (B, T, C): sqrt(C) * token embedding + position."""

    def __init__(self, tokens: nn.Embedding, cfg: Seq2SeqConfig) -> None:
        super().__init__()
        self.tokens = tokens
        self.scale = math.sqrt(cfg.hidden_dim)
        if cfg.positions == "learned":
            self.learned = nn.Embedding(cfg.max_len, cfg.hidden_dim)
        else:
            self.register_buffer("table", sinusoids(cfg.max_len, cfg.hidden_dim), persistent=False)
        self.drop = nn.Dropout(cfg.dropout)
        self.max_len = cfg.max_len

    def forward(self, ids: torch.Tensor, start: int = 0) -> torch.Tensor:
        if start + ids.size(1) > self.max_len:
            raise ValueError(f"a sequence of {start + ids.size(1)} tokens exceeds max_len {self.max_len}")
        pos = torch.arange(start, start + ids.size(1), device=ids.device)
        table = self.learned(pos) if hasattr(self, "learned") else self.table[pos]
        return self.drop(self.tokens(ids) * self.scale + table)


class Attention(nn.Module):
    """Multi-head attention of queries (B, T, C) over keys/values (B, S, C) with a key padding mask (B, S)."""

    def __init__(self, cfg: TransformerConfig) -> None:
        super().__init__()
        self.q = nn.Linear(cfg.hidden_dim, cfg.hidden_dim, bias=cfg.bias)
        self.kv = nn.Linear(cfg.hidden_dim, 2 * cfg.hidden_dim, bias=cfg.bias)
        self.proj = nn.Linear(cfg.hidden_dim, cfg.hidden_dim, bias=cfg.bias)
        self.resid_drop = nn.Dropout(cfg.dropout)
        self.num_heads = cfg.num_heads
        self.dropout = cfg.dropout

    def _heads(self, x: torch.Tensor) -> torch.Tensor:
        B, T, C = x.shape
        return x.view(B, T, self.num_heads, C // self.num_heads).transpose(1, 2)  # (B, H, T, D)

    def keys_values(self, memory: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, S, C) -> keys and values (B, H, S, D): computed once per source for the whole decoding."""
        k, v = self.kv(memory).chunk(2, dim=-1)
        return self._heads(k), self._heads(v)

    def forward(self, x: torch.Tensor, kv: tuple[torch.Tensor, torch.Tensor], key_mask: torch.Tensor):
        B, T, C = x.shape
        mask = key_mask[:, None, None, :]  # (B, 1, 1, S): True where a key is a real token
        drop = self.dropout if self.training else 0.0
        y = attention(self._heads(self.q(x)), *kv, mask, drop, is_causal=False)  # float32 under CPU bf16 autocast
        return self.resid_drop(self.proj(y.transpose(1, 2).reshape(B, T, C)))  # (B, T, C)


class EncoderLayer(nn.Module):
    def __init__(self, cfg: TransformerConfig) -> None:
        super().__init__()
        self.ln1, self.attn = nn.LayerNorm(cfg.hidden_dim, bias=cfg.bias), Attention(cfg)
        self.ln2, self.mlp = nn.LayerNorm(cfg.hidden_dim, bias=cfg.bias), MLP(cfg)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        h = self.ln1(x)
        x = x + self.attn(h, self.attn.keys_values(h), mask)
        return x + self.mlp(self.ln2(x))


class DecoderLayer(nn.Module):
    """Causal self-attention (GPT's, with its KV cache), cross-attention to the source, MLP; all pre-norm."""

    def __init__(self, cfg: TransformerConfig) -> None:
        super().__init__()
        self.ln1, self.self_attn = nn.LayerNorm(cfg.hidden_dim, bias=cfg.bias), SelfAttention(cfg)
        self.ln2, self.cross = nn.LayerNorm(cfg.hidden_dim, bias=cfg.bias), Attention(cfg)
        self.ln3, self.mlp = nn.LayerNorm(cfg.hidden_dim, bias=cfg.bias), MLP(cfg)

    def forward(self, y, kv, source_mask, cache: KVCache | None = None) -> torch.Tensor:
        y = y + self.self_attn(self.ln1(y), cache)
        y = y + self.cross(self.ln2(y), kv, source_mask)
        return y + self.mlp(self.ln3(y))


@dataclass
class DecodeState:
    """What decoding carries between steps, every tensor with the hypotheses on dim 0."""

    cross_kv: list[tuple[torch.Tensor, torch.Tensor]]  # per layer, (N, H, S, D) each
    source_mask: torch.Tensor  # (N, S)
    caches: list[KVCache] | None  # per layer self-attention keys/values; None: recompute the prefix


class TransformerSeq2SeqNet(nn.Module):
    """source ids (B, S) + mask, target inputs (B, T) -> next-token logits (B, T, V)."""

    def __init__(self, cfg: Seq2SeqConfig) -> None:
        super().__init__()
        self.cfg = cfg
        enc_cfg, dec_cfg = cfg.blocks(causal=False), cfg.blocks(causal=True)
        target_tokens = nn.Embedding(cfg.target_vocab_size, cfg.hidden_dim)
        source_tokens = target_tokens if cfg.share_embeddings else nn.Embedding(cfg.source_vocab_size, cfg.hidden_dim)
        self.source_embed, self.target_embed = Embedding(source_tokens, cfg), Embedding(target_tokens, cfg)
        self.encoder = nn.ModuleList(EncoderLayer(enc_cfg) for _ in range(cfg.num_layers))
        self.decoder = nn.ModuleList(DecoderLayer(dec_cfg) for _ in range(cfg.num_decoder_layers))
        self.ln_enc = nn.LayerNorm(cfg.hidden_dim, bias=cfg.bias)
        self.ln_dec = nn.LayerNorm(cfg.hidden_dim, bias=cfg.bias)
        self.head = nn.Linear(cfg.hidden_dim, cfg.target_vocab_size, bias=False)
        init_weights(self, cfg.num_layers + cfg.num_decoder_layers)
        for emb in {source_tokens, target_tokens}:  # unit-variance inputs after the sqrt(C) scale
            nn.init.normal_(emb.weight, std=cfg.hidden_dim**-0.5)
        if cfg.tie_output:
            self.head.weight = target_tokens.weight

    def encode(self, source: torch.Tensor, source_mask: torch.Tensor) -> torch.Tensor:
        """(B, S) ids and (B, S) mask -> (B, S, C) memory."""
        x = self.source_embed(source)
        for layer in self.encoder:
            x = layer(x, source_mask)
        return self.ln_enc(x)

    def decode(self, target, state: DecodeState, start: int = 0) -> torch.Tensor:
        """(N, T) target ids at positions start.. -> (N, T, C) final decoder states (before the output layer)."""
        y = self.target_embed(target, start)
        for i, layer in enumerate(self.decoder):
            y = layer(y, state.cross_kv[i], state.source_mask, state.caches[i] if state.caches else None)
        return self.ln_dec(y)

    def forward(self, source, source_mask, target) -> torch.Tensor:
        """(B, T) target inputs -> (B, T, V) next-token logits."""
        return self.head(self.decode(target, self.start(source, source_mask, use_cache=False)))

    # ---- the decoding interface (decoding.py) ----------------------------------------------------------
    def start(self, source, source_mask, use_cache: bool = True) -> DecodeState:
        memory = self.encode(source, source_mask)
        cross_kv = [layer.cross.keys_values(memory) for layer in self.decoder]
        return DecodeState(cross_kv, source_mask, [] if use_cache else None)

    def step(self, tokens: torch.Tensor, state: DecodeState) -> tuple[torch.Tensor, DecodeState]:
        """(N, t) target tokens so far -> (N, V) logits of token t + 1."""
        if state.caches is None:  # the whole prefix again; only its last position reaches the output layer
            return self.head(self.decode(tokens, state)[:, -1]), state
        if not state.caches:  # first step: allocate the per-layer caches
            w = self.head.weight
            cfg = self.cfg.blocks(causal=True)
            state.caches.extend(KVCache(tokens.size(0), cfg, w.device, w.dtype) for _ in self.decoder)
        past = state.caches[0].length
        return self.head(self.decode(tokens[:, past:], state, start=past)[:, -1]), state

    def reorder(self, state: DecodeState, index: torch.Tensor) -> DecodeState:
        """Keep hypotheses ``index`` (N',): cross keys/values, source mask and the self-attention caches."""
        cross_kv = [(k.index_select(0, index), v.index_select(0, index)) for k, v in state.cross_kv]
        caches = state.caches
        for cache in caches or []:
            if index.numel() == cache.k.size(0):  # beams: reorder in place, only the positions filled so far
                filled = slice(0, cache.length)
                cache.k[:, :, filled] = cache.k[:, :, filled].index_select(0, index)
                cache.v[:, :, filled] = cache.v[:, :, filled].index_select(0, index)
            else:
                cache.k, cache.v = cache.k.index_select(0, index), cache.v.index_select(0, index)
        return DecodeState(cross_kv, state.source_mask.index_select(0, index), caches)
