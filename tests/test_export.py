"""Exports (gen_lightning/export/, ``gen-lightning export``): every family loads back equal from safetensors and JSON,
without pickle and without importing anything undeclared; damaged exports and unusable out folders are named.

Each family is built from its tiny preset as the contract test builds it, its parameters moved off their
initialisation (so that a live network and its EMA copy differ, and an export that swapped or dropped them is seen),
and saved as gen-lightning saves a checkpoint. One real run (the VAE, trained in-process) checks the command line
and the model card.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from conftest import tiny_overrides
from PIL import Image
from test_contract import MODELS, build, draw
from test_resume import FAMILIES

from gen_lightning import cli
from gen_lightning.callbacks.resume import STATE_KEY
from gen_lightning.config import compose
from gen_lightning.export import ExportError, export_checkpoint, load_module, weights
from gen_lightning.export.weights import split_aliases
from gen_lightning.run import checkpoint as ckpt_io
from gen_lightning.run import declared, train
from gen_lightning.run_dir import EvaluationFiles
from gen_lightning.tasks import task_of

# The resume test's families, the VAE, the latent model (a frozen sub-model kept in its own state) and a classifier.
EXPORTED = sorted({*FAMILIES, "vae", "latent_ddpm", "gpt_classifier"} & set(MODELS))


MOVED = ("weight", "bias", "running_mean")


def moved_checkpoint(name: str, tmp_path: Path):
    """A checkpoint of ``name`` as gen-lightning writes one, its parameters moved off their initialisation."""
    _, dm, module = build(name, tmp_path / "run")
    g = torch.Generator().manual_seed(1)
    # Tied parameters are listed once, so they stay tied. Buffers that hold weights (SRGAN's classifier features)
    # or statistics (batch norm's means) move too; a noise schedule does not.
    moved = [*module.parameters(), *(b for n, b in module.named_buffers() if n.rpartition(".")[2].startswith(MOVED))]
    with torch.no_grad():
        for t in moved:
            if t.is_floating_point():
                t.add_(0.01 * torch.randn(t.shape, generator=g))
    cls = type(module)
    path = tmp_path / "model.ckpt"
    torch.save(
        {
            "state_dict": module.state_dict(),
            "hyper_parameters": dict(module.hparams),
            "global_step": 7,
            "epoch": 0,
            STATE_KEY: {"target": f"{cls.__module__}.{cls.__qualname__}"},
        },
        path,
    )
    return path, dm, module.eval()


def assert_same_state(a: torch.nn.Module, b: torch.nn.Module) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for k in sa:
        assert sa[k].dtype == sb[k].dtype and torch.equal(sa[k], sb[k]), f"{k} differs after export"


@pytest.mark.parametrize("name", EXPORTED)
def test_every_family_loads_back_equal(name, tmp_path):
    ckpt, dm, module = moved_checkpoint(name, tmp_path)
    out = export_checkpoint(ckpt, tmp_path / "export")
    loaded = load_module(out)

    assert type(loaded) is type(module)
    assert_same_state(loaded, module)
    assert ckpt_io._comparable(dict(loaded.hparams)) == ckpt_io._comparable(dict(module.hparams))
    first, again = draw(loaded, 4, dm, seed=3), draw(module, 4, dm, seed=3)
    assert torch.equal(first, again) if isinstance(first, torch.Tensor) else first == again
    config = json.loads((out / "config.json").read_text())
    assert config["class"] == declared.path_of(type(module))
    assert dict(zip(("task", "source_modality", "modality"), task_of(module))) == config["task"]
    for key in ("channels", "image_size", "num_classes", "class_names"):
        assert config["data"].get(key) == module.hparams.get(key)
    if name == "srgan":  # the classifier features of its perceptual loss: buffers that matter
        assert loaded.classifier_features.weight1.abs().sum() > 0
    if "tokenizer" in module.hparams:  # the tokenizer's file, not its vocabulary inside the config
        assert (out / config["data"]["tokenizer"]["file"]).is_file() and "tokenizer" not in config["hparams"]


def test_tied_weights_are_written_once_and_stay_tied(tmp_path):
    ckpt, _, module = moved_checkpoint("gpt", tmp_path)
    out = export_checkpoint(ckpt, tmp_path / "export")
    aliases = json.loads((out / "config.json").read_text())["weights"]["aliases"]
    assert aliases == {"net.head.weight": "net.transformer.tok_emb.weight"}
    loaded = load_module(out)
    assert loaded.net.head.weight is loaded.net.transformer.tok_emb.weight
    assert torch.equal(loaded.net.head.weight, module.net.head.weight)


def test_views_and_non_contiguous_tensors_round_trip(tmp_path):
    base = torch.arange(12.0).reshape(3, 4)
    state = {"base": base, "same": base, "row": base[1], "transposed": base.t(), "empty": torch.zeros(0)}
    tensors, aliases = split_aliases(state)
    assert aliases == {"same": "base"}
    assert all(t.is_contiguous() for t in tensors.values())
    pointers = [t.untyped_storage().data_ptr() for k, t in tensors.items() if k != "empty"]
    assert len(set(pointers)) == len(pointers), "each written tensor owns its memory (safetensors refuses sharing)"
    entry = weights.save(state, tmp_path / "w.safetensors")  # safetensors' save_file would refuse this state
    back = weights.load(tmp_path, entry)
    assert back.keys() == state.keys() and all(torch.equal(back[k], state[k]) for k in state)
    assert back["same"] is back["base"]


def test_a_subword_tokenizer_is_written_as_the_tokenizers_library_reads_it(tmp_path):
    from tokenizers import Tokenizer

    ckpt, _, module = moved_checkpoint("transformer_seq2seq", tmp_path)
    out = export_checkpoint(ckpt, tmp_path / "export")
    entry = json.loads((out / "config.json").read_text())["data"]["tokenizer"]
    if module.hparams.tokenizer["kind"] != "subword":
        pytest.skip("the seq2seq preset uses no subword tokenizer")
    tok = Tokenizer.from_file(str(out / entry["file"]))
    assert tok.get_vocab_size() == module.hparams.tokenizer["vocab_size"] == entry["vocab_size"]


def test_an_undeclared_class_is_refused_before_any_import(tmp_path, monkeypatch):
    ckpt, _, _ = moved_checkpoint("vae", tmp_path)
    out = export_checkpoint(ckpt, tmp_path / "export")
    config = json.loads((out / "config.json").read_text())
    (out / "config.json").write_text(json.dumps({**config, "class": "os.system"}))
    imported = []
    monkeypatch.setattr(declared.importlib, "import_module", lambda name: imported.append(name))
    with pytest.raises(declared.UndeclaredTarget, match="names 'os.system'.*neither imported nor called"):
        load_module(out)
    assert imported == []


def test_damaged_weights_are_named(tmp_path):
    ckpt, _, _ = moved_checkpoint("vae", tmp_path)
    out = export_checkpoint(ckpt, tmp_path / "export")
    weights = out / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-3] ^= 0xFF  # one flipped bit pattern in the last tensor: safetensors alone would load it
    weights.write_bytes(bytes(data))
    with pytest.raises(ExportError, match=r"model.safetensors' is corrupt or truncated: its SHA-256 differs"):
        load_module(out)
    # Without a recorded checksum (a hand-edited config), safetensors' own check of a cut file is reported.
    config = json.loads((out / "config.json").read_text())
    config["weights"].pop("sha256")
    (out / "config.json").write_text(json.dumps(config))
    weights.write_bytes(bytes(data[: len(data) // 2]))
    with pytest.raises(ExportError, match=r"model.safetensors' is not a readable safetensors file"):
        load_module(out)


def test_a_folder_that_is_not_an_export_is_named(tmp_path):
    with pytest.raises(ExportError, match="has no config.json"):
        load_module(tmp_path)
    (tmp_path / "config.json").write_text('{"model_type": "gpt2"}')  # a Hugging Face folder
    with pytest.raises(ExportError, match="is not a gen-lightning export"):
        load_module(tmp_path)


# ---- a real run, through the command line --------------------------------------------------------------
@pytest.fixture(scope="module")
def vae_run(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("export") / "vae"
    train.fit(compose(tiny_overrides(run_dir, "trainer.max_steps=12", "trainer.val_check_interval=6")))
    return run_dir


def test_the_command_exports_a_run_and_sample_reads_the_export(vae_run, tmp_path, monkeypatch):
    out = tmp_path / "vae-export"
    # An evaluation of the checkpoint on the test split, as `gen-lightning evaluate split=test` records it.
    evaluation = EvaluationFiles.of(vae_run / "checkpoints" / "last.ckpt", ".test").result
    protocol = {"protocol": "classifier", "split": "test", "num_samples": 500, "seed": 4, "global_step": 12}
    evaluation.write_text(json.dumps({"metrics": {"test/fid_clf": 31.25}, "protocol": protocol}))
    cli.main(["export", f"ckpt={vae_run}", f"out={out}"])  # a run directory: its last.ckpt
    assert sorted(p.name for p in out.iterdir()) == ["README.md", "config.json", "model.safetensors"]
    card = (out / "README.md").read_text()
    summary = json.loads((vae_run / "metrics.json").read_text())
    elbo = next(r for r in summary["history"] if r["step"] == 12)["val/elbo"]
    for fact in ("gen_lightning.vae.module.VAE", "step 12", "source: digits", "seed 0", f"{elbo:.6g}",
                 "load_module(", f"gen-lightning sample ckpt={out}", "### last.test.eval.json",
                 "| `test/fid_clf` | 31.25 |", "num_samples: 500"):  # fmt: skip
        assert fact in card, f"the model card lacks {fact!r}"

    monkeypatch.chdir(tmp_path)
    cli.main(["sample", f"ckpt={out}", "n=8", "seed=5"])  # no out=: the current directory, not the export
    cli.main(["sample", f"ckpt={vae_run / 'checkpoints' / 'last.ckpt'}", "n=8", "seed=5", "out=from_ckpt.png"])
    assert torch.equal(_pixels(tmp_path / "sample.png"), _pixels(tmp_path / "from_ckpt.png"))
    assert sorted(p.name for p in out.iterdir()) == ["README.md", "config.json", "model.safetensors"]

    cli.main(["export", f"ckpt={vae_run / 'checkpoints' / 'best.ckpt'}", f"out={out}"])  # an earlier export: replaced
    assert json.loads((out / "config.json").read_text())["trained"]["checkpoint"].endswith("best.ckpt")


def _pixels(path: Path) -> torch.Tensor:
    with Image.open(path) as img:
        return torch.tensor(list(img.getdata()))


def test_the_command_names_what_it_cannot_use(vae_run, tmp_path, capsys):
    def refused(*args: str) -> str:
        with pytest.raises(SystemExit) as exc:
            cli.main(["export", *args])
        return str(exc.value)

    assert "does not exist" in refused(f"ckpt={tmp_path / 'none.ckpt'}", f"out={tmp_path / 'a'}")
    cut = tmp_path / "cut.ckpt"
    cut.write_bytes((vae_run / "checkpoints" / "last.ckpt").read_bytes()[:2000])
    assert "is corrupt or truncated" in refused(f"ckpt={cut}", f"out={tmp_path / 'a'}")
    assert "without checkpoints/last.ckpt" in refused(f"ckpt={tmp_path}", f"out={tmp_path / 'a'}")
    message = refused(f"ckpt={vae_run}", f"out={vae_run}")  # the run directory itself
    assert "already holds files that are not part of an export (.hydra" in message or "config.yaml" in message
    assert not (vae_run / "model.safetensors").exists()
    assert "unknown argument 'foo'" in refused(f"ckpt={vae_run}", f"out={tmp_path / 'a'}", "foo=1")
    assert "format=onnx is not one of" in refused(f"ckpt={vae_run}", f"out={tmp_path / 'a'}", "format=onnx")
    assert not (tmp_path / "a").exists()
    hf = tmp_path / "hf"
    hf.mkdir()
    (hf / "config.json").write_text('{"model_type": "gpt2"}')  # a Hugging Face folder: only known file names
    assert "holds a config.json that is not a gen-lightning export's" in refused(f"ckpt={vae_run}", f"out={hf}")
    assert (hf / "config.json").read_text() == '{"model_type": "gpt2"}'


def test_evaluate_names_the_run_an_export_came_from(vae_run, tmp_path):
    out = export_checkpoint(vae_run / "checkpoints" / "last.ckpt", tmp_path / "export")
    with pytest.raises(SystemExit, match="is an export, which holds the model but not the data"):
        cli.main(["evaluate", f"ckpt={out}"])
