"""Decoding for encoder-decoder networks: greedy, sampling and beam search.

A network offers ``start(source, source_mask, use_cache) -> state``, ``step(tokens, state) -> (logits, state)``
(the next-token logits (N, V) given the (N, t) tokens so far) and ``reorder(state, index)`` (keep hypotheses
``index``). Every hypothesis starts with ``bos``; the padding and bos symbols are never generated; a sentence is
forced to end with ``eos`` once it reaches its length limit ``max_len_a * source_length + max_len_b`` tokens
(fairseq's rule, capped by the network's positions). Results are the generated ids without bos/eos.

Beam search (Sutskever et al. 2014; the bookkeeping of fairseq's ``SequenceGenerator``): each step takes the
best ``2 * beam`` extensions of the live hypotheses; those ending in eos among the first ``beam`` become finished
hypotheses scored by sum(log p) / length ** length_penalty (length counts eos; 0 compares raw log-probabilities,
1 per-token means); the best ``beam`` others live on. A sentence stops when it has ``beam`` finished hypotheses
and no live one can still beat the worst of them (log-probabilities only fall as a hypothesis grows, which bounds
its best normalised score), so with a beam as wide as the search space the result is the exact optimum
(tests/test_seq2seq.py checks this against an exhaustive search).
"""

from __future__ import annotations

import torch

from gen_lightning.nn.sampling import sample_next


def length_limits(source_mask: torch.Tensor, max_len_a: float, max_len_b: int, cap: int) -> torch.Tensor:
    """(B,) most generated tokens (eos included) of each sentence: a * source length + b, within [1, cap]."""
    lengths = source_mask.sum(1).float()
    return (max_len_a * lengths + max_len_b).long().clamp(1, cap)


def _mask_specials(logp: torch.Tensor, limits: torch.Tensor, step: int, banned: tuple[int, ...], eos: int):
    """Ban ``banned`` (pad, bos) everywhere, and everything but eos where a sentence is at its limit (in place).

    Eos is forced at the limit even when banned (a benchmark bans it to generate exactly ``limit - 1`` tokens)."""
    at_limit = limits <= step + 1  # (N,)
    eos_scores = logp[at_limit, eos]
    logp[:, list(banned)] = float("-inf")
    if at_limit.any():
        logp[at_limit] = float("-inf")
        logp[at_limit, eos] = eos_scores
    return logp


def block_repeats(logp: torch.Tensor, tokens: torch.Tensor, n: int) -> torch.Tensor:
    """Ban every token that would repeat an n-gram a hypothesis already holds (in place; fairseq's and Hugging
    Face's ``no_repeat_ngram_size``, Paulus et al. 2018's trigram blocking). ``tokens`` (N, t) starts with bos."""
    if n <= 0 or tokens.size(1) < n:
        return logp
    for row, ids in enumerate(tokens[:, 1:].tolist()):
        prefix = ids[len(ids) - n + 1 :] if n > 1 else []
        banned = {ids[i + n - 1] for i in range(len(ids) - n + 1) if ids[i : i + n - 1] == prefix}
        if banned:
            logp[row, list(banned)] = float("-inf")
    return logp


@torch.no_grad()
def greedy(net, source, source_mask, *, bos, eos, banned, limits, use_cache=True, temperature=0.0, top_k=None,
           top_p=None, generator=None, no_repeat_ngram=0) -> list[list[int]]:  # fmt: skip
    """Greedy (temperature 0) or sampled decoding: ids of each sentence, without bos/eos."""
    B = source.size(0)
    state = net.start(source, source_mask, use_cache=use_cache)
    tokens = torch.full((B, 1), bos, dtype=torch.long, device=source.device)
    done = torch.zeros(B, dtype=torch.bool, device=source.device)
    for step in range(int(limits.max())):
        logits, state = net.step(tokens, state)
        logp = _mask_specials(logits.float().log_softmax(-1), limits, step, banned, eos)
        logp = block_repeats(logp, tokens, no_repeat_ngram)
        if temperature == 0:
            nxt = logp.argmax(-1, keepdim=True)
        else:
            nxt = sample_next(logp, temperature, top_k, top_p, generator)
        nxt = nxt.masked_fill(done[:, None], eos)
        tokens = torch.cat([tokens, nxt], 1)
        done |= nxt[:, 0] == eos
        if done.all():
            break
    return [_strip(row, eos) for row in tokens[:, 1:].tolist()]


def _strip(ids: list[int], eos: int) -> list[int]:
    return ids[: ids.index(eos)] if eos in ids else ids


def _bound(score: float, length: int, limit: int, length_penalty: float) -> float:
    """The best normalised score a live hypothesis of raw ``score`` at ``length`` tokens can still reach."""
    best_length = limit if length_penalty > 0 else length + 1
    return score / best_length**length_penalty


@torch.no_grad()
def beam_search(net, source, source_mask, *, beam, bos, eos, banned, limits, length_penalty=1.0,
                use_cache=True, no_repeat_ngram=0) -> list[list[int]]:  # fmt: skip
    """The best finished hypothesis of each sentence (ids without bos/eos)."""
    B, K, device = source.size(0), beam, source.device
    expand = torch.arange(B, device=device).repeat_interleave(K)
    state = net.reorder(net.start(source, source_mask, use_cache=use_cache), expand)
    limits_k = limits[expand]
    tokens = torch.full((B * K, 1), bos, dtype=torch.long, device=device)
    scores = torch.zeros(B, K, device=device)
    scores[:, 1:] = float("-inf")  # at first all K hypotheses are the same: expand only one
    finished: list[list[tuple[float, list[int]]]] = [[] for _ in range(B)]
    done = [False] * B
    for step in range(int(limits.max())):
        logits, state = net.step(tokens, state)
        logp = _mask_specials(logits.float().log_softmax(-1), limits_k, step, banned, eos)  # (BK, V)
        logp = block_repeats(logp, tokens, no_repeat_ngram)
        V = logp.size(-1)
        cand = (scores.view(-1, 1) + logp).view(B, K * V)
        top, idx = cand.topk(min(2 * K, K * V), dim=1)  # (B, 2K)
        source_beam, token = idx // V, idx % V
        _finish(finished, done, top, source_beam, token, tokens.view(B, K, -1), eos, K, step, length_penalty)
        alive = top.masked_fill(token == eos, float("-inf"))  # an eos ends a hypothesis: it lives on no more
        live = alive.topk(K, dim=1).indices  # (B, K) of the 2K
        scores = alive.gather(1, live)
        rows = (source_beam.gather(1, live) + torch.arange(B, device=device)[:, None] * K).view(-1)
        tokens = torch.cat([tokens.index_select(0, rows), token.gather(1, live).view(-1, 1)], 1)
        state = net.reorder(state, rows)
        for b in range(B):
            done[b] = done[b] or _settled(finished[b], scores[b], K, step, int(limits[b]), length_penalty)
        if all(done):
            break
    return [max(f, key=lambda x: x[0])[1] if f else [] for f in finished]


def _finish(finished, done, top, source_beam, token, tokens, eos, K, step, length_penalty) -> None:
    """Record the hypotheses that end in eos among each sentence's first K candidates."""
    is_eos = (token == eos) & torch.isfinite(top)
    is_eos[:, K:] = False
    for b, c in is_eos.nonzero().tolist():
        if done[b]:
            continue
        ids = tokens[b, source_beam[b, c], 1:].tolist()
        finished[b].append((top[b, c].item() / (step + 1) ** length_penalty, ids))


def _settled(finished, live_scores, K, step, limit, length_penalty) -> bool:
    """K finished hypotheses, none of which a live one can still beat (or nothing is left alive)."""
    best_live = live_scores.max().item()
    if best_live == float("-inf"):
        return True
    if len(finished) < K:
        return False
    worst_kept = sorted(s for s, _ in finished)[-K]
    return _bound(best_live, step + 1, limit, length_penalty) <= worst_kept
