"""Studies: a miniature comparison run through `study` and `report`, resume after an interruption, failures,
separate study directories, evaluation variants, W&B grouping, and every shipped study file."""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import math
import re
import shutil
import statistics
import subprocess
import sys
from pathlib import Path

import lightning as L
import pytest
import torch
import yaml
from helpers import module_weights

from gen_lightning import cli
from gen_lightning.config import config_dir, experiments_dir
from gen_lightning.run import train
from gen_lightning.studies.plan import plan
from gen_lightning.studies.spec import KEYS, StudyError, load_spec, parse_spec

WANDB = shutil.which("wandb") or shutil.which("wandb", path=str(Path(sys.executable).parent))
STEPS = 8  # validation (and last.ckpt) at steps 4 and 8; last.ckpt also every 2 steps

MINI = {
    "name": "mini",
    "seeds": [0, 1],
    "budget": {"max_steps": STEPS},
    "common": [
        "data=digits",
        "logger=none",
        "model.hidden_dim=32",
        "model.iw_samples=4",
        "trainer.enable_progress_bar=false",
        "trainer.log_every_n_steps=1",
        "checkpoint.every_n_train_steps=2",
    ],
    "protocol": ["metrics=none", "trainer.val_check_interval=4", "trainer.check_val_every_n_epoch=null"],
    "runs": {"mlp": ["model=vae"], "conv": ["model=conv_vae", "model.latent_dim=4"]},
}


def write_study(path: Path, **changes) -> Path:
    node = {**MINI, **changes}
    path.write_text(yaml.safe_dump({"study": node}, sort_keys=False))
    return path


class Crash(L.Callback):
    """Dies like a killed process after step ``at`` (after the checkpoint of step ``at`` was written)."""

    def __init__(self, at: int) -> None:
        self.at = at

    def on_train_batch_end(self, trainer, *args) -> None:
        if trainer.global_step > self.at:
            raise RuntimeError("simulated crash")


def crash_run(monkeypatch, key: str, at: int) -> None:
    original = train.build_callbacks

    def build(cfg, run_dir, *rest):
        callbacks = original(cfg, run_dir, *rest)
        return [Crash(at), *callbacks] if Path(run_dir).name == key else callbacks

    monkeypatch.setattr(train, "build_callbacks", build)


def snapshot(directory: Path) -> dict[str, tuple[int, str]]:
    """mtime and content hash of every file below ``directory``."""
    return {
        str(p.relative_to(directory)): (p.stat().st_mtime_ns, hashlib.sha256(p.read_bytes()).hexdigest())
        for p in sorted(directory.rglob("*"))
        if p.is_file()
    }


def metrics(run_dir: Path) -> dict:
    return json.loads((run_dir / "metrics.json").read_text())


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The miniature study, run once without interruption, and its report; also what the study printed."""
    root = tmp_path_factory.mktemp("reference")
    study_dir = root / "out"
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        cli.main(["study", str(write_study(root / "mini.yaml")), f"study_dir={study_dir}", "jobs=1"])  # in order
    (root / "printed.txt").write_text(printed.getvalue())
    # the study wrote its report at the end
    return study_dir


def test_study_runs_every_run_and_the_report_tabulates_them(reference):
    index = json.loads((reference / "study.json").read_text())
    assert index["study"] == "mini"
    printed = (reference.parent / "printed.txt").read_text()
    # One line per run (seed-major: every model early), with the study's bar and an ETA from the finished runs;
    # what Lightning prints goes to each run's train.log.
    lines = [line for line in printed.splitlines() if re.match(r"\[study mini\] run \d/4 ", line)]
    assert [re.search(r"run \d/4 (\w+): completed in", line)[1] for line in lines] == [
        "mlp_seed0", "conv_seed0", "mlp_seed1", "conv_seed1"
    ]  # fmt: skip
    assert re.search(r"run 3/4 mlp_seed1: completed in \dm\d\ds \(step 8\) \| \[#+\.+\] 3 completed, 0 failed \| "
                     r"ETA \dm\d\ds$", lines[2]), lines[2]  # fmt: skip
    assert lines[3].endswith("| [############] 4 completed, 0 failed | ETA -")
    assert "Epoch" not in printed and "GPU available" not in printed
    assert "GPU available" in (reference / "mlp_seed0" / "train.log").read_text()
    for key, entry in index["runs"].items():
        assert entry["status"] == "completed", entry
        summary = metrics(reference / key)
        assert summary["global_step"] == STEPS and [r["step"] for r in summary["history"]] == [4, 8]
        assert summary["num_params"] > 0
        assert f"seed={entry['seed']}" in entry["overrides"]

    report = json.loads((reference / "report.json").read_text())
    rows = {row["run"]: row for row in report["rows"]}
    for run in ("mlp", "conv"):
        finals = [metrics(reference / f"{run}_seed{s}")["final"] for s in (0, 1)]
        for metric in ("val/elbo", "val/kl", "val/recon", "val/nll_iw"):
            values = [f[metric] for f in finals]
            st = rows[run]["metrics"][metric]
            assert st["mean"] == pytest.approx(statistics.fmean(values), rel=1e-12)
            assert st["std"] == pytest.approx(statistics.stdev(values), rel=1e-12)
            assert st["n"] == 2
    assert rows["conv"]["num_params"] > rows["mlp"]["num_params"]  # the conv VAE is the larger one here

    md = (reference / "report.md").read_text()
    mlp = rows["mlp"]["metrics"]["val/elbo"]
    assert f"{mlp['mean']:.4g} ± {mlp['std']:.2g}" in md  # the Markdown table shows the same numbers
    assert "| `mlp` | VAE | 2/2 |" in md and "val/elbo ↑" in md and "val/kl ↓" not in md  # kl: a diagnostic
    for metric in ("val_elbo", "val_kl", "val_recon", "val_nll_iw"):
        assert (reference / "plots" / f"{metric}.png").stat().st_size > 5000
        assert f"plots/{metric}.png" in md
    assert (reference / "samples.png").stat().st_size > 5000
    # Results first: a row per run, best first by the first main metric (val/elbo, higher is better), with its
    # samples; every metric in the appendix.
    results = md.split("## Results")[1].split("\n## ")[0]
    elbo = {run: rows[run]["metrics"]["val/elbo"]["mean"] for run in rows}
    assert re.findall(r"^\| \d \| `(\w+)`", results, re.M) == sorted(elbo, key=elbo.get, reverse=True)
    for run in ("mlp", "conv"):
        assert f"![{run}](samples/{run}.png)" in results and (reference / "samples" / f"{run}.png").is_file()
    assert md.index("## Results") < md.index("## Learning curves") < md.index("## Appendix: every metric")


def test_report_is_idempotent(reference):
    before = snapshot(reference)
    cli.main(["report", str(reference)])
    after = snapshot(reference)
    assert before.keys() == after.keys()
    for name in ("report.md", "report.json", "samples.png", "plots/val_elbo.png"):
        assert before[name][1] == after[name][1], name  # same content


def test_interrupted_study_resumes_and_equals_the_uninterrupted_one(reference, tmp_path, monkeypatch, capsys):
    spec = write_study(tmp_path / "mini.yaml")
    study_dir = tmp_path / "out"
    crash_run(monkeypatch, "conv_seed0", at=4)  # in this process: jobs=1
    with pytest.raises(
        SystemExit, match="1 of 4 runs of study 'mini' did not complete: conv_seed0 \\(failed\\).*again resumes"
    ):
        cli.main(["study", str(spec), f"study_dir={study_dir}", "report=false", "jobs=1"])
    monkeypatch.undo()
    index = json.loads((study_dir / "study.json").read_text())
    assert index["runs"]["conv_seed0"]["status"] == "failed"
    assert "simulated crash" in index["runs"]["conv_seed0"]["error"]
    assert all(index["runs"][k]["status"] == "completed" for k in ("mlp_seed0", "mlp_seed1", "conv_seed1"))
    assert "simulated crash" in (study_dir / "conv_seed0" / "error.txt").read_text()
    first = capsys.readouterr().out
    assert "[study mini] run 2/4 conv_seed0: failed" in first and "run 4/4 conv_seed1: completed" in first

    finished = {k: snapshot(study_dir / k) for k in ("mlp_seed0", "mlp_seed1", "conv_seed1")}
    cli.main(["study", str(spec), f"study_dir={study_dir}", "report=false", "jobs=1"])
    out = capsys.readouterr().out
    assert "run 1/4 mlp_seed0: completed before, skipped" in out
    assert "run 2/4 conv_seed0: resumed from checkpoints/last.ckpt, completed in" in out
    for key, files in finished.items():
        assert snapshot(study_dir / key) == files, f"{key} was touched although it had completed"

    index = json.loads((study_dir / "study.json").read_text())
    assert index["runs"]["conv_seed0"]["status"] == "completed" and index["runs"]["conv_seed0"]["attempts"] == 2
    for key in index["runs"]:
        resumed, full = metrics(study_dir / key), metrics(reference / key)
        assert resumed["final"] == full["final"], key
        assert [r["step"] for r in resumed["history"]] == [r["step"] for r in full["history"]]
        wa = module_weights(study_dir / key / "checkpoints" / "last.ckpt")
        wb = module_weights(reference / key / "checkpoints" / "last.ckpt")
        assert all(torch.equal(wa[k], wb[k]) for k in wb), key


def test_runs_that_cannot_be_trained_refuse_the_study_before_any_trains(tmp_path):
    """Known at planning time (issue 24: `model=nonexistent` ended "1/2 runs completed" with exit status 0): a run
    whose config does not compose, a model that does not fit the data, a bad value: all named in one message, for
    every seed, and nothing is written."""
    runs = {
        "missing": ["model=no_such_model"],
        "unfit": ["model=gpt"],
        "zero_lr": ["model=vae", "model.lr=0"],
        "typo": ["model=vae", "model.iw_sampels=4"],
        "mlp": ["model=vae"],
    }
    common = [o for o in MINI["common"] if not o.startswith("model.")]
    spec = write_study(tmp_path / "bad.yaml", name="bad", common=common, runs=runs)
    with pytest.raises(SystemExit) as info:
        cli.main(["study", str(spec), f"study_dir={tmp_path / 'out'}"])
    message = str(info.value)
    assert message.startswith("gen-lightning study: 8 of the 10 runs of study 'bad' cannot be trained, so none was")
    assert "missing_seed0, missing_seed1: MissingConfigException: Could not find 'model/no_such_model' (options: " in (
        message
    )
    assert "unfit_seed0, unfit_seed1: the model GPT does unconditional text" in message
    assert "zero_lr_seed0, zero_lr_seed1: model.lr=0: a learning rate must be positive" in message
    assert "typo_seed0, typo_seed1: ConfigCompositionException: Could not override 'model.iw_sampels': Key 'iw_s" in (
        message
    )
    assert "mlp_seed" not in message and "Traceback" not in message
    assert not (tmp_path / "out").exists()


def test_failing_runs_are_recorded_the_others_run_and_the_study_exits_non_zero(tmp_path):
    runs = {"nan": ["model=vae", "model.lr=1.0e+30"], "mlp": ["model=vae"]}
    spec = write_study(tmp_path / "bad.yaml", name="bad", seeds=[0], runs=runs)
    with pytest.raises(
        SystemExit, match=r"^gen-lightning study: 1 of 2 runs of study 'bad' did not complete: nan_seed0 \(failed\)\. "
    ):
        cli.main(["study", str(spec), f"study_dir={tmp_path / 'out'}"])
    index = json.loads((tmp_path / "out" / "study.json").read_text())["runs"]
    assert index["nan_seed0"]["status"] == "failed" and "NonFiniteLossError" in index["nan_seed0"]["error"]
    assert metrics(tmp_path / "out" / "nan_seed0")["status"] == "failed"
    assert index["mlp_seed0"]["status"] == "completed"

    # the study wrote its report before it exited
    md = (tmp_path / "out" / "report.md").read_text()
    assert "## Failed and incomplete runs" in md
    assert "`nan_seed0` (failed)" in md and "NonFiniteLossError" in md
    assert "| `nan` | VAE | 0/1 |" in md and "| `mlp` | VAE | 1/1 |" in md


def test_studies_never_share_a_directory(reference, tmp_path):
    before = snapshot(reference)
    other = write_study(tmp_path / "other.yaml", name="other")
    with pytest.raises(SystemExit, match="holds the study 'mini', not 'other'"):
        cli.main(["study", str(other), f"study_dir={reference}"])
    (tmp_path / "stuff").mkdir()
    (tmp_path / "stuff" / "notes.txt").write_text("mine")
    with pytest.raises(SystemExit, match="not empty and holds no study.json"):
        cli.main(["study", str(other), f"study_dir={tmp_path / 'stuff'}"])
    # The same study with another configuration would mix incomparable runs: refused before anything trains.
    with pytest.raises(SystemExit, match=r"(?s)another configuration.*mlp_seed0: model.latent_dim: 16 -> 3"):
        cli.main(["study", str(write_study(tmp_path / "mini.yaml")), f"study_dir={reference}", "model.latent_dim=3"])
    assert snapshot(reference) == before


def test_dry_run_lists_the_runs_and_trains_nothing(tmp_path, capsys):
    cli.main(["study", str(write_study(tmp_path / "mini.yaml")), f"study_dir={tmp_path / 'out'}", "dry_run=true"])
    out = capsys.readouterr().out
    assert "mlp_seed0 [fresh]" in out and "conv_seed1 [fresh]" in out
    assert "model=conv_vae model.latent_dim=4 metrics=none" in out and "trainer.max_steps=8" in out
    assert not (tmp_path / "out").exists()


def test_study_file_errors_name_the_problem():
    ok = dict(MINI)
    with pytest.raises(StudyError, match="study.budget must set some of"):
        parse_spec({**ok, "budget": {"steps": 10}})
    with pytest.raises(StudyError, match="max_time must be 'DD:HH:MM:SS'"):
        parse_spec({**ok, "budget": {"max_time": "5 minutes"}})
    with pytest.raises(StudyError, match="run 'mlp' overrides 'metrics.num_samples'"):
        parse_spec({**ok, "runs": {"mlp": ["model=vae", "metrics.num_samples=10"]}})
    with pytest.raises(StudyError, match="overrides 'trainer.max_steps'"):
        parse_spec({**ok, "runs": {"mlp": ["trainer.max_steps=10"]}})
    with pytest.raises(StudyError, match="unknown study keys.*'budgets'"):
        parse_spec({**ok, "budgets": {}})
    with pytest.raises(StudyError, match="distinct integers"):
        parse_spec({**ok, "seeds": [0, 0]})
    with pytest.raises(StudyError, match="run name 'a b'"):
        parse_spec({**ok, "runs": {"a b": ["model=vae"]}})
    with pytest.raises(StudyError, match="may only set model"):
        parse_spec({**ok, "evaluations": {"x": ["trainer.max_steps=3"]}})
    with pytest.raises(SystemExit, match="is not a study file: it has no top-level 'study:' key"):
        cli.main(["study", str(experiments_dir() / "vae_conv_digits.yaml")])
    with pytest.raises(SystemExit, match="study file 'no_such_study' does not exist"):
        cli.main(["study", "no_such_study"])
    with pytest.raises(SystemExit, match="holds no study.json: run the study first"):
        cli.main(["report", str(Path(__file__).parent)])
    spec = parse_spec({**ok, "budget": {"max_time": "00:00:01:30"}})
    limits = ["trainer.max_steps=-1", "trainer.max_epochs=-1", "++trainer.max_time='00:00:01:30'"]
    assert spec.budget_overrides() == limits


def test_wall_clock_budget_reaches_the_trainer(tmp_path):
    spec = parse_spec({**MINI, "budget": {"max_time": "00:00:00:03"}})
    (cfg,) = [pr.cfg for pr in plan(spec, tmp_path, []) if pr.key == "mlp_seed0"]
    assert cfg.trainer.max_time == "00:00:00:03" and cfg.trainer.max_steps == -1 and cfg.trainer.max_epochs == -1
    summary = train.fit(cfg)
    assert summary["status"] == "completed" and 3 <= summary["train_time_s"] < 30


def installed(error: str) -> bool:
    """False when a config error only names a config group option that is not installed (yet) in conf/."""
    match = re.search(r"Could not find '(\w+)/(\w+)'", error)
    if not match:
        return True
    group, name = match.groups()
    if group == "experiment":
        return (experiments_dir() / f"{name}.yaml").is_file()
    return (config_dir() / group / f"{name}.yaml").is_file()


@pytest.mark.parametrize("path", sorted(p.name for p in experiments_dir().glob("*.yaml")))
def test_every_shipped_study_composes_with_its_budget_and_protocol(path, tmp_path):
    try:
        spec = load_spec(experiments_dir() / path)
    except StudyError as err:
        assert "not a study file" in str(err)
        return
    assert spec.name == Path(path).stem  # the default study_dir is runs/studies/<file name>
    if path.endswith("_quick.yaml"):
        assert "trainer=cpu" in spec.common  # quick studies run on the CPU of a laptop or CI
    node = {k: v for k, v in spec.to_dict().items() if k in KEYS}
    spec = parse_spec({**node, "seeds": spec.seeds[:1]})
    text = tmp_path / "text.txt"
    text.write_text("To be, or not to be, that is the question. " * 400)
    planned = plan(spec, tmp_path, [f"data.path={text}"])  # text studies read a local file
    if any("Could not override 'data.path'" in (pr.error or "") for pr in planned):
        planned = plan(spec, tmp_path, [])  # their data have no path (embedded, or set by the study)
    skipped = [pr.key for pr in planned if pr.error and not installed(pr.error)]
    for pr in planned:
        if pr.key in skipped:
            continue
        assert pr.error is None, pr.error
        cfg = pr.cfg
        for key in ("max_steps", "max_epochs"):
            assert cfg.trainer[key] == spec.budget.get(key, -1)
        assert cfg.logger.wandb.group == spec.name and spec.name in cfg.logger.wandb.tags
        assert cfg.run_dir == str(tmp_path / pr.key)
    if len(skipped) == len(planned):
        pytest.skip(f"{path}: its models are not installed yet ({', '.join(skipped)})")


def inspect(offline_run: Path) -> list[dict]:
    out = subprocess.run(
        [WANDB, "leet", "inspect", "--json", str(offline_run)], capture_output=True, text=True, timeout=120, check=True
    ).stdout
    return [json.loads(line) for line in out.splitlines()]


@pytest.mark.skipif(WANDB is None, reason="wandb command not installed")
def test_wandb_groups_the_runs_and_gets_the_comparison_table(tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_DATA_DIR", str(tmp_path / "wandb_data"))
    common = [o if o != "logger=none" else "logger=wandb" for o in MINI["common"]]
    spec = write_study(tmp_path / "w.yaml", name="wgroup", seeds=[0], runs={"mlp": ["model=vae"]}, common=common)
    study_dir = tmp_path / "out"
    cli.main(["study", str(spec), f"study_dir={study_dir}"])
    # the study wrote its report, and the W&B report run

    (train_run,) = (study_dir / "mlp_seed0" / "wandb").glob("offline-run-*")
    records = inspect(train_run)
    run = next(r["run"] for r in records if r["type"] == "run")
    assert run["run_group"] == "wgroup" and run["job_type"] == "train"
    assert {"wgroup", "mlp", "vae", "digits"} <= set(run["tags"])
    defined = {r["metric"]["name"]: r["metric"] for r in records if r["type"] == "metric" and "name" in r["metric"]}
    assert defined["val/elbo"]["summary"] == {"max": True, "last": True}
    assert defined["val/kl"]["summary"] == {"last": True}  # a diagnostic: the VAE declares no direction for it

    (report_run,) = (study_dir / "wandb").glob("offline-run-*")
    run = next(r["run"] for r in inspect(report_run) if r["type"] == "run")
    assert run["run_group"] == "wgroup" and run["job_type"] == "report"
    (table_file,) = report_run.glob("files/media/table/comparison_*.table.json")
    table = json.loads(table_file.read_text())
    row = dict(zip(table["columns"], table["data"][0]))
    report = json.loads((study_dir / "report.json").read_text())
    assert row["run"] == "mlp" and row["val/elbo mean"] == report["rows"][0]["metrics"]["val/elbo"]["mean"]
    assert row["val/elbo mean"] == metrics(study_dir / "mlp_seed0")["final"]["val/elbo"]

    cli.main(["report", str(study_dir)])  # the same results: not logged a second time
    assert len(list((study_dir / "wandb").glob("offline-run-*"))) == 1


def test_report_whose_wandb_run_cannot_start_still_writes_its_files(reference, tmp_path, monkeypatch):
    """W&B (reached through tracking.log_report) that cannot start warns; the report files are written anyway."""
    study_dir = shutil.copytree(reference, tmp_path / "study")
    (study_dir / "report.md").unlink()
    monkeypatch.setenv("WANDB_MODE", "online")
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.setenv("WANDB_BASE_URL", "http://127.0.0.1:9")  # nothing listens there: no network
    monkeypatch.setenv("WANDB_CONFIG_DIR", str(tmp_path / "wandb_config"))
    with pytest.warns(UserWarning, match="the W&B report run could not be written"):
        cli.main(["report", str(study_dir), "wandb=true"])
    assert (study_dir / "report.md").read_text() == (reference / "report.md").read_text()
    assert not (study_dir / "wandb_report.json").exists()  # nothing recorded as logged: the next report tries again


@pytest.mark.slow
def test_hydra_launcher_runs_and_resumes_the_study(tmp_path):
    """launcher=hydra: the runs go through `gen-lightning fit --multirun` (basic launcher, this machine)."""
    spec = write_study(tmp_path / "h.yaml", name="hydra_mini", runs={"mlp": ["model=vae"]})
    study_dir = tmp_path / "out"
    cli.main(["study", str(spec), f"study_dir={study_dir}", "launcher=hydra", "report=false"])
    index = json.loads((study_dir / "study.json").read_text())
    assert {k: v["status"] for k, v in index["runs"].items()} == {"mlp_seed0": "completed", "mlp_seed1": "completed"}
    assert [metrics(study_dir / f"mlp_seed{s}")["global_step"] for s in (0, 1)] == [STEPS, STEPS]

    # mlp_seed1 killed after its last checkpoint: the next call resumes it (a resume sweep) and skips mlp_seed0.
    summary = metrics(study_dir / "mlp_seed1")
    (study_dir / "mlp_seed1" / "metrics.json").write_text(json.dumps({**summary, "status": "running"}))
    done = snapshot(study_dir / "mlp_seed0")
    cli.main(["study", str(spec), f"study_dir={study_dir}", "launcher=hydra", "report=false"])
    assert metrics(study_dir / "mlp_seed1")["status"] == "completed"
    assert metrics(study_dir / "mlp_seed1")["final"] == summary["final"]
    assert snapshot(study_dir / "mlp_seed0") == done
    assert json.loads((study_dir / "study.json").read_text())["runs"]["mlp_seed1"]["attempts"] == 2


def test_text_study_report_has_the_unigram_baseline_over_seeds(tmp_path):
    """Runs of several seeds share the data (only the window order differs): the report gives the baseline, equal
    to the training text's add-one smoothed token frequencies scored on the same validation windows."""
    node = {
        "name": "text_mini",
        "seeds": [0, 1],
        "budget": {"max_steps": 4},
        "common": [
            "data=text_embedded",
            "data.block_size=16",
            "data.batch_size=8",
            "data.train_stride=2000",
            "logger=none",
            "trainer.enable_progress_bar=false",
            "model.hidden_dim=16",
        ],  # fmt: skip
        "protocol": ["metrics=none", "trainer.limit_val_batches=2"],
        "runs": {"lstm": ["model=lstm"]},
    }
    spec = tmp_path / "text_mini.yaml"
    spec.write_text(yaml.safe_dump({"study": node}, sort_keys=False))
    cli.main(["study", str(spec), f"study_dir={tmp_path / 'out'}"])
    baseline = json.loads((tmp_path / "out" / "report.json").read_text())["baseline"]
    assert baseline["validation_windows"] == 16

    from hydra.utils import instantiate
    from omegaconf import OmegaConf

    dm = instantiate(OmegaConf.load(tmp_path / "out" / "lstm_seed0" / "config.yaml").data)
    dm.setup("fit")
    counts = torch.bincount(dm.train_set.ids.long(), minlength=dm.tokenizer.vocab_size).double() + 1
    targets = torch.cat([dm.val_set[i][1] for i in range(16)])
    expected = -sum(math.log2(counts[t] / counts.sum()) for t in targets.tolist()) / len(targets)
    assert baseline["unigram_bpc"] == pytest.approx(expected, rel=1e-9)
    assert "unigram model of the training text" in (tmp_path / "out" / "report.md").read_text()
