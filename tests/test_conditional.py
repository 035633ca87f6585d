"""Contract v2 end to end with a conditional family that lives only in the tests (tests/toy_family).

The toy family is plugged in with ``hydra.searchpath`` and nothing else: ``fit`` trains it and scores it with the
``paired_image`` protocol, ``evaluate`` re-scores the checkpoint to the logged value, ``sample input=...`` writes
its outputs for image files from disk, and inputs that do not fit are refused with a message.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from gen_lightning import cli
from gen_lightning.callbacks.samples import MIN_WIDTH, PADDING, TITLE_BAND, upscale
from gen_lightning.commands.evaluate import evaluate_command
from gen_lightning.commands.sample import OUTPUT_TITLES
from gen_lightning.config import note_search_path

TESTS = Path(__file__).resolve().parent
TOY = [f"hydra.searchpath=[file://{TESTS / 'toy_family' / 'conf'}]", "model=toy_unmirror", "data=toy_mirrored"]


@pytest.fixture(scope="module")
def toy_run(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("toy") / "run"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")])}
    args = [*TOY, f"run_dir={run_dir}", "logger=csv", "trainer.max_epochs=4", "trainer.enable_progress_bar=false"]
    proc = subprocess.run(
        [sys.executable, "-m", "gen_lightning.cli", "fit", *args], capture_output=True, text=True, env=env, timeout=600
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    note_search_path([TESTS / "toy_family" / "conf"])  # this process's commands are given the same search path
    return run_dir


def identity_psnr() -> float:
    """PSNR of the mirrored inputs themselves against the targets (the do-nothing baseline), in numpy."""
    from toy_family.data import MirroredDigits

    dm = MirroredDigits()
    dm.setup()
    pairs = dm.splits["val"]
    x = ((pairs.images.double() / 255).flip(-1)).numpy()
    y = (pairs.images.double() / 255).numpy()
    mse = ((x - y) ** 2).reshape(len(x), -1).mean(1)
    return float((10 * torch.log10(1 / torch.from_numpy(mse).clamp_min(1e-10))).mean())


def test_a_conditional_family_trains_and_is_scored_by_its_protocol(toy_run):
    summary = json.loads((toy_run / "metrics.json").read_text())
    assert summary["status"] == "completed"
    final = summary["final"]
    assert {"val/psnr", "val/ssim", "val/l1"} <= set(final)
    assert summary["protocol"]["protocol"] == "paired_image" and summary["protocol"]["split"] == "val"
    # Learned: far better than handing the mirrored input back.
    assert final["val/psnr"] > identity_psnr() + 3
    grids = sorted((toy_run / "samples" / "unmirrored").glob("step*.png"))
    # input | output | target, 8 px images scaled up to a readable grid (callbacks/samples.py), 2 px borders
    cell = 8 * upscale(8, 8, 3) + PADDING
    assert len(grids) == 4 and Image.open(grids[-1]).size[0] == 3 * cell + PADDING >= MIN_WIDTH


def test_evaluate_gives_the_logged_value_and_writes_beside_the_checkpoint(toy_run, capsys):
    ckpt = toy_run / "checkpoints" / "last.ckpt"
    result = evaluate_command([f"ckpt={ckpt}"])
    logged = json.loads((toy_run / "metrics.json").read_text())["final"]
    for name in ("val/psnr", "val/ssim", "val/l1"):
        assert result["metrics"][name] == pytest.approx(logged[name], rel=1e-6), name
    assert (
        json.loads((toy_run / "checkpoints" / "last.eval.json").read_text())["protocol"]["protocol"] == "paired_image"
    )
    # Another split is another file, and the protocol's subset size is an override like any other.
    result = evaluate_command([f"ckpt={ckpt}", "split=train", "metrics.num_items=50"])
    assert result["protocol"]["pairs"] == 50 and "train/psnr" in result["metrics"]
    assert (toy_run / "checkpoints" / "last.train.eval.json").is_file()
    # A second evaluation with other settings replaces the files, says so, and keeps the first one's numbers.
    capsys.readouterr()
    again = evaluate_command([f"ckpt={ckpt}", "split=train", "metrics.num_items=20"])
    assert "replaced the previous evaluation in last.train.eval.json" in capsys.readouterr().out
    history = (toy_run / "checkpoints" / "last.train.evaluations.jsonl").read_text().splitlines()
    first, second = (json.loads(line) for line in history)
    assert first["metrics"] == result["metrics"] and second["metrics"] == again["metrics"]
    assert (first["protocol"]["pairs"], second["protocol"]["pairs"]) == (50, 20)
    assert second["arguments"] == [f"ckpt={ckpt}", "split=train", "metrics.num_items=20"]
    # The same settings again: the same protocol, nothing to announce.
    evaluate_command([f"ckpt={ckpt}", "split=train", "metrics.num_items=20"])
    assert "replaced" not in capsys.readouterr().out
    with pytest.raises(SystemExit, match="hidden_dimm is not a parameter of Unmirror"):
        cli.main(["evaluate", f"ckpt={ckpt}", "model.hidden_dimm=3"])


def write_digits(folder: Path, n: int, size: int = 8, mode: str = "L") -> Path:
    from sklearn.datasets import load_digits

    folder.mkdir(parents=True, exist_ok=True)
    images = load_digits().images[:n]
    for i, img in enumerate(images):
        arr = (img[:, ::-1] * 255 / 16).astype("uint8")  # mirrored, as the model's inputs
        Image.fromarray(arr, mode="L").convert(mode).resize((size, size)).save(folder / f"digit{i}.png")
    return folder


def test_sample_takes_image_files_and_folders(toy_run, tmp_path):
    ckpt = toy_run / "checkpoints" / "last.ckpt"
    folder = write_digits(tmp_path / "in", 5, mode="RGB")  # RGB files for a grey model: converted
    cli.main(["sample", f"ckpt={ckpt}", f"input={folder}", f"out={tmp_path / 'grid.png'}"])
    cell = 8 * upscale(8, 8, 8, OUTPUT_TITLES) + PADDING  # input | output pairs, 4 a row, titled
    assert Image.open(tmp_path / "grid.png").size == (8 * cell + PADDING, TITLE_BAND + 2 * cell + PADDING)
    outputs = sorted((tmp_path / "grid").glob("*.png"))
    assert [p.name for p in outputs] == [f"digit{i}.png" for i in range(5)]
    # The output un-mirrors: closer to the upright digit than the mirrored input is.
    from sklearn.datasets import load_digits

    upright = torch.from_numpy(load_digits().images[0] / 16).float()
    out = torch.from_numpy(np.asarray(Image.open(outputs[0]).convert("L"), dtype="float32") / 255)
    mirrored = upright.flip(-1)
    assert (out - upright).abs().mean() < (mirrored - upright).abs().mean()


def test_inputs_that_do_not_fit_are_refused_with_what_was_expected(toy_run, tmp_path):
    ckpt = toy_run / "checkpoints" / "last.ckpt"
    big = write_digits(tmp_path / "big", 1, size=28)
    with pytest.raises(SystemExit, match="is 28x28, but the model takes 8x8 images; pass resize=true"):
        cli.main(["sample", f"ckpt={ckpt}", f"input={big}"])
    cli.main(["sample", f"ckpt={ckpt}", f"input={big}", "resize=true", f"out={tmp_path / 'r.png'}"])
    text = tmp_path / "a.txt"
    text.write_text("not an image\n")
    with pytest.raises(SystemExit, match="not a readable image"):
        cli.main(["sample", f"ckpt={ckpt}", f"input={text}"])
    with pytest.raises(SystemExit, match="takes images: pass input="):
        cli.main(["sample", f"ckpt={ckpt}", "source=hello"])
    with pytest.raises(SystemExit, match="give the model an input"):
        cli.main(["sample", f"ckpt={ckpt}"])
    (tmp_path / "empty").mkdir()
    with pytest.raises(SystemExit, match="holds no image files"):
        cli.main(["sample", f"ckpt={ckpt}", f"input={tmp_path / 'empty'}"])


def test_a_model_and_data_of_different_tasks_are_refused_before_anything_is_written(tmp_path):
    from gen_lightning.config import compose
    from gen_lightning.run import train

    cfg = compose([*TOY[:2], "data=digits", f"run_dir={tmp_path / 'run'}", "logger=none"])
    with pytest.raises(ValueError, match="Unmirror does conditional image -> image, but the data"):
        train.fit(cfg)
    cfg = compose(["model=gpt", "data=digits", f"run_dir={tmp_path / 'run'}", "logger=none"])
    with pytest.raises(ValueError, match=r"data configs that fit it: .*data=text, data=text_embedded"):
        train.fit(cfg)
    cfg = compose([*TOY, "metrics=classifier", f"run_dir={tmp_path / 'run'}", "logger=none"])
    with pytest.raises(ValueError, match="metrics=paired_image"):
        train.fit(cfg)
    assert not (tmp_path / "run").exists()


def test_the_history_holds_a_protocols_values_only_where_it_evaluated(tmp_path):
    from gen_lightning.config import compose
    from gen_lightning.run import train

    cfg = compose(
        [*TOY, f"run_dir={tmp_path / 'run'}", "logger=none", "trainer.max_epochs=4", "metrics.every_n_epochs=2"]
    )
    cfg.trainer.enable_progress_bar = False
    history = train.fit(cfg)["history"]
    assert [row["epoch"] for row in history] == [0, 1, 2, 3]
    assert ["val/psnr" in row for row in history] == [False, True, False, True]
    assert all("val/l1" in row for row in history)  # the model's own metric, every validation
