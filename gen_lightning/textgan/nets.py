"""Networks of the text GANs in plain PyTorch: the CNN discriminator over token sequences and the sequence helpers.

The generator is the LSTM language model of gen_lightning/rnn/nets.py (``RNNNet``), so an LSTM trained by maximum
likelihood (``model=lstm``) can start a GAN through ``init_from=``.

Discriminator: SeqGAN's (Yu et al. 2017, section "Discriminative Model", after Kim 2014 and Zhang & LeCun 2015):
token embeddings, convolutions of several widths over the whole embedding, ReLU, max-over-time pooling, a highway
layer (Srivastava et al. 2015), dropout, one logit. It reads ids ``(B, T)`` or distributions over the vocabulary
``(B, T, V)`` (one-hot real text, Gumbel-softmax relaxed fakes: RelGAN, Nie et al. 2019). ``num_rep`` embeddings
(RelGAN's "multiple representations", 64 in the paper) each give a logit: ``(B, num_rep)``.

Random numbers for a global batch (``RowNoise``): under DDP rank r of w holds rows r, r + w, r + 2w, ... of the
batch that one process would hold (gen_lightning/data/loaders.py ``EpochSampler`` strides the shuffled order: a
rank's batch i is one process's batch i of w times the size, rows ``j * w + r``). A draw is named by a key and
seeded from the key alone; it draws the uniforms of the whole global batch and keeps this rank's rows, so every
process draws for a sentence what one process would draw for it, however many draws came before.
"""

from __future__ import annotations

import dataclasses
import hashlib

import torch
import torch.nn.functional as F
from torch import nn

from gen_lightning.nn.sampling import draw_from


class Highway(nn.Module):
    """y = t * relu(W_h x) + (1 - t) * x, t = sigmoid(W_t x) (Srivastava et al. 2015, eq. 3)."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.h, self.t = nn.Linear(dim, dim), nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate = torch.sigmoid(self.t(x))
        return gate * F.relu(self.h(x)) + (1.0 - gate) * x


class CNNDiscriminator(nn.Module):
    """ids (B, T) or distributions (B, T, V) -> logits (B, num_rep) that the sequence is real."""

    def __init__(
        self,
        vocab_size: int,
        embed_dim: int,
        filter_widths: list[int],
        num_filters: list[int],
        dropout: float,
        num_rep: int = 1,
    ) -> None:
        super().__init__()
        if len(filter_widths) != len(num_filters) or not filter_widths:
            raise ValueError(
                f"d_filter_widths and d_num_filters need equal non-zero lengths: {filter_widths}, {num_filters}"
            )
        self.embed_dim, self.num_rep = embed_dim, num_rep
        self.embed = nn.Linear(vocab_size, embed_dim * num_rep, bias=False)  # a one-hot row selects an embedding
        nn.init.normal_(self.embed.weight, std=1.0)  # nn.Embedding's initialisation
        self.convs = nn.ModuleList(nn.Conv2d(1, n, (w, embed_dim)) for w, n in zip(filter_widths, num_filters))
        features = sum(num_filters)
        self.highway = Highway(features)
        self.dropout, self.features = dropout, features
        self.out = nn.Linear(features, 1)
        self.min_length = max(filter_widths)

    def forward(self, x: torch.Tensor, noise: RowNoise | None = None) -> torch.Tensor:
        """Dropout in training mode keeps a feature where its uniform from ``noise`` (the global RNG without)
        is >= ``dropout``, as ``nn.Dropout``: one uniform per (row, representation, feature)."""
        if x.dim() == 2:  # ids: an embedding lookup (the one-hot product without the (B, T, V) tensor)
            e = F.embedding(x, self.embed.weight.t())  # (B, T, R * E)
        else:
            e = self.embed(x)  # (B, T, V) -> (B, T, R * E)
        b, t = e.shape[:2]
        if t < self.min_length:
            raise ValueError(f"sequences of {t} tokens are shorter than the widest filter ({self.min_length})")
        e = e.view(b, t, self.num_rep, self.embed_dim).transpose(1, 2).reshape(b * self.num_rep, 1, t, self.embed_dim)
        pooled = [F.relu(conv(e)).squeeze(3).amax(dim=2) for conv in self.convs]  # each (B * R, n)
        h = self.highway(torch.cat(pooled, dim=1))  # (B * R, F)
        if self.training and self.dropout > 0:
            u = (noise or RowNoise()).rand(b, self.num_rep, self.features, device=h.device)  # (B, R, F)
            h = h * (u.view(b * self.num_rep, -1) >= self.dropout).to(h.dtype) / (1.0 - self.dropout)
        return self.out(h).view(b, self.num_rep)


@dataclasses.dataclass(frozen=True)
class RowNoise:
    """Uniforms for this process's rows of a global batch (see the file docstring), named by ``key``; ``seed=None``
    draws from torch's global RNG instead (one process, outside training: tests, diagnostics)."""

    seed: int | None = None
    rank: int = 0
    world: int = 1
    key: tuple = ()

    def at(self, *key) -> RowNoise:
        """The noise of a sub-key: each draw of a step gets its own (e.g. ``noise.at("rollout", t, k)``)."""
        return dataclasses.replace(self, key=self.key + key)

    def rand(self, rows: int, *shape: int, blocks: int = 1, device=None) -> torch.Tensor:
        """(blocks * rows, *shape) uniforms in [0, 1): ``blocks`` stacked copies of the batch's layout (the
        roll-outs' (M * B) rows), each block this process's ``rows`` of the global ``world * rows``."""
        if self.seed is None:
            return torch.rand(blocks * rows, *shape, device=device)
        digest = hashlib.blake2b(repr((self.seed, *self.key)).encode(), digest_size=8).digest()
        g = torch.Generator().manual_seed(int.from_bytes(digest, "little") >> 1)
        u = torch.rand(blocks, self.world * rows, *shape, generator=g)[:, self.rank :: self.world]
        return u.reshape(blocks * rows, *shape).contiguous().to(device)


def draw_tokens(logits: torch.Tensor, uniforms: torch.Tensor | None = None) -> torch.Tensor:
    """One id per row of (N, V) logits, (N, 1), by the inverse CDF of the (N, 1) ``uniforms`` (torch's global RNG
    without); the roll-outs draw T^2 / 2 times a step."""
    return draw_from(logits.float().softmax(-1), uniforms=uniforms)


def mask_after_eos(ids: torch.Tensor, eos_id: int, pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Generated (B, T) ids with every token after the first ``<eos>`` set to ``<pad>``, as real sentences are
    padded, and the (B, T) bool mask of the tokens kept (the first ``<eos>`` included): the generator's actions."""
    ended_before = (ids == eos_id).long().cumsum(dim=1) - (ids == eos_id).long()  # <eos> strictly before t
    kept = ended_before == 0
    return ids.masked_fill(~kept, pad_id), kept


def real_sequences(targets: torch.Tensor, pad_id: int) -> torch.Tensor:
    """A sentence batch's targets (B, T) (``w_1 .. w_n <eos>``, -100 at padding) as ids padded with ``<pad>``."""
    return targets.masked_fill(targets < 0, pad_id)
