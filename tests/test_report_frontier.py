"""The study report's quality/diversity frontier (gen_lightning/studies/report/frontier.py): a fake study directory
holding only the files the report reads (study.json, each run's metrics.json with its protocol card), with known
BLEU-5 / Self-BLEU-5 numbers, so that every interpolated value and verdict is known beforehand."""

from __future__ import annotations

import json

import pytest

from gen_lightning.studies.report.command import write_report
from gen_lightning.studies.report.frontier import curve_bleu, place
from gen_lightning.studies.report.plots import frontier_figure
from gen_lightning.studies.spec import StudyError, parse_spec

CARD = {"protocol": "sentences", "split": "test", "temperature": 1.0, "temperatures": "0.8,1.2", "hypotheses": 500,
        "references": 500, "self_bleu_hypotheses": 500}  # fmt: skip

# run -> seed -> temperature -> (Self-BLEU-5, BLEU-5); 1.0 is the main temperature (test/bleu5, test/self_bleu5).
# The MLE curve's means: T=1.2 (0.21, 0.11), T=1.0 (0.41, 0.21), T=0.8 (0.61, 0.36).
SWEEP = {
    "mle": {0: {0.8: (0.60, 0.35), 1.0: (0.40, 0.20), 1.2: (0.20, 0.10)},
            1: {0.8: (0.62, 0.37), 1.0: (0.42, 0.22), 1.2: (0.22, 0.12)}},
    # main point (0.51, 0.30): the MLE curve at 0.51 is 0.21 + (0.36 - 0.21) * 0.10 / 0.20 = 0.285, below it
    "gan_beyond": {0: {1.0: (0.50, 0.29), 1.2: (0.40, 0.24)}, 1: {1.0: (0.52, 0.31), 1.2: (0.42, 0.26)}},
    # main point (0.31, 0.14): the MLE curve at 0.31 is 0.11 + (0.21 - 0.11) * 0.10 / 0.20 = 0.16, above it
    "gan_inside": {0: {1.0: (0.30, 0.13), 1.2: (0.20, 0.08)}, 1: {1.0: (0.32, 0.15), 1.2: (0.22, 0.10)}},
    # main point (0.70, 0.40): right of the MLE curve's Self-BLEU-5 range 0.21 to 0.61
    "gan_outside": {0: {1.0: (0.69, 0.39), 0.8: (0.80, 0.45)}, 1: {1.0: (0.71, 0.41), 0.8: (0.82, 0.47)}},
}  # fmt: skip


def final_metrics(points: dict[float, tuple[float, float]]) -> dict:
    final = {"test/bleu2": 0.5, "val/loss": 4.0}
    for t, (self_bleu, bleu) in points.items():
        suffix = "" if t == CARD["temperature"] else f"_t{t:g}"
        final |= {f"test/self_bleu5{suffix}": self_bleu, f"test/bleu5{suffix}": bleu}
    return final


def fake_study(root, sweep: dict, report: dict | None = None, card: dict = CARD, failed: tuple[str, ...] = ()):
    """A study directory as `gen-lightning study` leaves it; the runs in ``failed`` failed, the others completed."""
    node = {"name": "fake", "seeds": [0, 1], "budget": {"max_epochs": 1}, "runs": {r: ["model=lstm"] for r in sweep}}
    spec = parse_spec({**node, "report": report} if report else node, source="fake.yaml")
    runs = {}
    for run, seeds in sweep.items():
        for seed, points in seeds.items():
            key = f"{run}_seed{seed}"
            status = "failed" if run in failed else "completed"
            runs[key] = {"run": run, "seed": seed, "dir": key, "status": status}
            summary = {"status": status, "final": final_metrics(points), "protocol": card, "num_params": 1000,
                       "train_time_s": 1.0, "history": [], "global_step": 10}  # fmt: skip
            (root / key).mkdir(parents=True)
            (root / key / "metrics.json").write_text(json.dumps(summary))
    index = {"study": "fake", "spec": spec.to_dict(), "runs": runs, "evaluations": {}}
    (root / "study.json").write_text(json.dumps(index))
    return root


def test_the_report_places_each_run_against_the_baseline_curve(tmp_path):
    study = fake_study(tmp_path / "study", SWEEP, {"frontier": {"baselines": ["mle"]}})
    md = write_report(study, wandb="false").read_text()
    assert (study / "plots" / "frontier_bleu5.png").stat().st_size > 10_000
    assert "![BLEU-5 against Self-BLEU-5](plots/frontier_bleu5.png)" in md
    rows = [line for line in md.splitlines() if "(T=" in line]
    assert rows == [
        "| `gan_beyond` (T=1) | 0.51 | 0.3 ± 0.014 | `mle` | 0.285 | +0.015 | **beyond** |",
        "| `gan_inside` (T=1) | 0.31 | 0.14 ± 0.014 | `mle` | 0.16 | -0.02 | inside |",
        "| `gan_outside` (T=1) | 0.7 | 0.4 ± 0.014 | `mle` | - | - | outside the curve's Self-BLEU-5 range "
        "(0.21 to 0.61) |",
    ]
    # the curves' table: every temperature of every run, mean over seeds (BLEU-5 / Self-BLEU-5)
    assert "| `mle` | 0.36 / 0.61 | 0.21 / 0.41 | 0.11 / 0.21 |" in md
    assert "| `gan_outside` | 0.46 / 0.81 | 0.4 / 0.7 | - |" in md
    front = json.loads((study / "report.json").read_text())["frontier"]
    assert [c["run"] for c in front["curves"]] == ["mle", "gan_beyond", "gan_inside", "gan_outside"]  # study order
    assert [p["temperature"] for p in front["curves"][0]["points"]] == [0.8, 1.0, 1.2]
    assert front["comparisons"][0]["curve_bleu5"] == pytest.approx(0.285)
    assert front["protocol"] == {"hypotheses": [500], "references": [500], "self_bleu_hypotheses": [500]}
    # the same results give the same figure, byte for byte
    figure = (study / "plots" / "frontier_bleu5.png").read_bytes()
    write_report(study, wandb="false")
    assert (study / "plots" / "frontier_bleu5.png").read_bytes() == figure


def test_a_baseline_that_failed_is_named_and_nothing_is_placed(tmp_path):
    study = fake_study(tmp_path / "study", SWEEP, {"frontier": {"baselines": ["mle"]}}, failed=("mle",))
    md = write_report(study, wandb="false").read_text()
    front = json.loads((study / "report.json").read_text())["frontier"]
    assert [c["run"] for c in front["curves"]] == ["gan_beyond", "gan_inside", "gan_outside"]
    assert front["comparisons"] == [] and front["missing_baselines"] == ["mle"]
    assert "Baselines without a curve (no completed seed with these metrics): `mle`." in md


def test_without_baselines_every_run_faces_every_other_curve(tmp_path):
    sweep = {r: SWEEP[r] for r in ("mle", "gan_beyond")}
    study = fake_study(tmp_path / "study", sweep)
    report = json.loads((write_report(study, wandb="false").parent / "report.json").read_text())
    verdicts = {(c["run"], c["against"]): c["verdict"] for c in report["frontier"]["comparisons"]}
    # the MLE main point (0.41, 0.21) against the GAN's curve from (0.41, 0.25) at T=1.2 to (0.51, 0.30) at T=1
    assert verdicts == {("mle", "gan_beyond"): "inside", ("gan_beyond", "mle"): "beyond"}


def test_the_figure_draws_each_run_through_its_temperatures(tmp_path):
    study = fake_study(tmp_path / "study", SWEEP, {"frontier": {"baselines": ["mle"]}})
    write_report(study, wandb="false")
    front = json.loads((study / "report.json").read_text())["frontier"]
    fig = frontier_figure(front, "title")
    ax = fig.axes[0]
    mle = next(line for line in ax.get_lines() if line.get_label() == "mle (baseline)")
    assert list(mle.get_xdata()) == pytest.approx([0.61, 0.41, 0.21])  # T = 0.8, 1.0, 1.2
    assert list(mle.get_ydata()) == pytest.approx([0.36, 0.21, 0.11])
    assert sorted(t.get_text() for t in ax.texts if t.get_text()[0].isdigit()) == ["0.8"] * 2 + ["1"] * 4 + ["1.2"] * 3
    # the seeds' spread: error bars of one sample standard deviation (0.01 / sqrt(1/2) for two seeds 0.02 apart)
    _, yerr = ax.containers[0].lines[2]  # the first run's (mle) x and y error bars
    assert [seg[1][1] - seg[0][1] for seg in yerr.get_segments()] == pytest.approx([2 * 0.02 / 2**0.5] * 3)
    assert ax.get_xlabel() == "Self-BLEU-5 (diversity: lower is more diverse)"


def test_a_study_without_a_temperature_sweep_has_no_frontier(tmp_path):
    main_only = {run: {s: {1.0: p[1.0]} for s, p in seeds.items()} for run, seeds in SWEEP.items()}
    study = fake_study(tmp_path / "study", main_only, card={**CARD, "temperatures": None})
    md = write_report(study, wandb="false").read_text()
    assert "Quality against diversity" not in md and "frontier" not in md
    assert not (study / "plots" / "frontier_bleu5.png").exists()
    assert "frontier" not in json.loads((study / "report.json").read_text())


def test_interpolation_takes_the_curve_segment_around_the_point():
    curve = [(0.6, 0.3), (0.4, 0.2), (0.2, 0.1)]
    assert curve_bleu(curve, 0.5) == pytest.approx(0.25)
    assert curve_bleu(curve, 0.2) == pytest.approx(0.1)  # an end of the range is inside it
    assert curve_bleu(curve, 0.19) is None and curve_bleu(curve, 0.61) is None  # no extrapolation
    # Self-BLEU-5 not monotone in temperature: the curve's best BLEU-5 at that Self-BLEU-5
    assert curve_bleu([(0.6, 0.3), (0.4, 0.2), (0.5, 0.1)], 0.45) == pytest.approx(0.225)
    assert place((0.5, 0.25), curve)["verdict"] == "on"


@pytest.mark.parametrize(
    ("report", "message"),
    [
        ({"frontiers": {"baselines": ["mle"]}}, r"unknown study.report keys \['frontiers'\]; valid keys"),
        ({"frontier": {"baseline": ["mle"]}}, "study.report.frontier takes one key, baselines"),
        ({"frontier": {"baselines": ["mle", "lstm"]}}, r"some \(not all\) of the study's runs \['mle', 'gan'\]"),
        ({"frontier": {"baselines": ["mle", "gan"]}}, r"some \(not all\)"),
        ({"frontier": {"baselines": []}}, r"some \(not all\)"),
        ({"metrics": "val/loss"}, "study.report.metrics must be a list of metric names"),
    ],
)
def test_report_keys_are_checked(report, message):
    node = {"name": "s", "seeds": [0], "budget": {"max_epochs": 1}, "runs": {"mle": ["model=lstm"], "gan": []}}
    with pytest.raises(StudyError, match=message):
        parse_spec({**node, "report": report})


def test_the_wandb_report_run_gets_the_figure_and_the_verdicts(tmp_path, monkeypatch):
    pytest.importorskip("wandb")
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_DATA_DIR", str(tmp_path / "wandb_data"))
    sweep = {r: SWEEP[r] for r in ("mle", "gan_beyond")}
    study = fake_study(tmp_path / "study", sweep, {"frontier": {"baselines": ["mle"]}})
    write_report(study, wandb="true")
    (run,) = (study / "wandb").glob("offline-run-*")
    assert list(run.glob("files/media/images/plots/frontier_bleu5_*.png"))
    (table_file,) = run.glob("files/media/table/frontier_verdicts_*.table.json")
    table = json.loads(table_file.read_text())
    (row,) = [dict(zip(table["columns"], data)) for data in table["data"]]
    assert (row["run"], row["against"], row["verdict"]) == ("gan_beyond", "mle", "beyond")
    assert row["curve bleu5"] == pytest.approx(0.285)
