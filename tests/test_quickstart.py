"""The README's quickstart (issue 15): its pictures and table are what ``benchmarks/quickstart.py`` measured with
the current study file, they meet the targets, and one family's learning curve on the digits is checked fast.
The whole study is the slow test."""

from __future__ import annotations

import contextlib
import io
import json
import sys
from pathlib import Path

import pytest
import yaml

from gen_lightning import cli
from gen_lightning.config import compose
from gen_lightning.run import train
from gen_lightning.studies.spec import load_spec

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
import quickstart  # noqa: E402 - benchmarks/ is not a package

RESULTS = ROOT / "docs" / "quickstart" / "results.json"


def committed() -> dict:
    if not RESULTS.exists():
        pytest.fail(f"{RESULTS.relative_to(ROOT)} is missing: run `PYTHONPATH=. python benchmarks/quickstart.py`")
    return json.loads(RESULTS.read_text())


def test_the_readme_shows_the_committed_results():
    assert quickstart.render_block(committed()) in (ROOT / "README.md").read_text(), (
        "README.md's quickstart block differs from docs/quickstart/results.json: run "
        "`PYTHONPATH=. python benchmarks/quickstart.py --reuse` (or without --reuse to measure again)"
    )
    for image in ("samples.png", "val_fid_clf.png"):
        size = (RESULTS.parent / image).stat().st_size
        assert 5_000 < size < 150_000, (image, size)  # a picture, and small enough to commit


def test_the_committed_results_were_made_by_the_current_study_file():
    spec = {k: v for k, v in load_spec(quickstart.STUDY_FILE).to_dict().items() if k != "source"}
    assert json.loads(json.dumps(spec)) == committed()["study"], (
        "experiments/image_families_quick.yaml changed since docs/quickstart/ was made: run "
        "`PYTHONPATH=. python benchmarks/quickstart.py` to measure it again"
    )


def test_the_committed_results_meet_the_targets():
    data = committed()
    assert {row["run"] for row in data["rows"]} == {"vae", "dcgan", "wgan_gp", "ddpm"}
    assert all(row["seeds"] == 3 for row in data["rows"])
    assert quickstart.misses(data) == []


def test_the_quick_studys_vae_learns_digits(tmp_path):
    """The study's VAE run (seed 0, its 20 epochs, the study's protocol): FID_clf falls across the evaluations to
    well below the target, and the samples are classified as confidently as digits of many classes (IS_clf)."""
    study = yaml.safe_load(quickstart.STUDY_FILE.read_text())["study"]
    overrides = [*study["common"], *study["runs"]["vae"], *study["protocol"], "trainer.max_epochs=20"]
    overrides += ["logger=none", "trainer.enable_progress_bar=false", f"run_dir={tmp_path / 'run'}"]
    summary = train.fit(compose(overrides))
    fid = [row["val/fid_clf"] for row in summary["history"] if "val/fid_clf" in row]
    assert len(fid) == 4 and fid[-1] < fid[0], fid
    assert fid[-1] < 80 and summary["final"]["val/is_clf"] > 7, summary["final"]


@pytest.mark.slow
def test_the_quick_study_meets_the_targets(tmp_path):
    """The README's first command, from scratch (about 5 minutes of one CPU core)."""
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        cli.main(["study", str(quickstart.STUDY_FILE), f"study_dir={tmp_path}", "report=true"])
    data = quickstart.results(tmp_path, timing={})
    assert quickstart.misses(data) == [], printed.getvalue()
    assert len([line for line in printed.getvalue().splitlines() if " run " in line]) == 12  # one line per run
