"""The names of a run directory's files (gen_lightning/run_dir.py): saved runs and their readers rely on them."""

from __future__ import annotations

from gen_lightning.run_dir import EvaluationFiles, RunDir, step_name


def test_every_file_of_a_run_directory_keeps_its_name(tmp_path):
    run = RunDir(tmp_path)
    names = {
        run.config: "config.yaml",
        run.metrics: "metrics.json",
        run.last: "checkpoints/last.ckpt",
        run.best: "checkpoints/best.ckpt",
        run.sample("samples", 40): "samples/samples/step0000040",  # the writer adds .png, .txt or .tsv
        run.sample("tunes", 1234567): "samples/tunes/step1234567",
        run.figure("confusion_matrix", 40): "figures/confusion_matrix/step0000040.png",
        run.sampled("sample.png"): "sample.png",
        run.evaluation("fid_ddim"): "evaluations/fid_ddim.json",
        run.wandb_id: "wandb_run_id.txt",
        run.mlflow_id: "mlflow_run_id.txt",
        run.error: "error.txt",
        run.log: "train.log",
        run.resumes: "resumes.jsonl",
        run.data_fingerprint: "data_fingerprint.json",
    }
    assert {str(path.relative_to(tmp_path)): name for path, name in names.items()} == {n: n for n in names.values()}
    assert sorted([step_name(100), step_name(20), step_name(3)]) == ["step0000003", "step0000020", "step0000100"]
    files = EvaluationFiles.of(run.last, ".test")
    assert (files.result, files.history, files.outputs, files.figure("confusion_matrix")) == (
        tmp_path / "checkpoints/last.test.eval.json",
        tmp_path / "checkpoints/last.test.evaluations.jsonl",
        tmp_path / "checkpoints/last.test.outputs.txt",
        tmp_path / "checkpoints/last.test.confusion_matrix.png",
    )
