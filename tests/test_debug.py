"""Debug presets (conf/debug/): ``debug=fast`` over every model x every data config it fits, and overfit, profile,
anomaly on a tiny model. Data configs that need a local path get small real files (the scikit-learn digits as
images and parquet, a text file); those that need the hub are left out (tests never touch the network)."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from conftest import preset, tiny_overrides
from hydra.utils import get_class
from omegaconf import OmegaConf

from gen_lightning.config import compose, config_dir
from gen_lightning.run import train
from gen_lightning.tasks import data_for, task_of

TOY_CONF = Path(__file__).parent / "toy_family" / "conf"


def digits_images(n: int = 40):
    """The first ``n`` scikit-learn digits as 8-bit PIL images, with their labels."""
    from PIL import Image
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = (digits.images[:n] * 255 / 16).astype("uint8")
    return [(Image.fromarray(img), int(y)) for img, y in zip(images, digits.target)]


def image_folder(tmp: Path) -> list[str]:
    for i, (img, label) in enumerate(digits_images()):
        (tmp / "folder" / str(label)).mkdir(parents=True, exist_ok=True)
        img.save(tmp / "folder" / str(label) / f"{i}.png")
    return [f"data.path={tmp / 'folder'}"]


def parquet(tmp: Path) -> list[str]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = []
    for img, label in digits_images():
        buf = io.BytesIO()
        img.save(buf, format="PNG")
        rows.append({"image": {"bytes": buf.getvalue(), "path": None}, "label": label})
    pq.write_table(pa.Table.from_pylist(rows), tmp / "digits.parquet")
    return [f"data.path={tmp / 'digits.parquet'}"]


def text_file(tmp: Path) -> list[str]:
    import pydoc_data.topics

    (tmp / "input.txt").write_text(pydoc_data.topics.topics["for"] * 3, encoding="utf-8")
    return [f"data.path={tmp / 'input.txt'}", "data.block_size=16", "data.batch_size=8"]


def embedded_text(tmp: Path) -> list[str]:
    return ["data.block_size=16", "data.batch_size=8", "data.train_stride=2000"]


def paired_folders(tmp: Path) -> list[str]:
    """``A/`` holds each digit's edges-free 4x4 shrink, ``B/`` the digit, under matching names."""
    for sub in ("A", "B"):
        (tmp / "pairs" / sub).mkdir(parents=True, exist_ok=True)
    for i, (img, _) in enumerate(digits_images(24)):
        img.resize((4, 4)).save(tmp / "pairs" / "A" / f"{i}.png")
        img.save(tmp / "pairs" / "B" / f"{i}.png")
    return [f"data.path={tmp / 'pairs'}", "data.channels=1", "data.batch_size=4"]


def parallel_text(tmp: Path) -> list[str]:
    """Aligned SPLIT.de / SPLIT.en line files (a few real-looking sentence pairs)."""
    pairs = [
        ("ein hund läuft", "a dog runs"),
        ("eine katze schläft", "a cat sleeps"),
        ("zwei männer spielen", "two men play"),
        ("ein kind lacht", "a child laughs"),
    ] * 4
    for split in ("train", "val", "test"):
        (tmp / f"{split}.de").write_text("\n".join(s for s, _ in pairs) + "\n", encoding="utf-8")
        (tmp / f"{split}.en").write_text("\n".join(t for _, t in pairs) + "\n", encoding="utf-8")
    return [f"data.path={tmp}", "data.vocab_size=300", "data.batch_size=4"]


def unpaired(tmp: Path) -> list[str]:
    """Both domains embedded (the digits, and the digits shrunk into a frame): MNIST is on the hub."""
    return [o for o in preset("cyclegan") if o.startswith("data.")]


# How each data config runs here: small local files where it needs a path.
LOCAL = {"digits": lambda tmp: [], "image_folder": image_folder, "parquet": parquet, "text": text_file}
LOCAL |= {"text_embedded": embedded_text, "paired": lambda tmp: [], "paired_folders": paired_folders}
LOCAL |= {"unpaired": unpaired, "translation": parallel_text}
# Both embedded (music21's corpora): Essen tunes for the language models, Essen regions for the classifiers.
LOCAL |= {"music": embedded_text, "text_classification": lambda tmp: ["data.max_length=48", "data.batch_size=8"]}
# Sentences: the embedded default; the oracle shrunk (its full 5,000-token oracle takes a minute to draw).
TINY_ORACLE = ["data.vocab_size=50", "data.num_train=64", "data.num_test=16", "data.hidden_dim=8", "data.batch_size=8"]
LOCAL |= {"sentences": lambda tmp: ["data.batch_size=8"], "oracle": lambda tmp: TINY_ORACLE}


# Pairs whose task fits but whose data the model refuses, with the words of its error.
UPSAMPLES = "super-resolution upsamples by 2, 4 or 8"
REFUSES = {("pix2pix", "unpaired"): "unpaired", ("srresnet", "unpaired"): UPSAMPLES, ("srgan", "unpaired"): UPSAMPLES}
REFUSES |= {("srgan", "paired_folders"): "these data have none: give the data labels"}
# The tiny preset's autoencoder (tests/fixtures) was trained on the 8x8 digits: other image sizes need their own VAE.
REFUSES |= {("latent_ddpm", data): "autoencoder .* takes 1x8x8 images" for data in ("image_folder", "parquet")}
SAME_SIZE = {"cyclegan", "pix2pix"}  # image translators whose input and output have one size


def needs_network(data: str) -> bool:
    node = OmegaConf.load(config_dir() / "data" / f"{data}.yaml")
    if node.get("source") == "hub":
        return True
    # A hub name that must be given (???) or is set; `hub_name: null` is an option for users who have the hub.
    return "hub_name" in list(node) and (OmegaConf.is_missing(node, "hub_name") or node.hub_name is not None)


MODELS = sorted(p.stem for p in (config_dir() / "model").glob("*.yaml"))


@pytest.mark.parametrize("model", [*MODELS, "toy_unmirror"])
def test_debug_fast_runs_every_model_on_every_data_it_fits(model, tmp_path):
    """Every data config whose task the model's fits (``config.data_for``), except those on the hub."""
    toy = [f"hydra.searchpath=[file://{TOY_CONF}]"] if model == "toy_unmirror" else []
    task = task_of(get_class(compose([*toy, f"model={model}", "logger=none"]).model._target_))
    fits = ["toy_mirrored"] if toy else [d for d in data_for(task) if not needs_network(d)]
    assert fits, f"no data config to run model={model} on"
    for data in fits:
        assert toy or data in LOCAL, f"no local files for data={data}: add a recipe to LOCAL in tests/test_debug.py"
        local = toy or LOCAL[data](tmp_path)
        if model in SAME_SIZE and data.startswith("paired"):
            local = [*local, "data.source_image_size=8"]  # translators keep the size: inputs resized up to it
        shrink = [o for o in preset(model) if not o.startswith("data")]  # the tiny model, on each data config
        run_dir = tmp_path / data
        cfg = compose([f"run_dir={run_dir}", f"model={model}", f"data={data}", *local, *shrink, "debug=fast"])
        if (model, data) in REFUSES:  # the task fits, the data do not: a clear error, not a crash mid-run
            with pytest.raises(Exception, match=REFUSES[model, data]):
                train.fit(cfg)
            continue
        assert cfg.trainer.fast_dev_run and not cfg.logger and not cfg.metrics
        summary = train.fit(cfg)
        assert summary["status"] == "completed" and summary["global_step"] >= 1, data
        assert summary["monitor"] in summary["final"], f"data={data}: one validation batch gives the monitored metric"
        assert any(p.is_file() for p in (run_dir / "samples").rglob("*")), f"data={data}: previews must be written"


def tiny(run_dir: Path, *extra: str, model: str = "vae"):
    return compose(tiny_overrides(run_dir, *extra, model=model))


def test_overfit_drives_a_language_models_loss_to_near_zero(tmp_path, capsys):
    fast = ("model.dropout=0.0", "model.lr=1e-2", "model.warmup_steps=0")
    cfg = tiny(tmp_path / "gpt", "debug=overfit", "trainer.max_epochs=100", *fast, model="gpt")
    assert cfg.trainer.overfit_batches == 2 and cfg.callbacks.overfit_check
    train.fit(cfg)
    line = next(x for x in capsys.readouterr().out.splitlines() if x.startswith("overfit check"))
    first, last = (float(v) for v in line.split("train/loss ")[1].split(" over")[0].split(" -> "))
    assert line.endswith("near zero: passed") and last < 0.1 * first and last < 0.5, line


def test_overfit_check_flags_a_model_that_does_not_learn(tmp_path, capsys):
    frozen = ("model.lr=1e-9", "model.min_lr=0")
    cfg = tiny(tmp_path / "frozen", "debug=overfit", "trainer.max_epochs=10", *frozen, model="gpt")
    with pytest.warns(UserWarning, match="overfit check: train/loss did not fall"):
        train.fit(cfg)
    assert "NOT falling" in capsys.readouterr().out


@pytest.mark.parametrize("profiler", ["SimpleProfiler", "AdvancedProfiler"])
def test_profile_writes_its_report_into_the_run_directory(tmp_path, profiler):
    run_dir = tmp_path / profiler
    target = f"trainer.profiler._target_=lightning.pytorch.profilers.{profiler}"
    train.fit(tiny(run_dir, "debug=profile", target, "trainer.max_steps=6", "trainer.val_check_interval=3"))
    report = (run_dir / "fit-profile.txt").read_text()
    # The simple profiler times Lightning's hooks; the advanced one is cProfile's table of functions.
    assert ("run_training_batch" in report) if profiler == "SimpleProfiler" else ("function calls" in report)


def test_anomaly_names_the_forward_operation_that_made_a_nan(tmp_path):
    cfg = tiny(tmp_path / "r", "debug=anomaly", "trainer=ddp", "trainer.accelerator=cpu", "model.lr=1e4")
    assert cfg.trainer.detect_anomaly and cfg.trainer.devices == 1 and cfg.trainer.strategy == "auto"
    with pytest.warns(UserWarning, match="Error detected in .*Backward"), pytest.raises(RuntimeError, match="nan"):
        train.fit(cfg)
