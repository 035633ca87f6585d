"""Speed of the text-GAN BLEU (gen_lightning/metrics/bleu.py) against NLTK's ``sentence_bleu``, on Image COCO.

BLEU-2..5 of 2,000 hypotheses (the first 2,000 training captions standing in for generated sentences) against
all 10,000 test captions as references, and Self-BLEU-2..5 of the same 2,000; regex word tokens
(gen_lightning/data/text/sentences.py). NLTK is timed on a few hypotheses and extrapolated (the full run takes hours);
the values of both are compared on those hypotheses.

    PYTHONPATH=. OMP_NUM_THREADS=1 python benchmarks/text_bleu.py [--data ../shared/data/image_coco] [--nltk 10]

Measured 2026-12-06 on the shared development machine (AMD EPYC, 2 cores shared with other agents' jobs, load
average ~9 during the run; one process, one thread), 2,000 hypotheses, 10,000 references (``--nltk 5``):

    count the references' n-grams (once)         2.03 s
    BLEU-2..5, 2,000 x 10,000                     0.56 s   (target <= 30 s)
    Self-BLEU-2..5, 2,000 (each vs 1,999)         0.54 s   (target <= 30 s)
    NLTK sentence_bleu, BLEU-2..5 (4 calls)       5.75 s per hypothesis -> ~192 min for 2,000
    NLTK Self-BLEU-2..5                           1.21 s per hypothesis -> ~40 min for 2,000
    largest |ours - NLTK| on the timed hypotheses 0 (bit-identical)

Values: BLEU-2/3/4/5 0.736/0.513/0.329/0.211 and Self-BLEU-2/3/4/5 0.811/0.619/0.431/0.291 of real training
captions (what a generator that copied the training set would score under the default protocol). Texygen's
"fast" protocol (the first 500 test captions as references): BLEU-2/3/4/5 0.509/0.277/0.155/0.098, below
Texygen's published MLE row (0.731/0.497/0.305/0.189) for generated sentences; not explained here (untested
guesses: a generator's frequent phrasings match 500 references more often than varied real captions do, and
Texygen's own preprocessed caption files).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from gen_lightning.data.text.words import split_words
from gen_lightning.metrics.bleu import References, corpus_mean_bleu, self_bleu

ORDERS = (2, 3, 4, 5)


def nltk_timing(hypotheses, references, self_set, count: int) -> tuple[float, float, float]:
    """Seconds per hypothesis of NLTK (BLEU-2..5 and Self-BLEU-2..5), and the largest difference from ours."""
    from nltk.translate.bleu_score import SmoothingFunction, sentence_bleu

    smooth, refs, diff = SmoothingFunction().method1, References(references), 0.0
    start = time.perf_counter()
    for h in hypotheses[:count]:
        ours = refs.sentence_bleu(h, ORDERS)
        for n in ORDERS:
            diff = max(diff, abs(sentence_bleu(references, h, tuple(1.0 / n for _ in range(n)), smooth) - ours[n]))
    per_bleu = (time.perf_counter() - start) / count
    start = time.perf_counter()
    for i in range(count):
        others = self_set[:i] + self_set[i + 1 :]
        for n in ORDERS:
            sentence_bleu(others, self_set[i], tuple(1.0 / n for _ in range(n)), smooth)
    return per_bleu, (time.perf_counter() - start) / count, diff


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", default=str(Path(__file__).resolve().parents[2] / "shared" / "data" / "image_coco"))
    parser.add_argument("--hypotheses", type=int, default=2000)
    parser.add_argument("--nltk", type=int, default=10, help="hypotheses timed with NLTK (0: skip)")
    args = parser.parse_args()
    data = Path(args.data)
    hypotheses = [split_words(s) for s in (data / "train.txt").read_text().splitlines()[: args.hypotheses]]
    references = [split_words(s) for s in (data / "test.txt").read_text().splitlines()]

    start = time.perf_counter()
    refs = References(references)
    counted = time.perf_counter() - start
    start = time.perf_counter()
    bleu = corpus_mean_bleu(hypotheses, refs, ORDERS)
    scored = time.perf_counter() - start
    start = time.perf_counter()
    diversity = self_bleu(hypotheses, ORDERS)
    selfed = time.perf_counter() - start
    fast = corpus_mean_bleu(hypotheses, references[:500], ORDERS)
    print(f"{len(hypotheses)} hypotheses, {len(references)} references")
    print(f"count the references' n-grams   {counted:.2f} s")
    print(f"BLEU-2..5                       {scored:.2f} s   {'/'.join(f'{bleu[n]:.3f}' for n in ORDERS)}")
    print(f"Self-BLEU-2..5                  {selfed:.2f} s   {'/'.join(f'{diversity[n]:.3f}' for n in ORDERS)}")
    print(f"Texygen fast (500 references)   BLEU-2..5 {'/'.join(f'{fast[n]:.3f}' for n in ORDERS)}")
    if args.nltk:
        per_bleu, per_self, diff = nltk_timing(hypotheses, references, hypotheses, args.nltk)
        n = len(hypotheses)
        print(f"NLTK BLEU-2..5                  {per_bleu:.2f} s per hypothesis -> {per_bleu * n / 60:.0f} min")
        print(f"NLTK Self-BLEU-2..5             {per_self:.2f} s per hypothesis -> {per_self * n / 60:.0f} min")
        print(f"largest |ours - NLTK|           {diff:.3g}")


if __name__ == "__main__":
    main()
