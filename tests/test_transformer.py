"""GPT and BERT: sampling filters, kv-cache generation, masking, training, checkpoints, nanoGPT's result."""

from __future__ import annotations

import math
import time
from pathlib import Path

import lightning as L
import pytest
import torch
from conftest import shared_data
from helpers import lm_trainer, text_data

from gen_lightning.data.text import TextDataModule
from gen_lightning.nn import host
from gen_lightning.nn.optim import warmup_cosine
from gen_lightning.nn.sampling import draw_from, filter_logits, sample_next
from gen_lightning.transformer.bert import BERT
from gen_lightning.transformer.gpt import GPT
from gen_lightning.transformer.nets import BERTNet, GPTNet, TransformerConfig, mask_tokens

TINY = {"block_size": 32, "num_layers": 2, "num_heads": 2, "hidden_dim": 32, "dropout": 0.0}


def _fit(model: L.LightningModule, dm: TextDataModule, steps: int) -> tuple[dict, dict]:
    """Validation metrics before and after ``steps`` steps (with the Trainer's gradient clipping on)."""
    before = lm_trainer(steps).validate(model, dm, verbose=False)[0]
    trainer = lm_trainer(steps, gradient_clip_val=1.0)
    trainer.fit(model, dm)
    return before, {name: float(value) for name, value in trainer.callback_metrics.items()}


# ----- sampling filters ---------------------------------------------------------------------------


def test_sampling_options_reach_the_network_and_unknown_ones_are_named():
    from gen_lightning.rnn.module import CharRNN

    tokenizer = text_data().model_kwargs()
    gpt, bert = GPT(**TINY, **tokenizer), BERT(**TINY, **tokenizer)
    rnn = CharRNN(hidden_dim=16, num_layers=1, dropout=0.0, **tokenizer)

    def draw(model, **options):
        return model.sample(2, 12, prompt="KING", generator=torch.Generator().manual_seed(3), **options)

    assert draw(gpt, use_cache=False) == draw(gpt)  # the option arrives: the cache changes no token
    assert draw(bert, fill_per_step=12) != draw(bert)  # filling 12 at once is another sampler
    with pytest.raises(ValueError, match=r"CharRNN does not take the sampling option\(s\) \['use_cache'\].*nothing"):
        draw(rnn, use_cache=False)
    with pytest.raises(ValueError, match=r"\['fill_per_step'\].*\['use_cache'\]"):
        draw(gpt, fill_per_step=2)


def test_top_k_keeps_the_k_largest():
    logits = torch.tensor([[1.0, 4.0, 2.0, 3.0], [0.0, -1.0, 5.0, 1.0]])
    out = filter_logits(logits, top_k=2)
    assert torch.isinf(out).tolist() == [[True, False, True, False], [True, True, False, False]]
    assert torch.equal(out[~torch.isinf(out)], logits[~torch.isinf(out)])
    assert torch.equal(filter_logits(logits, temperature=2.0), logits / 2)


def test_top_p_keeps_the_smallest_nucleus():
    probs = torch.tensor([[0.15, 0.5, 0.05, 0.3]])  # sorted: 0.5, 0.3, 0.15, 0.05
    kept = lambda p: (~torch.isinf(filter_logits(probs.log(), top_p=p))).tolist()[0]  # noqa: E731
    assert kept(0.5) == [False, True, False, False]  # the top token alone holds 0.5
    assert kept(0.8) == [False, True, False, True]  # 0.5 + 0.3 reaches 0.8
    assert kept(0.81) == [True, True, False, True]
    assert kept(1.0) == [True, True, True, True]
    assert kept(0.01) == [False, True, False, False]  # never empty


def test_filtered_sampling_follows_the_renormalised_distribution():
    probs = torch.tensor([0.4, 0.3, 0.2, 0.1])
    logits = probs.log().expand(20_000, 4)
    g = torch.Generator().manual_seed(0)
    counts = torch.bincount(sample_next(logits, top_k=3, top_p=0.65, generator=g)[:, 0], minlength=4)
    # top-3 leaves (0.4, 0.3, 0.2); top-p 0.65 then keeps 0.4 and 0.3: renormalised 4/7 and 3/7.
    assert counts[2:].sum() == 0
    assert abs(counts[0].item() / 20_000 - 4 / 7) < 0.015
    greedy = sample_next(logits[:3], temperature=0)
    assert greedy[:, 0].tolist() == [0, 0, 0]


def test_inverse_cdf_draw_follows_the_distribution_and_skips_zero_mass():
    g = torch.Generator().manual_seed(0)
    probs = torch.rand(40, generator=g) ** 3
    probs[[0, 7, 39]] = 0.0  # zero mass first, inside, and last
    probs /= probs.sum()
    ids = draw_from(probs.expand(200_000, 40), generator=torch.Generator().manual_seed(1))[:, 0]
    freq = torch.bincount(ids, minlength=40) / 200_000
    assert freq[[0, 7, 39]].sum() == 0
    # 200,000 draws: the standard error of a frequency is at most 0.0011; 5 of them bound every class.
    assert (freq - probs).abs().max() < 0.0056
    again = draw_from(probs.expand(1000, 40), generator=torch.Generator().manual_seed(1))
    assert torch.equal(again[:, 0], ids[:1000])  # seeded: the same draws


# ----- GPT ----------------------------------------------------------------------------------------


def _peaky_gpt(block_size: int = 16) -> GPTNet:
    torch.manual_seed(0)
    cfg = TransformerConfig(vocab_size=11, block_size=block_size, num_layers=2, num_heads=2, hidden_dim=16)
    net = GPTNet(cfg)
    torch.nn.init.normal_(net.transformer.tok_emb.weight, std=1.0)  # far from uniform, so tokens are distinct
    return net.eval()


def test_kv_cache_logits_equal_full_forward():
    net = _peaky_gpt()
    idx = torch.randint(11, (3, 16), generator=torch.Generator().manual_seed(1))
    full = net(idx)  # (3, 16, 11)
    caches = net.transformer.new_caches(3)
    steps = [net(idx[:, :5], caches)] + [net(idx[:, t : t + 1], caches) for t in range(5, 16)]
    assert torch.allclose(torch.cat(steps, dim=1), full, atol=1e-5)
    with pytest.raises(ValueError, match="exceeds block_size"):
        net(idx[:, :1], caches)


@pytest.mark.parametrize("temperature, top_k, top_p", [(0.0, None, None), (1.0, None, None), (0.8, 5, 0.9)])
def test_kv_cache_generation_equals_no_cache_generation(temperature, top_k, top_p):
    net = _peaky_gpt(block_size=16)
    prompt = torch.tensor([[1, 2, 3], [4, 5, 6]])
    out = {}
    for use_cache in (True, False):  # 45 tokens: the 16-token context is refilled several times
        g = torch.Generator().manual_seed(7)
        out[use_cache] = net.generate(prompt, 45, temperature, top_k, top_p, generator=g, use_cache=use_cache)
    assert out[True].shape == (2, 48) and torch.equal(out[True][:, :3], prompt)
    assert torch.equal(out[True], out[False])
    assert len(set(out[True][0].tolist())) > 1


def test_gpt_decays_only_matrices_and_schedules_like_nanogpt():
    schedule = {"lr": 1e-3, "min_lr": 1e-4, "warmup_steps": 10, "lr_decay_steps": 100}
    model = GPT({"kind": "byte"}, **TINY, bias=True, **schedule)
    opt = model.configure_optimizers()
    decay, no_decay = opt["optimizer"].param_groups
    assert all(p.dim() >= 2 for p in decay["params"]) and all(p.dim() < 2 for p in no_decay["params"])
    assert len(decay["params"]) + len(no_decay["params"]) == len(list(model.parameters()))  # tied once
    assert warmup_cosine(0, **schedule) == pytest.approx(1e-3 / 11)
    assert warmup_cosine(10, **schedule) == pytest.approx(1e-3)
    assert warmup_cosine(55, **schedule) == pytest.approx(5.5e-4)  # half way down the cosine
    assert warmup_cosine(500, **schedule) == pytest.approx(1e-4)


def test_gpt_trains_and_the_schedule_steps_every_optimizer_step():
    torch.manual_seed(0)
    dm = text_data()
    model = GPT(**TINY, lr=3e-3, min_lr=3e-4, warmup_steps=5, lr_decay_steps=100, **dm.model_kwargs())
    before, after = _fit(model, dm, steps=60)  # measured: val/loss 4.17 -> 2.99
    assert before["val/loss"] > 3.5 and after["val/loss"] < before["val/loss"] - 0.7, (before, after)
    lr = model.trainer.optimizers[0].param_groups[0]["lr"]
    assert lr == pytest.approx(warmup_cosine(60, lr=3e-3, min_lr=3e-4, warmup_steps=5, lr_decay_steps=100))
    assert after["val/bpc"] == pytest.approx(after["val/loss"] / math.log(2), rel=1e-5)
    assert after["val/ppl"] == pytest.approx(math.exp(after["val/loss"]), rel=1e-5)


def test_gpt_checkpoint_keeps_vocabulary_and_samples(tmp_path):
    dm = text_data()
    model = GPT(**TINY, **dm.model_kwargs())
    trainer = lm_trainer(3, limit_val_batches=1)
    trainer.fit(model, dm)
    trainer.save_checkpoint(tmp_path / "gpt.ckpt")
    loaded = GPT.load_from_checkpoint(tmp_path / "gpt.ckpt")
    assert loaded.tokenizer.chars == dm.tokenizer.chars

    def sample(m: GPT, seed: int) -> list[str]:
        return m.sample(3, 40, prompt="The ", top_k=10, generator=torch.Generator().manual_seed(seed))

    assert sample(loaded, 5) == sample(model, 5) == sample(model, 5)
    assert sample(model, 5) != sample(model, 6)
    assert all(text.startswith("The ") and len(text) == 44 for text in sample(model, 5))
    assert loaded.preview(None, torch.Generator().manual_seed(0)).keys() == {"text"}


# ----- BERT ---------------------------------------------------------------------------------------


def test_bert_masking_proportions():
    ids = torch.randint(65, (512, 128), generator=torch.Generator().manual_seed(0))
    inputs, labels = mask_tokens(ids, vocab_size=65, mask_id=65, generator=torch.Generator().manual_seed(1))
    selected = labels != -100
    assert (selected.sum(dim=1) == round(0.15 * 128)).all()  # exactly 15% (19 of 128) per sequence
    assert torch.equal(labels[selected], ids[selected]) and torch.equal(inputs[~selected], ids[~selected])
    n = selected.sum().item()
    masked = (inputs == 65) & selected
    kept = (inputs == ids) & selected
    swapped = selected & ~masked & ~kept
    assert abs(masked.sum().item() / n - 0.8) < 0.015
    assert abs(swapped.sum().item() / n - 0.1 * 64 / 65) < 0.01  # a random symbol equals the old one 1/65
    assert abs(kept.sum().item() / n - (0.1 + 0.1 / 65)) < 0.01
    assert int(inputs[~masked].max()) < 65  # [MASK] only where chosen


def test_bert_generation_fills_every_mask_reproducibly():
    torch.manual_seed(0)
    cfg = TransformerConfig(vocab_size=11, block_size=16, num_layers=1, num_heads=2, hidden_dim=16)
    net = BERTNet(cfg).eval()
    prompt = torch.tensor([[1, 2, 3]])
    g = [torch.Generator().manual_seed(3) for _ in (0, 1)]
    runs = [net.generate(prompt, 40, generator=gen, fill_per_step=2) for gen in g]
    assert runs[0].shape == (1, 43) and torch.equal(runs[0], runs[1]) and torch.equal(runs[0][:, :3], prompt)
    assert int(runs[0].max()) < 11  # no [MASK] left


@pytest.mark.parametrize("order", ["left_to_right", "random", "confidence"])
def test_bert_fill_orders(order):
    """left_to_right fills the leftmost mask at every pass; random and confidence fill all, reproducibly."""
    torch.manual_seed(0)
    net = BERTNet(TransformerConfig(vocab_size=11, block_size=16, num_layers=1, num_heads=2, hidden_dim=16)).eval()
    seen, forward = [], net.forward
    net.forward = lambda x, select=None: (seen.append((x == net.mask_id)[0].clone()), forward(x, select))[1]
    prompt = torch.tensor([[1, 2, 3]])
    out = net.generate(prompt, 8, generator=torch.Generator().manual_seed(1), fill_order=order)
    assert out.shape == (1, 11) and int(out.max()) < 11 and len(seen) == 8
    filled = [int((a & ~b).nonzero()) for a, b in zip(seen, [*seen[1:], torch.zeros_like(seen[0])])]
    assert sorted(filled) == list(range(3, 11))
    if order == "left_to_right":
        assert filled == list(range(3, 11))
    again = net.generate(prompt, 8, generator=torch.Generator().manual_seed(1), fill_order=order)
    assert torch.equal(out, again)
    with pytest.raises(ValueError, match="fill_order must be one of"):
        net.generate(prompt, 8, fill_order="backwards")


def test_bert_trains_and_logs_mlm_accuracy(tmp_path):
    torch.manual_seed(0)
    dm = text_data()
    model = BERT(**TINY, lr=3e-3, min_lr=3e-4, warmup_steps=5, lr_decay_steps=100, **dm.model_kwargs())
    before, after = _fit(model, dm, steps=60)  # measured: val/loss 4.18 -> 3.35, val/mlm_acc 0.02 -> 0.13
    assert before["val/loss"] > 3.5 and after["val/loss"] < before["val/loss"] - 0.5, (before, after)
    assert after["val/mlm_acc"] > before["val/mlm_acc"] + 0.05, (before, after)
    model.trainer.save_checkpoint(tmp_path / "bert.ckpt")
    loaded = BERT.load_from_checkpoint(tmp_path / "bert.ckpt")
    sample = lambda m: m.sample(2, 30, prompt="KING", generator=torch.Generator().manual_seed(0))  # noqa: E731
    assert sample(loaded) == sample(model) and all(s.startswith("KING") for s in sample(model))


# ----- nanoGPT's published CPU result -------------------------------------------------------------


@pytest.mark.slow
def test_nanogpt_cpu_configuration_trains_like_nanogpt():
    """nanoGPT's README, CPU: block 64, batch 12, 4 layers, 4 heads, width 128, 2000 steps: "a loss of 1.88".

    The README's number is one estimate from 20 random validation batches of one seed. nanoGPT's own code, run
    from seeds 0-7 (docs/STUDIES.md), reaches 1.9085 +- 0.0093 on the whole validation split (at most 1.9198) and
    prints 1.903 +- 0.019 (20 batches). Here (2 shared CPU cores, one thread, ~6 min) seed 1337 gives 1.9001 on the
    first 20 validation batches and 1.9126 on the whole split. The bound, 1.93, is nanoGPT's mean plus about two
    of its seed-to-seed standard deviations: a broken optimiser, schedule or initialisation lands far above it.
    """
    shakespeare = shared_data("tinyshakespeare", "input.txt") / "input.txt"
    L.seed_everything(1337)
    dm = TextDataModule(path=str(shakespeare), block_size=64, batch_size=12, seed=1337)
    dm.setup("fit")
    model = GPT(
        block_size=64, num_layers=4, num_heads=4, hidden_dim=128, dropout=0.0, bias=False, lr=1e-3,
        min_lr=1e-4, betas=(0.9, 0.99), weight_decay=0.1, warmup_steps=100, lr_decay_steps=2000,
        **dm.model_kwargs(),
    )  # fmt: skip
    trainer = lm_trainer(2000, val_check_interval=250, limit_val_batches=20, gradient_clip_val=1.0)
    start = time.perf_counter()
    trainer.fit(model, dm)
    seconds = time.perf_counter() - start
    val_20 = float(trainer.callback_metrics["val/loss"])  # 20 batches, as nanoGPT's eval_iters=20
    val_all = lm_trainer(1, limit_val_batches=1.0).validate(model, dm, verbose=False)[0]["val/loss"]
    print(f"\nnanoGPT CPU: val/loss {val_20:.4f} (20 batches), {val_all:.4f} (all val), {seconds:.0f} s")
    assert val_20 <= 1.93 and val_all <= 1.93


# ----- configuration files --------------------------------------------------------------------------------


def _compose(tmp_path: Path, overrides: list[str]):
    """The project's root config with these overrides (text data unless a data option is given)."""
    from gen_lightning.config import compose

    data = [] if any(o.startswith(("data=", "experiment=")) for o in overrides) else ["data=text_embedded"]
    return compose([f"run_dir={tmp_path}", *data, *overrides])


@pytest.mark.parametrize("name", ["lstm", "gru", "gpt", "bert"])
def test_model_configs_build_from_text_data(name, tmp_path):
    from hydra.utils import instantiate

    cfg = _compose(tmp_path, [f"model={name}", "data.block_size=16", "data.batch_size=2"])
    dm = instantiate(cfg.data)
    dm.setup("fit")
    model = instantiate(cfg.model, **dm.model_kwargs())
    assert model.modality == "text" and model.sample_modes == ()
    assert model.hparams.get("block_size", 16) == 16  # the context follows the data's window
    inputs, _ = next(iter(dm.val_dataloader()))
    assert model(inputs).shape == (2, 16, dm.tokenizer.vocab_size)


def test_nanogpt_experiment_composes_to_the_published_configuration(tmp_path):
    from hydra.utils import instantiate

    cfg = _compose(tmp_path, ["experiment=nanogpt_char_cpu", "data.path=/any/input.txt"])
    assert cfg.data._target_.endswith("TextDataModule") and cfg.model._target_.endswith("gpt.GPT")
    assert (cfg.data.block_size, cfg.data.batch_size, cfg.data.seed) == (64, 12, 1337)
    assert cfg.model.block_size == 64  # follows the data
    model = instantiate(cfg.model, tokenizer={"kind": "char", "chars": "".join(map(chr, range(32, 97)))})
    # nanoGPT prints "number of parameters: 0.80M" (65 symbols, position embeddings not counted).
    params = sum(p.numel() for p in model.parameters()) - model.net.transformer.pos_emb.weight.numel()
    assert params == 4 * (12 * 128**2 + 2 * 128) + 128 + 65 * 128 == 795_904
    # The speed defaults (benchmarks/nanogpt_speed.py): the host's precision (bf16 matrix products where the CPU has
    # native bf16, gen_lightning/nn/host.py), fused AdamW, validation batches of 128.
    assert (cfg.trainer.precision, cfg.model.fused_optimizer, cfg.data.eval_batch_size) == ("auto", True, 128)
    host.choose_speed_options(cfg)  # what prepare does: auto -> this host's precision
    trainer = L.Trainer(**{**cfg.trainer, "enable_progress_bar": False}, logger=False, enable_checkpointing=False)
    assert (trainer.max_steps, trainer.val_check_interval, trainer.gradient_clip_val) == (2000, 500, 1.0)
    assert trainer.limit_val_batches == 1.0  # the whole validation split (see the experiment's comment)


# ----- hyperparameters ----------------------------------------------------------------------------

# As the constructors of commit 15c097f saved them (one keyword each), before the settings dataclasses: a checkpoint
# written then must rebuild the same module with load_module's cls(**hparams).
CHARS = {"kind": "char", "chars": " abcdefghij"}
OLD_HPARAMS = {
    "gen_lightning.transformer.gpt.GPT": {
        "tokenizer": CHARS, "block_size": 16, "num_layers": 1, "num_heads": 2, "hidden_dim": 16, "dropout": 0.2,
        "bias": False, "lr": 0.001, "min_lr": 0.0001, "betas": [0.9, 0.99], "weight_decay": 0.1, "warmup_steps": 100,
        "lr_decay_steps": 5000, "fused_optimizer": False, "compile": False},
    "gen_lightning.transformer.bert.BERT": {
        "tokenizer": CHARS, "block_size": 16, "num_layers": 1, "num_heads": 2, "hidden_dim": 16, "dropout": 0.1,
        "bias": True, "mask_prob": 0.15, "fill_per_step": 1, "fill_order": "confidence", "lr": 0.001,
        "min_lr": 0.0001, "betas": [0.9, 0.99], "weight_decay": 0.01, "warmup_steps": 100, "lr_decay_steps": 5000},
    "gen_lightning.rnn.module.CharRNN": {
        "tokenizer": CHARS, "cell": "gru", "hidden_dim": 16, "num_layers": 2, "dropout": 0.2, "lr": 0.002,
        "min_lr": 0.0002, "betas": [0.9, 0.95], "weight_decay": 0.0, "warmup_steps": 0, "lr_decay_steps": 5000},
}  # fmt: skip


@pytest.mark.parametrize("target", list(OLD_HPARAMS), ids=lambda t: t.rpartition(".")[2])
def test_old_style_hyperparameters_rebuild_the_language_model_from_a_checkpoint(target, tmp_path):
    from gen_lightning.callbacks.resume import STATE_KEY
    from gen_lightning.run.checkpoint import _comparable, load_module, module_class

    hparams = OLD_HPARAMS[target]
    module = module_class({STATE_KEY: {"target": target}}, "old-style")(**hparams).eval()
    assert _comparable(dict(module.hparams)) == _comparable(hparams)
    torch.save({"state_dict": module.state_dict(), "hyper_parameters": hparams, STATE_KEY: {"target": target}},
               tmp_path / "old.ckpt")  # fmt: skip
    loaded = load_module(tmp_path / "old.ckpt")
    sample = [m.sample(2, 8, prompt="ab", generator=torch.Generator().manual_seed(1)) for m in (module, loaded)]
    assert sample[0] == sample[1]


def test_language_model_hyperparameters_are_one_list_and_bad_values_name_their_key():
    import inspect

    from omegaconf import OmegaConf

    from gen_lightning.rnn.module import CharRNN

    conf = Path(__file__).resolve().parents[1] / "conf" / "model"
    for cls, name in ((GPT, "gpt"), (BERT, "bert"), (CharRNN, "lstm")):
        keys = set(OmegaConf.load(conf / f"{name}.yaml")) - {"_target_"}
        assert set(inspect.signature(cls).parameters) == keys | {"tokenizer"}, name
    with pytest.raises(ValueError, match=r"GPT: model.num_heads=2.0 is not of type int"):
        GPT(CHARS, num_heads=2.0)
    with pytest.raises(ValueError, match=r"BERT has no hyperparameter mask_rate; it takes: .*mask_prob"):
        BERT(CHARS, mask_rate=0.2)
    with pytest.raises(ValueError, match=r"mask_prob must be in \(0, 1\), got 1.5"):
        BERT(CHARS, mask_prob=1.5)
    with pytest.raises(ValueError, match=r"CharRNN: model.lr='fast' is not of type float"):
        CharRNN(CHARS, lr="fast")
