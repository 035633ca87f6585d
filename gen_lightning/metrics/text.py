"""``text_generation``: hypotheses of a text -> text model against their references, with the field's packages.

- BLEU (Papineni et al. 2002) and chrF (Popovic 2015) by SacreBLEU (Post 2018, "A call for clarity in reporting
  BLEU scores"): corpus-level, on detokenised text, sacrebleu's default 13a tokenisation; the card carries each
  metric's signature (``nrefs:1|case:mixed|eff:no|tok:13a|smooth:exp|version:...``), without which a BLEU score
  is not comparable.
- ROUGE-1/2/L (Lin 2004) by ``rouge-score``, Google's reimplementation of ROUGE-1.5.5: the mean F-measure over
  pairs, x100. No stemmer (the Porter stemmer is fine offline, but published code-summary numbers differ on it:
  the card says which) and no ``rougeLsum`` (its sentence splitting needs nltk data, a download).

Hypotheses are gathered from every process and ordered by example index before scoring, so one process and many
give the same corpus score. The hypotheses come back as ``outputs`` (``gen-lightning evaluate`` writes them).
"""

from __future__ import annotations

from gen_lightning.metrics.protocol import EvaluationCallback, batch_generator, gather_objects, split_items

SACREBLEU = ("bleu", "chrf")
ROUGE = ("rouge1", "rouge2", "rougeL")


def sacrebleu_scores(hypotheses: list[str], references: list[str], names) -> tuple[dict, dict]:
    """Corpus BLEU / chrF and their signatures."""
    from sacrebleu.metrics import BLEU, CHRF

    values, signatures = {}, {}
    for name in names:
        metric = BLEU() if name == "bleu" else CHRF()
        values[name] = metric.corpus_score(hypotheses, [references]).score
        signatures[f"{name}_signature"] = str(metric.get_signature())
    return values, signatures


def rouge_scores(hypotheses: list[str], references: list[str], names) -> dict:
    """Mean ROUGE F-measure x100 over pairs (rouge-score, no stemmer)."""
    from rouge_score import rouge_scorer

    scorer = rouge_scorer.RougeScorer(list(names), use_stemmer=False)
    totals = dict.fromkeys(names, 0.0)
    for hyp, ref in zip(hypotheses, references):
        scores = scorer.score(ref, hyp)  # (target, prediction)
        for name in names:
            totals[name] += scores[name].fmeasure
    return {name: 100 * total / len(hypotheses) for name, total in totals.items()}


class TextGenerationMetrics(EvaluationCallback):
    """BLEU / chrF / ROUGE of a conditional text model on a fixed subset; see the file docstring.

    Args (besides ``EvaluationCallback``'s): ``metrics`` (a subset of bleu, chrf, rouge1, rouge2, rougeL),
    ``decoding`` (keyword arguments of the model's ``generate``, e.g. ``{beam: 5}``; part of the protocol)."""

    protocol_name = "text_generation"
    tasks = (("conditional", "text", "text"),)
    metric_directions = dict.fromkeys((*SACREBLEU, *ROUGE), "max")

    def __init__(
        self,
        every_n_epochs: int = 1,
        split: str = "val",
        num_items: int | None = 500,
        batch_size: int = 64,
        seed: int = 0,
        metrics: list[str] | tuple[str, ...] = ("bleu", "chrf"),
        decoding: dict | None = None,
    ) -> None:
        super().__init__(every_n_epochs, split, num_items, batch_size, seed)
        unknown = sorted(set(metrics) - set(SACREBLEU) - set(ROUGE))
        if unknown or not metrics:
            raise ValueError(f"metrics.metrics must name some of {(*SACREBLEU, *ROUGE)}, got {list(metrics)}")
        self.metrics = list(metrics)
        self.decoding = dict(decoding or {})

    def settings(self) -> dict:
        import sacrebleu

        out = {"metrics": ",".join(self.metrics), "decoding": self.decoding, "sacrebleu": sacrebleu.__version__}
        if any(m in ROUGE for m in self.metrics):
            out["rouge"] = "rouge-score, F-measure x100, mean over pairs, no stemmer"
        return out

    def compute(self, module, datamodule, split: str) -> dict:
        rows = []
        loader = datamodule.evaluation_loader(split, self.num_items, self.batch_size)
        for batch in loader:
            generator = batch_generator(self.seed, batch["batch"], module.device)
            hypotheses = module.generate(list(batch["source"]), generator=generator, **self.decoding)
            rows += zip(batch["index"].tolist(), hypotheses, batch["target"])
        rows = sorted(gather_objects(rows))
        hypotheses, references = [h for _, h, _ in rows], [r for _, _, r in rows]
        values, card = sacrebleu_scores(hypotheses, references, [m for m in self.metrics if m in SACREBLEU])
        if any(m in ROUGE for m in self.metrics):
            values.update(rouge_scores(hypotheses, references, [m for m in self.metrics if m in ROUGE]))
        card["pairs"], card["split_items"] = len(rows), split_items(loader)  # scored, of the split
        card["empty_hypotheses"] = sum(not h.strip() for h in hypotheses)
        return {"metrics": values, "protocol": card, "outputs": hypotheses}
