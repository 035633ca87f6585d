"""Text classifiers and ``init_from``: padding never changes a prediction, a fine-tuned run starts from the
pre-trained weights (not from scratch), a checkpoint of the wrong kind is refused with the fix, a fine-tuning run
resumes bit for bit, and under 2-process DDP its validation metrics equal one process's."""

from __future__ import annotations

import json
import shutil

import pytest
import torch
from conftest import tiny_overrides
from helpers import module_weights

from gen_lightning.classifier.module import TextClassifier
from gen_lightning.config import compose
from gen_lightning.data.text import TextClassificationDataModule
from gen_lightning.run import init_from, train
from gen_lightning.run.build import build_datamodule
from gen_lightning.run.resume_policy import resolve_for_resume

BLOCK = 32  # positions of the pre-trained language models and of the classifiers fine-tuned from them
LM = ["data.block_size=32", "trainer.max_steps=6", "trainer.max_epochs=-1", "trainer.limit_val_batches=1"]
FINE_TUNE = ["data=text_classification", "data.max_length=31", "data.batch_size=8", "model.block_size=32",
             "model.hidden_dim=32", "model.num_layers=1", "model.num_heads=2", "trainer.limit_val_batches=4",
             "trainer.max_epochs=-1", "model.warmup_steps=2"]  # fmt: skip


def tiny_data(max_length: int = 31) -> TextClassificationDataModule:
    dm = TextClassificationDataModule(max_length=max_length, batch_size=8)
    dm.setup("fit")
    return dm


POOLED = [("bert", "first", False), ("bert", "mean", False), ("gpt", "last", False), ("lstm", "max", False),
          ("gru", "mean", False), ("lstm", "max", True), ("gru", "last", False)]  # fmt: skip


@pytest.mark.parametrize("body,pooling,bidirectional", POOLED)
def test_padding_never_changes_a_prediction(body, pooling, bidirectional):
    texts = ["M:2/4\nL:1/8\nK:G\nGA", "M:3/4\nL:1/8\nK:D\nd2 f2 a2 | g2 e2 c2 | d6 |]"]
    vocab = {"kind": "char", "chars": "".join(sorted(set("".join(texts))))}
    torch.manual_seed(0)
    model = TextClassifier(vocab, 3, ["a", "b", "c"], body=body, pooling=pooling, hidden_dim=16, num_layers=2,
                           num_heads=2, block_size=64, bidirectional=bidirectional)  # fmt: skip
    together = model.predict(texts)
    alone = torch.cat([model.predict([t]) for t in texts])
    assert torch.allclose(together, alone, atol=1e-6) and torch.allclose(together.sum(-1), torch.ones(2))
    with pytest.raises(ValueError, match="empty"):
        model.predict(["", texts[0]])


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory):
    """A BERT (MLM) and a GPT pre-trained for a few steps on the embedded English text."""
    root = tmp_path_factory.mktemp("pretrained")
    paths = {}
    for name in ("bert", "gpt"):
        train.fit(compose(tiny_overrides(root / name, *LM, model=name)))
        paths[name] = root / name / "checkpoints" / "last.ckpt"
    return paths


def fine_tune_cfg(run_dir, ckpt, *extra, body="bert"):
    return compose(tiny_overrides(run_dir, *FINE_TUNE, f"init_from={ckpt}", *extra, model=f"{body}_classifier"))


def test_fine_tuning_starts_from_the_pretrained_body(tmp_path, pretrained):
    lm = module_weights(pretrained["bert"])
    # One frozen epoch, 10 steps inside it: the body stays exactly the pre-trained one.
    frozen = ["trainer.max_steps=10", "model.freeze_body_epochs=1"]
    summary = train.fit(fine_tune_cfg(tmp_path / "ft", pretrained["bert"], *frozen))
    last = tmp_path / "ft" / "checkpoints" / "last.ckpt"
    tuned = module_weights(last)
    body = sorted(k for k in tuned if k.startswith("net.transformer."))
    assert body and all(torch.equal(tuned[k], lm[k]) for k in body)
    tokenizers = [torch.load(p, weights_only=True)["hyper_parameters"]["tokenizer"] for p in (last, pretrained["bert"])]
    assert tokenizers[0] == tokenizers[1] and summary["global_step"] == 10
    # Without freezing the body moves on from the pre-trained weights; from scratch it starts elsewhere.
    cfg = fine_tune_cfg(tmp_path / "x", pretrained["bert"])
    pre = init_from.for_run(cfg, None)
    dm = build_datamodule(cfg.data, init_from.carried(pre, cfg.data))
    from hydra.utils import instantiate

    scratch = instantiate(cfg.model, **dm.model_kwargs(), _convert_="all")
    tuned_model = instantiate(cfg.model, **dm.model_kwargs(), _convert_="all")
    assert sorted(init_from.load_weights(tuned_model, pre)) == body
    own = tuned_model.state_dict()
    assert all(torch.equal(own[k], lm[k]) for k in body)
    assert not torch.equal(scratch.state_dict()[body[0]], lm[body[0]])


def test_a_language_model_continues_from_a_language_model(tmp_path, pretrained):
    cfg = compose(tiny_overrides(tmp_path / "lm", *LM, f"init_from={pretrained['gpt']}", model="gpt"))
    pre = init_from.for_run(cfg, None)
    dm = build_datamodule(cfg.data, init_from.carried(pre, cfg.data))
    from hydra.utils import instantiate

    model = instantiate(cfg.model, **dm.model_kwargs(), _convert_="all")
    assert len(init_from.load_weights(model, pre)) == len(model.state_dict())  # every tensor
    assert all(torch.equal(v, pre.state_dict[k]) for k, v in model.state_dict().items())


def test_wrong_checkpoints_are_refused_with_the_fix(tmp_path, pretrained):
    with pytest.raises(init_from.InitFromError, match="holds a gen_lightning.transformer.gpt.GPT.*use model.body=gpt"):
        train.fit(fine_tune_cfg(tmp_path / "a", pretrained["gpt"]))
    with pytest.raises(init_from.InitFromError, match="other shapes.*set model.hidden_dim=32"):
        train.fit(fine_tune_cfg(tmp_path / "b", pretrained["bert"], "model.hidden_dim=64"))
    with pytest.raises(init_from.InitFromError, match="does not exist"):
        train.fit(fine_tune_cfg(tmp_path / "c", tmp_path / "missing.ckpt"))
    busy = tmp_path / "busy" / "checkpoints" / "last.ckpt"  # a pre-training still running
    busy.parent.mkdir(parents=True)
    shutil.copy(pretrained["bert"], busy)
    (tmp_path / "busy" / "metrics.json").write_text('{"status": "running"}')
    with pytest.raises(init_from.InitFromError, match="is running .* not completed. Wait for it"):
        train.fit(fine_tune_cfg(tmp_path / "e", busy))
    # The MR movie reviews hold characters the pre-training text has not (a char tokenizer knows no others).
    (tmp_path / "mr").mkdir()
    (tmp_path / "mr" / "r.pos").write_text("na\u00efve , charming\n" + "fun\n" * 20)
    (tmp_path / "mr" / "r.neg").write_text("dull\n" * 20)
    with pytest.raises(init_from.InitFromError, match="does not fit the tokenizer of init_from.*not in the vocabulary"):
        train.fit(fine_tune_cfg(tmp_path / "d", pretrained["bert"], f"data.path={tmp_path / 'mr'}"))


def test_body_learning_rate_scale_and_freezing():
    dm = tiny_data()
    model = TextClassifier(**dm.model_kwargs(), body="lstm", hidden_dim=16, num_layers=1, body_lr_scale=0.1, lr=1e-3)
    optimizer = model.configure_optimizers()["optimizer"]
    body = {id(p) for p in model.net.parameters()}
    for group in optimizer.param_groups:
        scale = 0.1 if all(id(p) in body for p in group["params"]) else 1.0
        assert group["lr"] == pytest.approx(1e-3 * scale * 1 / 101)  # warm-up step 0 of 100
        assert all((id(p) in body) == (scale == 0.1) for p in group["params"])


def test_fine_tuning_resumes_exactly(tmp_path, pretrained, monkeypatch):
    from test_resume import Crash

    ckpt = tmp_path / "lm.ckpt"
    shutil.copy(pretrained["bert"], ckpt)
    steps = ["trainer.max_steps=14", "model.freeze_body_epochs=1", "+trainer.limit_train_batches=8"]
    full = train.fit(fine_tune_cfg(tmp_path / "full", ckpt, *steps, "checkpoint.every_n_train_steps=100"))
    original = train.build_callbacks
    monkeypatch.setattr(train, "build_callbacks", lambda *a: [Crash(5), *original(*a)])
    with pytest.raises(RuntimeError, match="simulated crash"):
        train.fit(fine_tune_cfg(tmp_path / "cut", ckpt, *steps, "checkpoint.every_n_train_steps=5"))
    monkeypatch.undo()
    ckpt.unlink()  # a resumed run takes its tokenizer and weights from its own last.ckpt
    cfg, _ = resolve_for_resume(fine_tune_cfg(tmp_path / "cut", ckpt, "resume=true"), [])
    resumed = train.fit(cfg)
    assert resumed["global_step"] == full["global_step"] == 14  # across the unfreezing at epoch 1 (step 8)
    a, b = (module_weights(tmp_path / r / "checkpoints" / "last.ckpt") for r in ("full", "cut"))
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert [r["val/acc"] for r in resumed["history"]] == [r["val/acc"] for r in full["history"]]


@pytest.mark.slow  # two fresh interpreters importing torch: ~1 min on the shared 2-core machine
def test_fine_tuning_under_ddp_equals_one_process(tmp_path, pretrained):
    import lightning as L
    from omegaconf import OmegaConf
    from test_cli import gen_lightning

    from gen_lightning.run.checkpoint import load_module

    run_dir = tmp_path / "ddp"
    overrides = tiny_overrides(run_dir, *FINE_TUNE, f"init_from={pretrained['bert']}", "trainer=ddp",
                               "trainer.accelerator=cpu", "trainer.devices=2", "trainer.max_steps=6",
                               "trainer.val_check_interval=6", "trainer.check_val_every_n_epoch=null",
                               "trainer.limit_val_batches=null", model="bert_classifier")  # fmt: skip
    proc = gen_lightning("fit", *overrides, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads((run_dir / "metrics.json").read_text())
    last = run_dir / "checkpoints" / "last.ckpt"
    module = load_module(last)
    # The run's data with the run's tokenizer (carried over from init_from, so not in config.yaml's data).
    data_cfg = OmegaConf.load(run_dir / "config.yaml").data
    dm = build_datamodule(data_cfg, init_from.carried(init_from.read(last), data_cfg))
    single = L.Trainer(accelerator="cpu", devices=1, logger=False, enable_progress_bar=False)
    alone = single.validate(module, datamodule=dm, verbose=False)[0]
    for key in ("val/acc", "val/f1_macro", "val/loss"):
        assert alone[key] == pytest.approx(summary["final"][key], rel=1e-5), key


@pytest.mark.slow  # two DDP processes and one plain run: ~30 s on the shared 2-core machine
def test_frozen_body_under_ddp_without_the_unused_parameter_search(tmp_path):
    """strategy=ddp (no search for unused parameters): the frozen body gets zero gradients so DDP can reduce them,
    and they are dropped before the step, so AdamW neither updates nor decays it, as on one process."""
    from test_cli import gen_lightning

    frozen = ["data=text_classification", "data.max_length=48", "data.batch_size=8", "model.hidden_dim=32",
              "model.num_layers=1", "model.num_heads=2", "model.freeze_body_epochs=1", "trainer.max_steps=3",
              "trainer.max_epochs=-1", "+trainer.limit_train_batches=3", "trainer.limit_val_batches=1"]  # fmt: skip
    ddp = ["trainer=ddp", "trainer.accelerator=cpu", "trainer.devices=2"]
    weights = {}
    for name, extra in (("one", []), ("ddp", ddp)):
        proc = gen_lightning("fit", *tiny_overrides(tmp_path / name, *frozen, *extra, model="bert_classifier"))
        assert proc.returncode == 0, proc.stderr[-3000:]
        weights[name] = module_weights(tmp_path / name / "checkpoints" / "last.ckpt")
    body = [k for k in weights["one"] if k.startswith("net.")]
    assert body and all(torch.equal(weights["one"][k], weights["ddp"][k]) for k in body)
    head = [k for k in weights["one"] if k.startswith("head.")]
    assert any(not torch.equal(weights["one"][k], weights["ddp"][k]) for k in head)  # the head did train
