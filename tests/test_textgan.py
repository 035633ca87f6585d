"""The text GANs (gen_lightning/textgan/): SeqGAN's rewards and roll-out copy, the Gumbel-softmax relaxation and its
schedule, adversarial steps that change the generator, exact resume across the pre-training/adversarial switch."""

from __future__ import annotations

import pytest
import torch
from lightning.pytorch import Trainer
from test_resume import assert_same_weights, run

from gen_lightning.config import compose
from gen_lightning.data.text.sentences import SentencesDataModule
from gen_lightning.run import train
from gen_lightning.textgan.nets import CNNDiscriminator, RowNoise, mask_after_eos
from gen_lightning.textgan.relgan import RelGAN
from gen_lightning.textgan.seqgan import SeqGAN

TINY = {"hidden_dim": 16, "d_embed_dim": 8, "d_filter_widths": [2, 3], "d_num_filters": [8, 8]}


@pytest.fixture(scope="module")
def sentences():
    dm = SentencesDataModule(max_length=12, too_long="drop", batch_size=16)
    dm.setup()
    return dm


def fit(module, dm, steps: int, tmp_path) -> None:
    trainer = Trainer(max_steps=steps, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                      enable_model_summary=False, default_root_dir=tmp_path, limit_val_batches=0)  # fmt: skip
    trainer.fit(module, datamodule=dm)


def test_sequences_are_cut_after_their_first_eos_and_the_discriminator_reads_ids_and_distributions():
    ids = torch.tensor([[5, 1, 7, 1, 8], [4, 4, 4, 4, 4]])
    cut, kept = mask_after_eos(ids, eos_id=1, pad_id=0)
    assert cut.tolist() == [[5, 1, 0, 0, 0], [4, 4, 4, 4, 4]]
    assert kept.tolist() == [[True, True, False, False, False], [True] * 5]
    d = CNNDiscriminator(10, 4, [2, 3], [3, 3], dropout=0.0, num_rep=2).eval()
    one_hot = torch.nn.functional.one_hot(cut, 10).float()
    assert d(cut).shape == (2, 2) and torch.allclose(d(cut), d(one_hot), atol=1e-6)  # a lookup is the product
    with pytest.raises(ValueError, match="shorter than the widest filter"):
        d(cut[:, :2])
    with pytest.raises(ValueError, match="equal non-zero lengths"):
        CNNDiscriminator(10, 4, [2, 3], [3], dropout=0.0)


def test_seqgan_rewards_are_probabilities_and_the_rollout_copy_follows_with_its_rate(sentences):
    torch.manual_seed(0)
    gan = SeqGAN(**sentences.model_kwargs(), rollouts=3, rollout_update_rate=0.8, **TINY)
    ids, kept = gan.draw(4, 13)
    q = gan.rewards(ids)
    assert q.shape == (4, 13) and ((q > 0) & (q < 1)).all()
    final = torch.sigmoid(gan.discriminator.eval()(ids)).mean(1)
    assert torch.allclose(q[:, -1], final)  # Q(T) = D(Y_1:T)
    short = ids.clone()
    short[0, 2], short[0, 3:] = gan.tokenizer.eos_id, gan.tokenizer.pad_id  # a sentence of 2 words and <eos>
    q = gan.rewards(short)
    assert torch.allclose(q[0, 2:], torch.sigmoid(gan.discriminator(short[:1])).mean())  # finished: Q = D(Y)
    gan.start_adversarial(torch.optim.Adam(gan.net.parameters()))
    before = gan.rollout_net.head.weight.clone()
    assert torch.equal(before, gan.net.head.weight)  # copied when the adversarial phase starts
    with torch.no_grad():
        gan.net.head.weight.add_(1.0)
    gan.update_rollout()
    assert torch.allclose(gan.rollout_net.head.weight, before + 0.2, atol=1e-6)  # 0.8 * old + 0.2 * (old + 1)


def test_gumbel_relaxation_is_differentiable_and_beta_follows_the_exponential_schedule(sentences):
    torch.manual_seed(0)
    gan = RelGAN(**sentences.model_kwargs(), beta_max=100.0, beta_steps=4, pretrain_steps=2, d_num_rep=2, **TINY)
    assert gan.beta == 1.0
    gan.batches.fill_(4)  # two adversarial batches of four
    assert gan.beta == pytest.approx(10.0)
    gan.batches.fill_(100)
    assert gan.beta == pytest.approx(100.0)  # stays at beta_max
    soft, hard = gan.relaxed_draw(3, 13, beta=gan.beta)
    assert soft.shape == (3, 13, gan.tokenizer.vocab_size) and torch.allclose(soft.sum(-1), torch.ones(3, 13))
    assert torch.equal(soft.argmax(-1), hard)  # the relaxation peaks at the sampled token
    gan.discriminator(soft).sum().backward()
    assert gan.net.head.weight.grad is not None and gan.net.head.weight.grad.abs().sum() > 0


@pytest.mark.parametrize("cls", [SeqGAN, RelGAN])
def test_a_tiny_adversarial_run_changes_the_generator(cls, sentences, tmp_path):
    torch.manual_seed(0)
    extra = {"rollouts": 2} if cls is SeqGAN else {"d_num_rep": 2, "beta_steps": 4}
    gan = cls(**sentences.model_kwargs(), pretrain_steps=20, d_pretrain_steps=5, **TINY, **extra)
    fit(gan, sentences, 25, tmp_path)  # maximum likelihood, then discriminator pre-training
    assert gan.phase == "adversarial" and gan.optimizers()[0].param_groups[0]["lr"] == gan.hparams.lr
    before = {k: v.clone() for k, v in gan.net.state_dict().items()}
    d_before = gan.discriminator.out.weight.clone()
    fit(gan, sentences, 2 * 3, tmp_path / "adv")  # a new trainer: 3 adversarial batches, a G and a D step each
    assert int(gan.batches) == 28 and gan.optimizers()[0].param_groups[0]["lr"] == gan.hparams.lr_adv
    assert any(not torch.equal(before[k], v) for k, v in gan.net.state_dict().items()), "the generator did not move"
    assert not torch.equal(d_before, gan.discriminator.out.weight)
    texts = gan.sample(3, 13, temperature=0.7, generator=torch.Generator().manual_seed(0))
    assert texts == gan.sample(3, 13, temperature=0.7, generator=torch.Generator().manual_seed(0))
    assert gan.sample_info()["phase"] == "adversarial"


SWITCH = ["trainer.val_check_interval=10", "trainer.check_val_every_n_epoch=null", "trainer.limit_val_batches=2",
          "model.pretrain_steps=10", "model.d_pretrain_steps=3"]  # fmt: skip


@pytest.mark.parametrize("model", ["seqgan", "relgan"])
def test_resume_across_the_pretraining_adversarial_switch_is_exact(model, tmp_path, monkeypatch):
    """Checkpoint at step 7 (maximum likelihood), crash, resume: D pre-training at batches 10-12, the adversarial
    phase from batch 13 (its roll-out copy, learning rate and temperature schedule) equal the uninterrupted run."""
    full = run(tmp_path / "full", "checkpoint.every_n_train_steps=1000", *SWITCH, model=model)
    with pytest.raises(RuntimeError, match="simulated crash"):
        run(tmp_path / "cut", "checkpoint.every_n_train_steps=7", *SWITCH, crash_at=7, monkeypatch=monkeypatch,
            model=model)  # fmt: skip
    monkeypatch.undo()
    saved = torch.load(tmp_path / "cut" / "checkpoints" / "last.ckpt", weights_only=True)
    assert int(saved["state_dict"]["batches"]) == 7  # the checkpoint is in the maximum-likelihood phase
    resumed = run(tmp_path / "cut", "resume=true", model=model)
    assert resumed["global_step"] == full["global_step"] >= 30  # 13 one-step batches, then two steps a batch
    assert_same_weights(tmp_path / "full" / "checkpoints" / "last.ckpt", tmp_path / "cut" / "checkpoints" / "last.ckpt")
    state = torch.load(tmp_path / "cut" / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"]
    assert int(state["batches"]) > 13  # it went through the switch after the resume
    assert resumed["history"] == [{**r, "time_s": a["time_s"]} for r, a in zip(full["history"], resumed["history"])]


DDP_EQUAL = ["trainer.accelerator=cpu", "trainer.max_steps=8", "trainer.max_epochs=-1"]  # 3 adversarial batches
RUNS = ("ddp", "one", "other_seed")


@pytest.mark.slow  # two DDP processes and two plain runs per model: ~1 min each on the shared 2-core machine
@pytest.mark.parametrize("model", ["seqgan", "relgan"])
def test_text_gans_under_ddp_equal_one_process_with_the_batch_doubled(model, tmp_path):
    """Two gloo processes with batches of 8 train to the weights of one process with batches of 16, through all
    three phases (maximum likelihood, discriminator pre-training, adversarial), with strategy=ddp: no search for
    unused parameters (DDP raises if a backward leaves a parameter without gradient). The same sentences meet the
    same random numbers (textgan/nets.py RowNoise); a per-token loss is a mean over the global batch's tokens.
    Tolerance rtol 1e-4, atol 1e-5 (about 2e-7 measured, see the assert): the processes' LSTM and convolutions run on
    8 rows where one process runs 16, and DDP sums the gradients in another order, so the weights agree to float
    rounding, not bit for bit; another seed moves them by ~1e-2 and more."""
    from conftest import tiny_overrides
    from helpers import module_weights
    from omegaconf import OmegaConf
    from test_cli import gen_lightning

    ddp = ["trainer=ddp", "trainer.devices=2", "data.batch_size=8", *DDP_EQUAL]
    proc = gen_lightning("fit", *tiny_overrides(tmp_path / "ddp", *ddp, model=model), timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert OmegaConf.load(tmp_path / "ddp" / "config.yaml").trainer.strategy == "ddp"
    for name, seed in (("one", 0), ("other_seed", 1)):  # in this process: no interpreter to start
        cfg = compose(tiny_overrides(tmp_path / name, "data.batch_size=16", f"seed={seed}", *DDP_EQUAL, model=model))
        train.fit(cfg)
    ddp_w, one, other = (module_weights(tmp_path / r / "checkpoints" / "last.ckpt") for r in RUNS)
    assert int(one["batches"]) == int(ddp_w["batches"]) == 5  # 1 + 1 pre-training batches, then 3 adversarial ones
    assert ddp_w.keys() == one.keys()
    for k in one:
        torch.testing.assert_close(ddp_w[k], one[k], rtol=1e-4, atol=1e-5, msg=lambda m, k=k: f"{k}: {m}")
    gap = max(float((ddp_w[k].double() - one[k].double()).abs().max()) for k in one if one[k].is_floating_point())
    other_gap = max(float((other[k].double() - one[k].double()).abs().max()) for k in one if one[k].is_floating_point())
    print(f"{model}: max |DDP - one process| = {gap:.3g}, another seed {other_gap:.3g}")
    assert other_gap > 1e-2  # the comparison can fail: another seed's weights are far outside the tolerance


def test_only_next_token_models_report_the_likelihood_of_held_out_text():
    """The sentences protocol reports nll_test for models whose forward gives next-token logits; BERT (masked tokens)
    and non-text models declare none, so the protocol leaves the number out rather than report a meaningless one."""
    from gen_lightning.metrics.sentences import has_likelihood
    from gen_lightning.rnn.module import CharRNN
    from gen_lightning.transformer.bert import BERT
    from gen_lightning.transformer.gpt import GPT
    from gen_lightning.vae.module import VAE

    assert [has_likelihood(c) for c in (GPT, CharRNN, SeqGAN, RelGAN)] == [True] * 4
    assert [has_likelihood(c) for c in (BERT, VAE)] == [False, False]


def test_a_process_draws_its_rows_of_the_global_batch_as_one_process_draws_them(sentences):
    """Rank r of 2 holds rows r, r + 2, ... of one process's batch (EpochSampler's strided shards); its uniforms,
    sampled sentences, roll-out rewards, Gumbel noise and discriminator dropout are those rows of one process's."""
    one, ranks = RowNoise(7, 0, 1, (3,)), [RowNoise(7, r, 2, (3,)) for r in (0, 1)]
    u = one.at("x").rand(6, 4, blocks=3).view(3, 6, 4)  # roll-out layout: 3 blocks of the batch's rows
    for r, noise in enumerate(ranks):
        assert torch.equal(noise.at("x").rand(3, 4, blocks=3).view(3, 3, 4), u[:, r::2])
    assert not torch.equal(one.at("y").rand(6, 4), one.at("x").rand(6, 4))  # each name its own numbers
    assert not torch.equal(RowNoise(8, 0, 1, (3,)).at("x").rand(6, 4), one.at("x").rand(6, 4))  # and each seed
    torch.manual_seed(0)
    gan = SeqGAN(**sentences.model_kwargs(), rollouts=3, d_dropout=0.5, **TINY)
    ids, _ = gan.draw(6, 13, one.at("sample"))
    q = gan.rewards(ids, one.at("rollout"))
    for r, noise in enumerate(ranks):
        ids_r, _ = gan.draw(3, 13, noise.at("sample"))
        assert torch.equal(ids_r, ids[r::2])
        torch.testing.assert_close(gan.rewards(ids_r, noise.at("rollout")), q[r::2], rtol=1e-5, atol=1e-6)
    assert int(gan.noise_seed) == 0  # the seed set before the model was built
    older = {k: v for k, v in gan.state_dict().items() if k != "noise_seed"}  # a checkpoint from before noise_seed
    SeqGAN(**sentences.model_kwargs(), rollouts=3, d_dropout=0.5, **TINY).load_state_dict(older)  # still loads
    relgan = RelGAN(**sentences.model_kwargs(), d_num_rep=2, d_dropout=0.5, **TINY)
    real = sentences.datasets["train"][:6][1].clamp(min=0)
    for d in (gan.discriminator.train(), relgan.discriminator.train()):  # one and two representations
        s = d(real, one.at("real"))
        for r, noise in enumerate(ranks):
            torch.testing.assert_close(d(real[r::2], noise.at("real")), s[r::2], rtol=1e-5, atol=1e-6)
        assert not torch.allclose(d(real, one.at("fake")), s)  # dropout is on: another name, other masks
    soft, hard = relgan.relaxed_draw(6, 13, 10.0, one.at("sample"))
    for r, noise in enumerate(ranks):
        soft_r, hard_r = relgan.relaxed_draw(3, 13, 10.0, noise.at("sample"))
        assert torch.equal(hard_r, hard[r::2])
        torch.testing.assert_close(soft_r, soft[r::2], rtol=1e-5, atol=1e-6)


def test_resuming_a_checkpoint_written_before_the_row_noise_says_what_to_do(tmp_path):
    """A text-GAN checkpoint without ``noise_seed`` (written before the rank-invariant draws) cannot resume exactly:
    the refusal names the key and the two ways on (read it, or init_from= it in a new run)."""
    from gen_lightning.run import checkpoint as ckpt_io

    run(tmp_path / "old", model="seqgan")
    path = tmp_path / "old" / "checkpoints" / "last.ckpt"
    ckpt = ckpt_io.read(path)
    module = ckpt_io.load_module(path)
    del ckpt["state_dict"]["noise_seed"]
    with pytest.raises(ckpt_io.CheckpointError, match=r"missing: noise_seed\): .*older gen-lightning.*init_from="):
        ckpt_io.check_compatible(ckpt, module, path)
