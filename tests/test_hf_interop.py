"""Hugging Face GPT-2 and BERT in this package (gen_lightning/interop/hf.py, run/init_from.py), against
``transformers`` as the reference: tiny randomly initialised models saved with ``save_pretrained`` (no network) give
the same logits in the project's networks to 1e-5; ``init_from=FOLDER`` fine-tunes a GPT classifier and trains a
BERT by MLM from the command line with the body's shape taken from the folder; a size on the command line that
contradicts the checkpoint is refused naming both values; ``export_hf`` writes modules that ``transformers`` loads
with equal logits; a model name not in the local cache is refused with the command that fetches it."""

from __future__ import annotations

import json
import shutil

import pytest
import torch
from hf_folders import bert_folder, gpt2_folder

pytest.importorskip("transformers")

from gen_lightning.classifier.module import TextClassifier  # noqa: E402
from gen_lightning.config import compose  # noqa: E402
from gen_lightning.interop import hf  # noqa: E402
from gen_lightning.run import init_from  # noqa: E402
from gen_lightning.transformer.bert import BERT  # noqa: E402
from gen_lightning.transformer.gpt import GPT  # noqa: E402

TOL = 1e-5


def project_model(cls, read: hf.HFModel, **extra):
    """The project module of ``cls`` with the folder's shape and weights (as init_from builds and fills it)."""
    h = dict(read.hparams)
    model = cls(h.pop("tokenizer"), **h, **extra).eval()
    pretrained = init_from.Pretrained(read.folder, read.target, read.hparams, read.state_dict, optional=("head.",))
    init_from.load_weights(model, pretrained)
    return model


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("hf")
    return {"gpt2": (root / "gpt2", gpt2_folder(root / "gpt2")), "bert": (root / "bert", bert_folder(root / "bert"))}


def test_gpt2_gives_the_logits_of_transformers_and_samples(folders):
    folder, reference = folders["gpt2"]
    read = hf.read(folder)
    assert read.hparams["activation"] == "gelu_tanh" and read.hparams["hidden_dim"] == 32
    model = project_model(GPT, read)
    ids = torch.randint(0, reference.config.vocab_size, (3, 40), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert torch.allclose(model(ids), reference(ids).logits, atol=TOL)
    text = "def f(x):\n    return x"
    assert model.tokenizer.decode(model.tokenizer.encode(text)) == text  # GPT-2's byte-level BPE round-trips
    assert len(model.sample(2, 8, prompt="The", generator=torch.Generator().manual_seed(0))) == 2


def test_bert_gives_the_logits_of_transformers_and_fills_masks(folders):
    folder, reference = folders["bert"]
    model = project_model(BERT, hf.read(folder))
    tok = model.tokenizer
    ids = torch.randint(0, reference.config.vocab_size, (3, 40), generator=torch.Generator().manual_seed(0))
    ids[:, 5] = tok.mask_id  # the tokenizer's [MASK] and this package's [MASK] (id vocab_size) read the same
    with torch.no_grad():
        expected = reference(ids).logits
        assert torch.allclose(model(ids), expected, atol=TOL)
        ours = ids.clone()
        ours[:, 5] = model.net.mask_id
        assert torch.allclose(model(ours), expected, atol=TOL)
    assert tok.decode(tok.encode("Hello, World")) == "hello, world"  # BERT's uncased WordPiece
    assert len(model.sample(2, 4, prompt="the", generator=torch.Generator().manual_seed(0))) == 2


def test_a_bert_sequence_classifier_becomes_a_text_classifier_with_its_head(tmp_path):
    """tokenizer.json (not vocab.txt), a .bin of weights with gamma/beta names (read without pickle), the pooler and
    the classifier layer in the head."""
    reference = bert_folder(tmp_path / "cls", kind="sequence", num_labels=3)
    from tokenizers import Tokenizer

    own = hf.read_folder(tmp_path / "cls")
    Tokenizer.from_str(own.model_json).save(str(tmp_path / "cls" / "tokenizer.json"))
    (tmp_path / "cls" / "vocab.txt").unlink()
    weights = hf.read_weights(tmp_path / "cls")  # saved as the original BERT release names LayerNorms
    old = {k.replace("LayerNorm.weight", "LayerNorm.gamma").replace("LayerNorm.bias", "LayerNorm.beta"): v
           for k, v in weights.items()}  # fmt: skip
    torch.save(old, tmp_path / "cls" / "pytorch_model.bin")
    (tmp_path / "cls" / "model.safetensors").unlink()
    model = project_model(TextClassifier, hf.read(tmp_path / "cls"), num_classes=3, class_names=["a", "b", "c"])
    ids = torch.randint(5, reference.config.vocab_size, (2, 12), generator=torch.Generator().manual_seed(0))
    mask = torch.ones_like(ids, dtype=torch.bool)
    with torch.no_grad():
        expected = reference(torch.cat([torch.full((2, 1), own.cls_id), ids], 1)).logits  # [CLS] first, as BERT's
        assert torch.allclose(model(ids, mask), expected, atol=TOL)


def test_export_loads_in_transformers_with_equal_logits(tmp_path, folders):
    from transformers import BertForMaskedLM, GPT2LMHeadModel

    chars = {"kind": "char", "chars": " abcdefgh"}
    gpt = GPT(chars, block_size=16, num_layers=2, num_heads=2, hidden_dim=16).eval()  # the package's own layout
    bert = project_model(BERT, hf.read(folders["bert"][0]))
    for model, cls, vocab in ((gpt, GPT2LMHeadModel, 9), (bert, BertForMaskedLM, bert.tokenizer.vocab_size)):
        out = hf.export_hf(model, tmp_path / type(model).__name__)
        loaded = cls.from_pretrained(out).eval()
        ids = torch.randint(0, vocab, (2, 12), generator=torch.Generator().manual_seed(1))
        with torch.no_grad():
            assert torch.allclose(loaded(ids).logits, model(ids), atol=TOL)
    from transformers import AutoTokenizer

    assert AutoTokenizer.from_pretrained(tmp_path / "BERT").mask_token == "[MASK]"
    with pytest.raises(hf.HFError, match="pre-norm .* train it with model.norm=post"):
        hf.export_hf(BERT(chars, block_size=16, num_layers=1, num_heads=2, hidden_dim=16), tmp_path / "pre")


def test_unsupported_folders_are_refused_with_what_is_allowed(tmp_path, folders):
    shutil.copytree(folders["gpt2"][0], tmp_path / "llama")
    config = json.loads((tmp_path / "llama" / "config.json").read_text())
    (tmp_path / "llama" / "config.json").write_text(json.dumps({**config, "model_type": "llama"}))
    with pytest.raises(hf.HFError, match=r"model_type='llama' is not supported; this package holds \['bert', 'gpt2'\]"):
        hf.read(tmp_path / "llama")
    (tmp_path / "llama" / "config.json").write_text(json.dumps({**config, "activation_function": "swish"}))
    with pytest.raises(hf.HFError, match="activation_function='swish' is not supported; allowed"):
        hf.read(tmp_path / "llama")


def test_a_name_not_cached_is_refused_with_the_fetch_command_and_a_cached_one_is_found(tmp_path, monkeypatch):
    from huggingface_hub import constants

    from gen_lightning.interop.hub import resolve

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "cache"))
    with pytest.raises(init_from.InitFromError, match="hf download someone/tiny-gpt2.*HF_HUB_OFFLINE"):
        init_from.read_hf("someone/tiny-gpt2")
    snapshot = tmp_path / "cache" / "models--someone--tiny-gpt2" / "snapshots" / ("a" * 40)
    snapshot.mkdir(parents=True)
    (snapshot.parents[1] / "refs").mkdir()
    (snapshot.parents[1] / "refs" / "main").write_text("a" * 40)
    assert resolve("someone/tiny-gpt2") == snapshot


def test_the_text_data_take_a_hugging_face_tokenizer(folders):
    from gen_lightning.data.text import TextDataModule

    dm = TextDataModule(tokenizer=f"hf:{folders['gpt2'][0]}", block_size=16, batch_size=4, train_stride=2000)
    dm.setup("fit")
    tokenizer = dm.model_kwargs()["tokenizer"]
    assert tokenizer["kind"] == "hf" and tokenizer["vocab_size"] == folders["gpt2"][1].config.vocab_size
    inputs, targets = next(iter(dm.train_dataloader()))
    assert inputs.shape == (4, 16) and torch.equal(inputs[:, 1:], targets[:, :-1])


# ---- init_from: the command line, the shape from the checkpoint ------------------------------------------------
CLASSIFY = ["data=text_classification", "data.max_length=48", "data.batch_size=8", "trainer.max_steps=3",
            "trainer.max_epochs=-1", "trainer.limit_val_batches=2", "model.warmup_steps=1"]  # fmt: skip
MLM = ["data=text_embedded", "data.block_size=16", "data.batch_size=8", "data.train_stride=2000", "trainer.max_steps=3",
       "trainer.max_epochs=-1", "trainer.limit_val_batches=2", "model.warmup_steps=1"]  # fmt: skip


def command(run_dir, folder, model, *extra):
    common = [f"run_dir={run_dir}", f"model={model}", "logger=none", "metrics=none", f"init_from={folder}",
              "trainer.enable_progress_bar=false"]  # fmt: skip
    return [*common, *extra]


def fit(run_dir, folder, model, *extra) -> dict:
    """``gen-lightning fit`` in this process: the command line reaches prepare as the preflight hands it over."""
    from gen_lightning.run import train

    overrides = command(run_dir, folder, model, *extra)
    return train.fit(compose(overrides), overrides=overrides)


def test_a_gpt_classifier_fine_tunes_from_a_gpt2_folder(tmp_path, folders):
    from gen_lightning.run.checkpoint import read

    folder, run = folders["gpt2"][0], tmp_path / "run"
    # No size given: the body's shape comes from the folder; the body stays frozen for these steps.
    summary = fit(run, folder, "gpt_classifier", *CLASSIFY, "model.freeze_body_epochs=1")
    assert summary["global_step"] == 3
    saved = compose_saved(run)
    assert (saved.hidden_dim, saved.num_layers, saved.block_size, saved.activation) == (32, 2, 64, "gelu_tanh")
    state = read(run / "checkpoints" / "last.ckpt")["state_dict"]
    body = {k: v for k, v in hf.read(folder).state_dict.items() if k.startswith("net.transformer.")}
    assert body and all(torch.equal(state[k], v) for k, v in body.items())


def test_a_bert_trains_by_mlm_from_a_bert_folder_and_resumes_without_it(tmp_path, folders):
    from gen_lightning.run.checkpoint import load_module

    run, folder = tmp_path / "run", shutil.copytree(folders["bert"][0], tmp_path / "bert")
    history = fit(run, folder, "bert", *MLM, "validation.every_n_steps=1")["history"]
    losses = [r["val/loss"] for r in history]
    assert len(losses) == 3 and losses[0] > losses[1] > losses[2]  # validated at every step, on the same masks
    assert (compose_saved(run).norm, compose_saved(run).norm_eps) == ("post", 1e-12)
    module = load_module(run / "checkpoints" / "last.ckpt")
    assert module.tokenizer.kind == "hf" and len(module.sample(2, 4, generator=torch.Generator().manual_seed(0))) == 2
    # `gen-lightning export format=hf` of the run: transformers loads it and fills masks as the run does. This
    # package's [MASK] is its own embedding row V; the export gives it the tokenizer's [MASK] id, so the logits are
    # compared with masks written each model's way, over every column but [MASK]'s (which neither should predict).
    from transformers import BertForMaskedLM

    from gen_lightning import cli

    cli.main(["export", f"ckpt={run}", f"out={tmp_path / 'hf_export'}", "format=hf"])
    mask_id, vocab = module.tokenizer.mask_id, module.tokenizer.vocab_size
    ids = torch.randint(0, vocab - 1, (2, 8), generator=torch.Generator().manual_seed(2))
    ids[ids >= mask_id] += 1  # no literal [MASK] among the real tokens
    masked = torch.zeros_like(ids, dtype=torch.bool)
    masked[:, ::3] = True
    keep = torch.arange(vocab) != mask_id
    with torch.no_grad():
        exported = BertForMaskedLM.from_pretrained(tmp_path / "hf_export").eval()(ids.masked_fill(masked, mask_id))
        ours = module.eval()(ids.masked_fill(masked, vocab))
    assert torch.allclose(exported.logits[..., keep], ours[..., keep], atol=TOL)
    # The saved config holds the folder's shape, so a resume builds the same model from its own checkpoint.
    shutil.rmtree(folder)
    assert fit(run, folder, "bert", *MLM, "resume=true", "trainer.max_steps=5")["global_step"] == 5


@pytest.mark.slow  # a fresh interpreter importing torch and Lightning: ~50 s on the shared 2-core machine
def test_the_command_line_fine_tunes_a_gpt_classifier_from_a_gpt2_folder(tmp_path, folders):
    from test_cli import gen_lightning

    run = tmp_path / "run"
    proc = gen_lightning("fit", *command(run, folders["gpt2"][0], "gpt_classifier", *CLASSIFY))
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (compose_saved(run).hidden_dim, compose_saved(run).activation) == (32, "gelu_tanh")  # the saved config
    assert json.loads((run / "metrics.json").read_text())["status"] == "completed"
    refused = gen_lightning(
        "fit", *command(tmp_path / "b", folders["gpt2"][0], "gpt_classifier", *CLASSIFY, "model.num_heads=4")
    )
    assert refused.returncode != 0 and "model.num_heads=4 here, 2 in the checkpoint" in refused.stderr
    assert not (tmp_path / "b").exists()  # refused before anything was written


def compose_saved(run):
    from omegaconf import OmegaConf

    return OmegaConf.load(run / "config.yaml").model


def test_sizes_that_contradict_the_checkpoint_are_refused_naming_both(tmp_path, folders):
    from gen_lightning.run import prepare
    from gen_lightning.run_dir import release

    overrides = command(tmp_path / "a", folders["gpt2"][0], "gpt_classifier", *CLASSIFY, "model.hidden_dim=64")
    with pytest.raises(init_from.InitFromError, match="model.hidden_dim=64 here, 32 in the checkpoint"):
        prepare.prepare(compose(overrides), overrides)
    # A project checkpoint as well: a GPT language model of width 32 into a classifier whose config says 256.
    lm = tmp_path / "lm"
    fit(lm, folders["gpt2"][0], "gpt", *MLM)
    ckpt = lm / "checkpoints" / "last.ckpt"
    overrides = command(tmp_path / "b", ckpt, "gpt_classifier", *CLASSIFY)
    run = prepare.prepare(compose(overrides), overrides)
    release(run.dir.path)
    assert (run.model.hparams.hidden_dim, run.cfg.model.hidden_dim, run.cfg.model.activation) == (32, 32, "gelu_tanh")
    overrides = command(tmp_path / "c", ckpt, "gpt_classifier", *CLASSIFY, "model.num_layers=3")
    with pytest.raises(init_from.InitFromError, match="model.num_layers=3 here, 2 in the checkpoint"):
        prepare.prepare(compose(overrides), overrides)


def test_the_package_never_imports_transformers():
    """transformers is the tests' reference, not a dependency: the package reads the folders itself."""
    import ast
    from pathlib import Path

    import gen_lightning

    found = []
    for path in Path(gen_lightning.__file__).parent.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            names += [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            found += [f"{path.name}: {n}" for n in names if n.split(".")[0] == "transformers"]
    assert not found
