"""The speed options of the GPT family give the results of the slow path (benchmarks/nanogpt_speed.py times them).

- ``fused_optimizer``: the one-kernel AdamW against the multi-tensor one (the same update up to rounding);
- ``trainer.precision=bf16-mixed``: trains to the float32 loss within a tolerance; attention stays float32 on CPU;
- ``data.eval_batch_size``: the same validation loss (a token-weighted mean) up to summation order;
- ``compile``: the same logits within float tolerance and the same checkpoint keys (slow: compilation takes minutes
  on a shared CPU);
- exact resume still holds with the options on;
- the host's choice (``nn/host.py``): ``trainer.precision=auto`` is bf16-mixed only where the CPU (or GPU) multiplies
  bf16 natively, written in the run's config and log; an explicit bf16 the CPU emulates warns once, naming the cost.
"""

from __future__ import annotations

import warnings

import pytest
import torch
import torch.nn.functional as F
from helpers import lm_trainer, text_data
from test_resume import TEXT_VAL, assert_same_weights, run

from gen_lightning.transformer.gpt import GPT
from gen_lightning.transformer.nets import attention

TINY = {"block_size": 32, "num_layers": 2, "num_heads": 2, "hidden_dim": 32, "dropout": 0.0}
SCHEDULE = {"lr": 3e-3, "min_lr": 3e-4, "warmup_steps": 5, "lr_decay_steps": 100}


def train(steps: int, precision: str = "32-true", **options) -> tuple[GPT, dict]:
    torch.manual_seed(0)
    dm = text_data()
    model = GPT(**TINY, **SCHEDULE, **options, **dm.model_kwargs())
    trainer = lm_trainer(steps, gradient_clip_val=1.0, precision=precision)
    trainer.fit(model, dm)
    return model, {name: float(value) for name, value in trainer.callback_metrics.items()}


def test_fused_adamw_trains_like_the_multi_tensor_one():
    (plain, plain_metrics), (fused, fused_metrics) = train(20), train(20, fused_optimizer=True)
    assert fused.trainer.optimizers[0].defaults["fused"] and not plain.trainer.optimizers[0].defaults["fused"]
    torch.manual_seed(0)
    start = GPT(**TINY, **SCHEDULE, **text_data().model_kwargs()).state_dict()
    moved = max((value - start[name]).abs().max().item() for name, value in plain.state_dict().items())
    assert moved > 1e-2  # 20 steps at lr 3e-3 move weights ~1,000x further than the tolerance below
    for name, value in plain.state_dict().items():
        # rounding only: 1.3e-6 measured (it varies with the CPU), while lr 1% higher differs by 1.3e-2
        torch.testing.assert_close(fused.state_dict()[name], value, rtol=1e-4, atol=1e-5)
    assert fused_metrics["val/loss"] == pytest.approx(plain_metrics["val/loss"], rel=1e-4)


def test_bf16_mixed_precision_trains_like_float32():
    """bf16 autocast with the fused AdamW (Lightning refuses to clip for fused optimizers under mixed precision;
    the module clips itself when no gradient is scaled)."""
    _, fp32 = train(60)
    model, bf16 = train(60, precision="bf16-mixed", fused_optimizer=True)
    assert bf16["val/loss"] < 3.5  # it learns (4.2 before training)
    assert bf16["val/loss"] == pytest.approx(fp32["val/loss"], rel=0.01)
    assert all(p.dtype == torch.float32 for p in model.parameters())  # float32 weights and optimiser state


def test_attention_runs_in_float32_under_cpu_autocast():
    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(2, 2, 16, 8, generator=g).bfloat16() for _ in range(3))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y = attention(q, k, v, None, 0.0, True)
    expected = F.scaled_dot_product_attention(q.float(), k.float(), v.float(), is_causal=True).bfloat16()
    assert y.dtype == torch.bfloat16 and torch.equal(y, expected)


def test_seq2seq_cross_attention_runs_in_float32_under_cpu_autocast():
    """The translation decoder's cross-attention (padding mask over the source) takes the same float32 path."""
    from gen_lightning.seq2seq.nets import Attention
    from gen_lightning.transformer.nets import TransformerConfig

    torch.manual_seed(0)
    layer = Attention(TransformerConfig(vocab_size=8, block_size=16, num_layers=1, num_heads=2, hidden_dim=16))
    x, memory = torch.randn(2, 5, 16), torch.randn(2, 7, 16)
    key_mask = torch.tensor([[True] * 7, [True] * 4 + [False] * 3])  # (B, S): the second source is padded
    with torch.autocast("cpu", dtype=torch.bfloat16):
        q, (k, v) = layer._heads(layer.q(x)), layer.keys_values(memory)
        y = layer(x, (k, v), key_mask)
        with torch.autocast("cpu", enabled=False):
            expected = F.scaled_dot_product_attention(
                q.float(), k.float(), v.float(), attn_mask=key_mask[:, None, None]
            )
        expected = layer.proj(expected.to(q.dtype).transpose(1, 2).reshape(2, 5, 16))
    assert torch.equal(y, expected)


def test_eval_batch_size_changes_only_the_speed():
    from gen_lightning.data.text import TextDataModule

    losses = []
    for eval_batch_size in (None, 7):  # 16 (the training batch) or 7 windows per validation batch
        dm = TextDataModule(block_size=32, batch_size=16, eval_batch_size=eval_batch_size)
        dm.setup("fit")
        assert dm.val_dataloader().batch_size == (eval_batch_size or 16)
        torch.manual_seed(0)
        model = GPT(**TINY, **dm.model_kwargs())
        losses.append(lm_trainer(1, limit_val_batches=1.0).validate(model, dm, verbose=False)[0]["val/loss"])
    assert losses[1] == pytest.approx(losses[0], rel=1e-6)


def test_speed_options_keep_exact_resume(tmp_path, monkeypatch):
    """bf16-mixed, fused AdamW (the preset's default) and a validation batch size of its own: a run interrupted
    after 14 steps and resumed equals the uninterrupted run, weights and validation history."""
    extra = [*TEXT_VAL, "trainer.precision=bf16-mixed", "model.fused_optimizer=true", "data.eval_batch_size=5"]
    full = run(tmp_path / "full", "checkpoint.every_n_train_steps=1000", *extra, model="gpt")
    with pytest.raises(RuntimeError, match="simulated crash"):
        cut = ["checkpoint.every_n_train_steps=7", *extra]
        run(tmp_path / "cut", *cut, crash_at=14, monkeypatch=monkeypatch, model="gpt")
    monkeypatch.undo()
    resumed = run(tmp_path / "cut", "resume=true", model="gpt")
    assert resumed["global_step"] == full["global_step"]
    assert_same_weights(tmp_path / "full" / "checkpoints" / "last.ckpt", tmp_path / "cut" / "checkpoints" / "last.ckpt")
    assert resumed["history"] == [{**r, "time_s": a["time_s"]} for r, a in zip(full["history"], resumed["history"])]


@pytest.mark.slow
def test_compile_gives_the_same_logits_and_checkpoint_keys(tmp_path, monkeypatch):
    """torch.compile reorders floating point: equal within 1e-5; generation stays eager; the state_dict keys and
    exact resume are unchanged (compilation: ~1-2 min on a shared CPU)."""
    dm = text_data()
    torch.manual_seed(0)
    eager = GPT(**TINY, **dm.model_kwargs())
    compiled = GPT(**TINY, compile=True, **dm.model_kwargs())
    compiled.load_state_dict(eager.state_dict())
    assert compiled.state_dict().keys() == eager.state_dict().keys()
    inputs, _ = next(iter(dm.train_dataloader()))
    torch.testing.assert_close(compiled(inputs), eager(inputs), rtol=1e-5, atol=1e-5)
    sample = lambda m: m.sample(2, 20, generator=torch.Generator().manual_seed(0))  # noqa: E731
    assert sample(compiled) == sample(eager)

    extra = [*TEXT_VAL, "model.compile=true"]
    full = run(tmp_path / "full", "checkpoint.every_n_train_steps=1000", *extra, model="gpt")
    with pytest.raises(RuntimeError, match="simulated crash"):
        run(tmp_path / "cut", "checkpoint.every_n_train_steps=7", *extra, crash_at=14, monkeypatch=monkeypatch,
            model="gpt")  # fmt: skip
    monkeypatch.undo()
    resumed = run(tmp_path / "cut", "resume=true", model="gpt")
    assert resumed["global_step"] == full["global_step"]
    assert_same_weights(tmp_path / "full" / "checkpoints" / "last.ckpt", tmp_path / "cut" / "checkpoints" / "last.ckpt")


# ---- the host's choice (gen_lightning/nn/host.py) -------------------------------------------------------------
def composed(tmp_path, *overrides: str):
    from conftest import tiny_overrides

    from gen_lightning.config import compose

    return compose(tiny_overrides(tmp_path / "run", *overrides))


@pytest.mark.parametrize(("probe", "flags", "fast"), [
    (False, {"avx2", "fma"}, False),  # the AVX2-only AMD EPYC of issue 25
    (True, {"avx2", "avx512f", "avx512bw"}, False),  # oneDNN emulates bf16 on AVX-512 cores without the BF16 set
    (True, {"avx512f", "avx512_bf16"}, True),
    (True, {"amx_bf16", "amx_tile"}, True),
    (True, None, True),  # no /proc/cpuinfo (macOS): the probe alone
])  # fmt: skip
def test_cpu_bf16_is_fast_only_with_native_bf16(monkeypatch, probe, flags, fast):
    from gen_lightning.nn import host

    monkeypatch.setattr(host, "onednn_bf16_supported", lambda: probe)
    monkeypatch.setattr(host, "cpu_flags", lambda: None if flags is None else frozenset(flags))
    assert host.cpu_bf16_is_fast() is fast


@pytest.mark.parametrize(("fast", "expected"), [(False, "32-true"), (True, "bf16-mixed")])
def test_auto_precision_follows_the_cpu(tmp_path, monkeypatch, fast, expected):
    from gen_lightning.nn import host

    monkeypatch.setattr(host, "cpu_bf16_is_fast", lambda: fast)
    for trainer in ("cpu", "ddp"):  # ddp: accelerator auto, on a machine without a GPU
        monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
        accelerator = "trainer.accelerator=cpu" if trainer == "cpu" else "seed=0"
        cfg = composed(tmp_path, f"trainer={trainer}", accelerator, "trainer.precision=auto")
        (line,) = host.choose_speed_options(cfg)
        assert cfg.trainer.precision == expected and line.startswith(f"trainer.precision=auto -> {expected}: ")


@pytest.mark.parametrize(("trainer", "native", "expected"), [
    ("gpu", False, "16-mixed"), ("gpu", True, "bf16-mixed"),
    ("fsdp", False, "32-true"), ("fsdp", True, "bf16-mixed"),  # Lightning's ModelParallelStrategy refuses 16-mixed
])  # fmt: skip
def test_auto_precision_follows_the_gpu(tmp_path, monkeypatch, trainer, native, expected):
    from gen_lightning.nn import host

    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: native)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda *a: "a GPU")
    cfg = composed(tmp_path, f"trainer={trainer}", "trainer.accelerator=gpu")
    host.choose_speed_options(cfg)
    assert cfg.trainer.precision == expected


def test_fit_writes_the_chosen_precision_in_config_and_log(tmp_path, monkeypatch, caplog):
    """On a CPU without native bf16 ``auto`` trains in float32, and the run's config.yaml and log say so."""
    import logging

    from omegaconf import OmegaConf

    from gen_lightning.nn import host
    from gen_lightning.run import train

    monkeypatch.setattr(host, "cpu_bf16_is_fast", lambda: False)
    cfg = composed(tmp_path, "trainer.max_steps=2", "trainer.max_epochs=1", "trainer.precision=auto")
    with caplog.at_level(logging.INFO, logger="gen_lightning.run.train"):
        train.fit(cfg)
    assert OmegaConf.load(tmp_path / "run" / "config.yaml").trainer.precision == "32-true"
    assert any("trainer.precision=auto -> 32-true" in r.getMessage() for r in caplog.records)


def test_explicit_bf16_on_a_cpu_without_it_is_honoured_with_one_warning(tmp_path, monkeypatch):
    from gen_lightning.nn import host

    monkeypatch.setattr(host, "cpu_bf16_is_fast", lambda: False)
    monkeypatch.setattr(host, "bf16_slowdown", lambda: 40.0)
    cfg = composed(tmp_path, "trainer.precision=bf16-mixed")
    with pytest.warns(host.SlowPrecisionWarning) as caught:
        host.choose_speed_options(cfg)
    assert len(caught) == 1 and cfg.trainer.precision == "bf16-mixed"  # honoured
    assert "trainer.precision=bf16-mixed" in str(caught[0].message) and "takes 40x the float32" in str(
        caught[0].message
    )
    monkeypatch.setattr(host, "cpu_bf16_is_fast", lambda: True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        host.choose_speed_options(cfg)  # a CPU with native bf16: no warning


def test_bf16_slowdown_measures_this_cpu():
    from gen_lightning.nn import host

    ratio = host.bf16_slowdown()
    # On a CPU that emulates bf16 the product is many times slower (40x measured on the AVX2 EPYC); where it is
    # native it is about as fast as float32 or faster.
    assert ratio > 3 if not host.cpu_bf16_is_fast() else ratio < 3
