"""Sentence BLEU of many hypotheses against one fixed reference set, and Self-BLEU, as the text-GAN papers compute
them, but in seconds.

The literature's number (Texygen, Zhu et al. SIGIR 2018; SeqGAN, LeakGAN, RelGAN, Caccia et al. 2020) is NLTK's
``sentence_bleu(references, hypothesis, weights=(1/n,) * n, smoothing_function=SmoothingFunction().method1)``,
averaged over the hypotheses, with every test sentence as a reference of every hypothesis. NLTK recounts the
n-grams of all references for each hypothesis (hours for 2,000 x 10,000). The clipped count of an n-gram
(Papineni et al. 2002, eq. 1: ``min(count in hypothesis, max count in any one reference)``) depends on the
reference set only through that maximum, so it is counted once per reference set (``References``); a hypothesis
then costs only its own n-grams. Everything else follows NLTK's code line by line, so the values are NLTK's
(tests/test_text_bleu.py compares them on samples):

- modified precision ``p_n = clipped / max(1, hypothesis n-grams)``;
- method 1 smoothing (Chen & Cherry 2014): a zero numerator becomes ``0.1 / denominator``;
- a hypothesis with no matching unigram scores 0;
- brevity penalty ``exp(1 - r / c)`` for ``c <= r`` (1 above, 0 for an empty hypothesis), ``r`` the reference
  length closest to ``c``, ties to the shorter;
- BLEU-n ``= BP * exp(fsum(w * log p_k for k <= n))`` with ``w = 1 / n``.

Self-BLEU (Zhu et al. 2018): each hypothesis against all the others. The maximum count over "all but sentence i"
is the largest count unless sentence i holds it alone, then the second largest: two counts per n-gram suffice.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence

EPSILON = 0.1  # NLTK SmoothingFunction's default epsilon (method 1)
SMOOTHING = "nltk method1 (epsilon 0.1)"


def ngram_counts(tokens: Sequence[str], n: int) -> Counter:
    return Counter(tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1))


def _closest_length(lengths: Counter, hyp_len: int) -> int:
    """NLTK's closest_ref_length over the lengths with a positive count."""
    return min((r for r, c in lengths.items() if c > 0), key=lambda r: (abs(r - hyp_len), r))


def _bleu_from_counts(clipped: list[int], totals: list[int], hyp_len: int, ref_len: int, orders) -> dict[int, float]:
    """BLEU-n for each n in ``orders`` from the per-order clipped and total n-gram counts (index k: order k+1)."""
    if clipped[0] == 0:
        return dict.fromkeys(orders, 0.0)
    precisions = [(c + EPSILON) / max(1, t) if c == 0 else c / max(1, t) for c, t in zip(clipped, totals)]
    if hyp_len > ref_len:
        bp = 1.0
    else:
        bp = math.exp(1 - ref_len / hyp_len) if hyp_len else 0.0
    out = {}
    for n in orders:
        w = 1.0 / n  # Texygen's weights: tuple(1. / n for _ in range(n))
        out[n] = bp * math.exp(math.fsum(w * math.log(p) for p in precisions[:n] if p > 0))
    return out


class References:
    """A fixed reference set, counted once: the max count of every n-gram (orders 1..``max_order``) over the
    references, and the distribution of their lengths."""

    def __init__(self, references: Sequence[Sequence[str]], max_order: int = 5) -> None:
        if not references:
            raise ValueError("BLEU needs at least one reference sentence")
        self.max_order = max_order
        self.size = len(references)
        self.lengths = Counter(len(r) for r in references)
        self.max_counts: list[dict] = []
        for n in range(1, max_order + 1):
            best: dict = {}
            for ref in references:
                for gram, c in ngram_counts(ref, n).items():
                    if c > best.get(gram, 0):
                        best[gram] = c
            self.max_counts.append(best)
        self._closest: dict[int, int] = {}

    def closest_length(self, hyp_len: int) -> int:
        if hyp_len not in self._closest:
            self._closest[hyp_len] = _closest_length(self.lengths, hyp_len)
        return self._closest[hyp_len]

    def sentence_bleu(self, hypothesis: Sequence[str], orders: Sequence[int] = (2, 3, 4, 5)) -> dict[int, float]:
        """NLTK's sentence_bleu of one hypothesis for each BLEU-n in ``orders``."""
        clipped, totals = [], []
        for n in range(1, max(orders) + 1):
            counts, best = ngram_counts(hypothesis, n), self.max_counts[n - 1]
            clipped.append(sum(min(c, best.get(g, 0)) for g, c in counts.items()))
            totals.append(sum(counts.values()))
        return _bleu_from_counts(clipped, totals, len(hypothesis), self.closest_length(len(hypothesis)), orders)


def _check_orders(orders: Sequence[int], max_order: int) -> None:
    if not orders or min(orders) < 1 or max(orders) > max_order:
        raise ValueError(f"BLEU orders must be between 1 and {max_order}, got {list(orders)}")


def corpus_mean_bleu(
    hypotheses: Sequence[Sequence[str]], references: References | Sequence[Sequence[str]], orders=(2, 3, 4, 5)
) -> dict[int, float]:
    """Mean over ``hypotheses`` (token lists) of NLTK's sentence BLEU-n against all ``references``."""
    if not hypotheses:
        raise ValueError("BLEU needs at least one hypothesis")
    refs = references if isinstance(references, References) else References(references, max(orders))
    _check_orders(orders, refs.max_order)
    sums = dict.fromkeys(orders, 0.0)
    for hyp in hypotheses:
        for n, value in refs.sentence_bleu(hyp, orders).items():
            sums[n] += value
    return {n: s / len(hypotheses) for n, s in sums.items()}


def self_bleu(sentences: Sequence[Sequence[str]], orders=(2, 3, 4, 5)) -> dict[int, float]:
    """Mean over the sentences of NLTK's sentence BLEU-n of each against all the others (Texygen's Self-BLEU)."""
    if len(sentences) < 2:
        raise ValueError(f"Self-BLEU needs at least 2 sentences, got {len(sentences)}")
    _check_orders(orders, max(orders))
    top = max(orders)
    counts = [[ngram_counts(s, n) for n in range(1, top + 1)] for s in sentences]  # [i][n-1]
    # Per order: n-gram -> (largest count, the sentence holding it alone or -1 when shared, second largest).
    leaders: list[dict] = []
    for k in range(top):
        best: dict = {}
        for i, per_order in enumerate(counts):
            for gram, c in per_order[k].items():
                first, owner, second = best.get(gram, (0, -1, 0))
                if c > first:
                    best[gram] = (c, i, first)
                elif c == first:
                    best[gram] = (first, -1, first)
                elif c > second:
                    best[gram] = (first, owner, c)
        leaders.append(best)
    lengths = Counter(len(s) for s in sentences)
    sums = dict.fromkeys(orders, 0.0)
    for i, sentence in enumerate(sentences):
        clipped, totals = [], []
        for k in range(top):
            total = hit = 0
            for gram, c in counts[i][k].items():
                first, owner, second = leaders[k][gram]
                hit += min(c, second if owner == i else first)
                total += c
            clipped.append(hit)
            totals.append(total)
        lengths[len(sentence)] -= 1  # the others' lengths
        ref_len = _closest_length(lengths, len(sentence))
        lengths[len(sentence)] += 1
        for n, value in _bleu_from_counts(clipped, totals, len(sentence), ref_len, orders).items():
            sums[n] += value
    return {n: s / len(sentences) for n, s in sums.items()}
