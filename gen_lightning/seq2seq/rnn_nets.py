"""The attentive RNN encoder-decoder in plain PyTorch (GRU or LSTM).

Encoder: a bidirectional recurrent network (Bahdanau et al. 2015, "Neural Machine Translation by Jointly Learning
to Align and Translate"), each direction ``hidden_dim / 2`` wide, so an annotation h_j is ``hidden_dim`` wide; the
decoder's initial state is tanh(W [h_fwd_last; h_bwd_first]) per layer (Bahdanau's s_0 = tanh(W_s h_1_bwd), with
both directions). Two attention mechanisms:

- ``bahdanau``: additive scores e_tj = v^T tanh(W_s s_{t-1} + U_h h_j) (their eq. 6) from the previous decoder
  state; the context c_t is fed to the recurrent cell with the previous word (their eq. 4);
- ``luong``: "general" scores e_tj = s_t^T W_a h_j (Luong et al. 2015, "Effective Approaches to Attention-based
  Neural Machine Translation", eq. 8) from the current state, with input feeding (their section 3.3).

Both read out through the attentional vector h~_t = tanh(W_c [c_t; s_t]) (Luong eq. 5) and a linear layer (tied to
the target embedding when ``tie_output``). Padded source positions get no attention; the encoder runs on packed
sequences, so padding never enters a recurrent state. The decoding interface (``start``/``step``/``reorder``) is
the Transformer's: one step costs one cell update.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

CELLS = {"gru": nn.GRU, "lstm": nn.LSTM}
ATTENTIONS = ("bahdanau", "luong")


@dataclass
class RNNState:
    """Decoding state, hypotheses on the batch dim: memory (N, S, H), keys (N, S, H), mask (N, S), the cell's
    state ((L, N, H), or a pair for LSTM) and the last attentional vector (N, H) (Luong) or context (Bahdanau)."""

    memory: torch.Tensor
    keys: torch.Tensor
    mask: torch.Tensor
    cell: torch.Tensor | tuple[torch.Tensor, torch.Tensor]
    feed: torch.Tensor


@dataclass
class RNNSeq2SeqConfig:
    source_vocab_size: int
    target_vocab_size: int
    cell: str = "gru"  # or "lstm"
    attention: str = "bahdanau"  # or "luong"
    hidden_dim: int = 256  # embeddings, decoder state and annotations (each encoder direction hidden_dim / 2)
    num_layers: int = 1  # stacked recurrent layers on each side
    dropout: float = 0.1  # embeddings, between layers, before the output layer
    share_embeddings: bool = False  # one embedding for source and target (needs one joint vocabulary)
    tie_output: bool = True  # output layer = target embedding matrix

    def __post_init__(self) -> None:
        if self.cell not in CELLS:
            raise ValueError(f"cell must be one of {sorted(CELLS)}, got {self.cell!r}")
        if self.attention not in ATTENTIONS:
            raise ValueError(f"attention must be one of {ATTENTIONS}, got {self.attention!r}")
        if self.hidden_dim % 2:
            raise ValueError(
                f"hidden_dim must be even (two encoder directions of hidden_dim / 2), got {self.hidden_dim}"
            )
        if self.share_embeddings and self.source_vocab_size != self.target_vocab_size:
            raise ValueError("share_embeddings needs one joint vocabulary for source and target (data.joint_vocab)")


class RNNSeq2SeqNet(nn.Module):
    def __init__(self, cfg: RNNSeq2SeqConfig) -> None:
        super().__init__()
        H, L, cell = cfg.hidden_dim, cfg.num_layers, CELLS[cfg.cell]
        self.cell_type, self.attention, self.num_layers = cfg.cell, cfg.attention, L
        self.target_embed = nn.Embedding(cfg.target_vocab_size, H)
        self.source_embed = self.target_embed if cfg.share_embeddings else nn.Embedding(cfg.source_vocab_size, H)
        between = cfg.dropout if L > 1 else 0.0
        self.encoder = cell(H, H // 2, L, batch_first=True, bidirectional=True, dropout=between)
        self.bridge = nn.Linear(H, H)  # s_0 from the last states of both directions, per layer
        self.decoder = cell(2 * H, H, L, batch_first=True, dropout=between)
        self.key = nn.Linear(H, H, bias=False)  # U_h (bahdanau) or W_a (luong), applied once per source
        if cfg.attention == "bahdanau":
            self.query = nn.Linear(H, H)
            self.v = nn.Linear(H, 1, bias=False)
        self.combine = nn.Linear(2 * H, H)  # W_c of h~_t = tanh(W_c [c_t; s_t])
        self.head = nn.Linear(H, cfg.target_vocab_size)
        if cfg.tie_output:
            self.head.weight = self.target_embed.weight
        self.drop = nn.Dropout(cfg.dropout)

    # ---- encoder -------------------------------------------------------------------------------------
    def _initial(self, final: torch.Tensor) -> torch.Tensor:
        """(2L, B, H/2) final states of both directions -> (L, B, H) decoder states."""
        L, B = self.num_layers, final.size(1)
        both = final.view(L, 2, B, -1).transpose(1, 2).reshape(L, B, -1)  # [fwd; bwd] per layer
        return torch.tanh(self.bridge(both))

    def start(self, source: torch.Tensor, source_mask: torch.Tensor, use_cache: bool = True) -> RNNState:
        lengths = source_mask.sum(1).cpu()
        packed = pack_padded_sequence(self.drop(self.source_embed(source)), lengths, True, enforce_sorted=False)
        out, final = self.encoder(packed)
        memory, _ = pad_packed_sequence(out, batch_first=True, total_length=source.size(1))  # (B, S, H)
        if self.cell_type == "lstm":
            cell = (self._initial(final[0]), self._initial(final[1]))
        else:
            cell = self._initial(final)
        feed = memory.new_zeros(memory.size(0), memory.size(2))
        return RNNState(memory, self.key(memory), source_mask, cell, feed)

    # ---- one decoder step ----------------------------------------------------------------------------
    def _attend(self, query: torch.Tensor, state: RNNState) -> torch.Tensor:
        """(N, H) query -> (N, H) context sum_j a_tj h_j over the real source positions."""
        if self.attention == "bahdanau":
            scores = self.v(torch.tanh(self.query(query)[:, None] + state.keys))[..., 0]  # (N, S)
        else:
            scores = torch.einsum("nh,nsh->ns", query, state.keys)
        weights = scores.masked_fill(~state.mask, float("-inf")).softmax(dim=-1)
        return torch.einsum("ns,nsh->nh", weights, state.memory)

    def _top(self, cell) -> torch.Tensor:
        return (cell[0] if isinstance(cell, tuple) else cell)[-1]  # (N, H) last layer's state

    def step_embedded(self, emb: torch.Tensor, state: RNNState) -> tuple[torch.Tensor, RNNState]:
        """(N, H) embedded previous token -> (N, H) attentional vector h~_t and the new state."""
        if self.attention == "bahdanau":
            context = self._attend(self._top(state.cell), state)  # from s_{t-1}
            out, cell = self.decoder(torch.cat([emb, context], -1)[:, None], state.cell)
            s = out[:, 0]
        else:
            out, cell = self.decoder(torch.cat([emb, state.feed], -1)[:, None], state.cell)  # input feeding
            s = out[:, 0]
            context = self._attend(s, state)  # from s_t
        attentional = torch.tanh(self.combine(torch.cat([context, s], -1)))
        feed = attentional if self.attention == "luong" else context
        return attentional, RNNState(state.memory, state.keys, state.mask, cell, feed)

    def step(self, tokens: torch.Tensor, state: RNNState) -> tuple[torch.Tensor, RNNState]:
        """(N, t) target tokens so far -> (N, V) logits of the next one (only the last token is read)."""
        h, state = self.step_embedded(self.drop(self.target_embed(tokens[:, -1])), state)
        return self.head(self.drop(h)), state

    def forward(self, source, source_mask, target) -> torch.Tensor:
        """Teacher forcing: (B, T) target inputs -> (B, T, V) logits, one cell update per position."""
        state = self.start(source, source_mask)
        emb = self.drop(self.target_embed(target))  # (B, T, H)
        outputs = []
        for t in range(target.size(1)):
            h, state = self.step_embedded(emb[:, t], state)
            outputs.append(h)
        return self.head(self.drop(torch.stack(outputs, 1)))

    def reorder(self, state: RNNState, index: torch.Tensor) -> RNNState:
        cell = state.cell
        if isinstance(cell, tuple):
            cell = tuple(c.index_select(1, index) for c in cell)
        else:
            cell = cell.index_select(1, index)
        pick = [t.index_select(0, index) for t in (state.memory, state.keys, state.mask, state.feed)]
        return RNNState(pick[0], pick[1], pick[2], cell, pick[3])
