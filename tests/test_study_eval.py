"""Study evaluation variants: one trained model sampled and scored again with other sampler settings."""

from __future__ import annotations

import json

import pytest
import yaml
from test_study import MINI, snapshot

from gen_lightning import cli
from gen_lightning.config import config_dir

TINY_DDPM = [
    "model=ddpm",
    "model.hidden_dim=8",
    "model.channel_mult=[1,2]",
    "model.attention_resolutions=[]",
    "model.num_res_blocks=1",
    "model.num_timesteps=40",
    "model.sample_steps=5",
    "model.sample_time_batch=2",
    "model.warmup_steps=1",
]
DIFFUSION = {
    **MINI,
    "name": "samplers",
    "seeds": [0],
    "budget": {"max_steps": 4},
    "common": ["data=digits", "logger=none", "trainer.enable_progress_bar=false"],
    "runs": {"ddpm": TINY_DDPM},
    "evaluations": {
        "ancestral": ["model.sampler=ddpm"],
        "ddim_2": ["model.sampler=ddim", "model.sample_steps=2"],
        "typo": ["model.sampler=dimm"],  # a parameter of DDPM, a value it refuses when it samples
    },
}


def test_evaluation_variants_of_one_trained_model(tmp_path, capsys):
    spec = tmp_path / "samplers.yaml"
    spec.write_text(yaml.safe_dump({"study": DIFFUSION}, sort_keys=False))
    study_dir = tmp_path / "out"
    with pytest.raises(
        SystemExit, match=r"1 of 3 evaluations of study 'samplers' did not complete: ddpm_seed0/typo \(failed\)"
    ):
        cli.main(["study", str(spec), f"study_dir={study_dir}"])
    run_dir = study_dir / "ddpm_seed0"
    results = {n: json.loads((run_dir / "evaluations" / f"{n}.json").read_text()) for n in DIFFUSION["evaluations"]}
    ancestral, ddim = results["ancestral"], results["ddim_2"]
    assert ancestral["status"] == ddim["status"] == "completed"
    assert ancestral["sample_info"]["sampler"] == "ddpm" and ancestral["sample_info"]["steps"] == 40
    assert ddim["sample_info"]["sampler"] == "ddim" and ddim["sample_info"]["steps"] == 2
    assert ancestral["global_step"] == ddim["global_step"] == 4  # both from the one trained checkpoint
    assert ancestral["sample_time"] > ddim["sample_time"] > 0  # 40 network evaluations per image against 2
    assert (run_dir / "evaluations" / "ddim_2.png").is_file() and "metrics=none" in ddim["note"]
    assert results["typo"]["status"] == "failed" and "dimm" in (results["typo"]["error"])
    index = json.loads((study_dir / "study.json").read_text())
    assert index["evaluations"]["ddpm_seed0/ddim_2"]["status"] == "completed"

    before = snapshot(run_dir / "evaluations")
    capsys.readouterr()
    with pytest.raises(SystemExit, match="1 of 3 evaluations of study 'samplers' did not complete"):
        cli.main(["study", str(spec), f"study_dir={study_dir}", "report=false"])
    assert "ddpm_seed0/ancestral: done before, skipped" in capsys.readouterr().out
    after = snapshot(run_dir / "evaluations")
    assert {k: after[k] for k in after if "typo" not in k} == {k: before[k] for k in before if "typo" not in k}

    # the first call wrote the report
    report = json.loads((study_dir / "report.json").read_text())
    rows = {row["evaluation"]: row for row in report["evaluations"]}
    assert list(rows) == ["ancestral", "ddim_2", "typo"]  # the study file's order
    assert rows["ddim_2"]["sample_time_s"]["mean"] == pytest.approx(ddim["sample_time"])
    md = (study_dir / "report.md").read_text()
    assert "## Evaluations of the trained checkpoints" in md and "`model.sampler=ddim model.sample_steps=2`" in md
    assert "evaluation `typo` of `ddpm_seed0`" in md


def test_an_evaluation_naming_no_parameter_of_the_model_refuses_the_study(tmp_path):
    """Known before training: the variant could never apply to the trained checkpoint."""
    node = {**DIFFUSION, "evaluations": {"typo": ["model.sample_stepz=3"]}}
    spec = tmp_path / "samplers.yaml"
    spec.write_text(yaml.safe_dump({"study": node}, sort_keys=False))
    with pytest.raises(SystemExit, match=r"ddpm_seed0: evaluation 'typo' sets model.sample_stepz, which is not a "):
        cli.main(["study", str(spec), f"study_dir={tmp_path / 'out'}"])
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
def test_evaluation_scores_with_the_runs_metric_protocol(tmp_path):
    """With a metric protocol, each variant is scored as the metrics code scores the checkpoint directly."""
    metrics_pkg = pytest.importorskip("gen_lightning.metrics")
    if not (config_dir() / "metrics" / "classifier.yaml").is_file():
        pytest.skip("metrics=classifier is not installed")
    protocol = ["metrics=classifier", "metrics.num_samples=100", "metrics.kid_subset_size=50"]
    protocol += ["metrics.classifier.steps=50", "metrics.every_n_epochs=1"]
    node = {**DIFFUSION, "protocol": [*MINI["protocol"], *protocol[0:1], *protocol[1:]]}
    node["protocol"] = [p for p in node["protocol"] if p != "metrics=none"]
    node["evaluations"] = {"ddim_2": ["model.sampler=ddim", "model.sample_steps=2"]}
    spec = tmp_path / "samplers.yaml"
    spec.write_text(yaml.safe_dump({"study": node}, sort_keys=False))
    cli.main(["study", str(spec), f"study_dir={tmp_path / 'out'}", "report=false"])
    run_dir = tmp_path / "out" / "ddpm_seed0"
    result = json.loads((run_dir / "evaluations" / "ddim_2.json").read_text())
    assert result["status"] == "completed", result.get("error")
    card = result["protocol"]  # the metric protocol card names the variant's sampler, not the trained default
    assert (card["sample_sampler"], card["sample_steps"], card["num_samples"]) == ("ddim", 2, 100)

    from hydra.utils import instantiate
    from omegaconf import OmegaConf

    from gen_lightning.run.checkpoint import load_module

    cfg = OmegaConf.load(run_dir / "config.yaml")
    module = load_module(run_dir / "checkpoints" / "last.ckpt", {"sampler": "ddim", "sample_steps": 2})
    direct = metrics_pkg.evaluate_module(module, instantiate(cfg.data), cfg.metrics)
    assert result["metrics"] == pytest.approx(direct["metrics"])
