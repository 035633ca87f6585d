"""Sequence-to-sequence models: decoding against exhaustive search, the KV cache, masks, generate, checkpoints."""

from __future__ import annotations

import inspect
import itertools
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf

from gen_lightning.callbacks.resume import STATE_KEY
from gen_lightning.run.checkpoint import _comparable, load_module
from gen_lightning.seq2seq.decoding import beam_search, greedy
from gen_lightning.seq2seq.module import DECODING, RNNSeq2Seq, TransformerSeq2Seq
from gen_lightning.seq2seq.nets import Seq2SeqConfig, TransformerSeq2SeqNet
from gen_lightning.seq2seq.rnn_nets import RNNSeq2SeqConfig, RNNSeq2SeqNet

PAD, BOS, EOS = 0, 1, 2
V = 6  # pad, bos, eos, unk and two words: three symbols a hypothesis can hold


def tiny_nets() -> dict[str, torch.nn.Module]:
    torch.manual_seed(0)
    cfg = Seq2SeqConfig(V, V, max_len=16, num_layers=1, num_decoder_layers=2, num_heads=2, hidden_dim=16, dropout=0)
    nets = {
        "transformer": TransformerSeq2SeqNet(cfg),
        "gru_bahdanau": RNNSeq2SeqNet(
            RNNSeq2SeqConfig(V, V, cell="gru", attention="bahdanau", hidden_dim=16, dropout=0)
        ),
        "lstm_luong": RNNSeq2SeqNet(
            RNNSeq2SeqConfig(V, V, cell="lstm", attention="luong", hidden_dim=16, num_layers=2, dropout=0)
        ),
    }
    for net in nets.values():
        for p in net.parameters():  # sharper distributions than the initialisation: the search matters
            p.data.mul_(4.0)
    return {k: v.eval() for k, v in nets.items()}


NETS = tiny_nets()


def sources():
    source = torch.tensor([[4, 5, 3, EOS], [5, EOS, PAD, PAD]])
    return source, source != PAD


def sequence_logp(net, source, mask, ids: list[int]) -> float:
    """log p(ids + eos | source) under teacher forcing, as the decoder scores it (no renormalisation)."""
    target = torch.tensor([[BOS, *ids, EOS]])
    with torch.no_grad():
        logp = net(source, mask, target[:, :-1]).log_softmax(-1)[0]
    return sum(logp[t, token].item() for t, token in enumerate(target[0, 1:].tolist()))


@pytest.mark.parametrize("name", sorted(NETS))
@pytest.mark.parametrize("length_penalty", [0.0, 1.0, 2.0])
def test_beam_search_finds_the_exhaustive_optimum(name, length_penalty):
    """With a beam as wide as the search space (3^3 = 27 prefixes), beam search is exact."""
    net, (source, mask) = NETS[name], sources()
    limits = torch.tensor([4, 3])  # generated tokens, eos included, of each sentence
    found = beam_search(net, source, mask, beam=27, bos=BOS, eos=EOS, banned=(PAD, BOS), limits=limits,
                        length_penalty=length_penalty)  # fmt: skip
    for b in range(2):
        candidates = [list(c) for n in range(int(limits[b])) for c in itertools.product((3, 4, 5), repeat=n)]
        scored = [
            (sequence_logp(net, source[b : b + 1, : int(mask[b].sum())], mask[b : b + 1, : int(mask[b].sum())], c)
             / (len(c) + 1) ** length_penalty, c)
            for c in candidates
        ]  # fmt: skip
        best = max(scored)[1]
        assert found[b] == best, (b, found[b], best)


@pytest.mark.parametrize("name", sorted(NETS))
def test_beam_of_one_is_greedy_and_a_wider_beam_scores_no_worse(name):
    net, (source, mask) = NETS[name], sources()
    limits = torch.tensor([6, 6])
    common = dict(bos=BOS, eos=EOS, banned=(PAD, BOS), limits=limits)
    g = greedy(net, source, mask, **common)
    assert beam_search(net, source, mask, beam=1, length_penalty=0.0, **common) == g
    wide = beam_search(net, source, mask, beam=4, length_penalty=0.0, **common)
    for b in range(2):
        n = int(mask[b].sum())
        assert (
            sequence_logp(net, source[b : b + 1, :n], mask[b : b + 1, :n], wide[b])
            >= sequence_logp(net, source[b : b + 1, :n], mask[b : b + 1, :n], g[b]) - 1e-5
        )


def test_kv_cache_gives_the_uncached_logits_and_outputs():
    torch.manual_seed(1)
    cfg = Seq2SeqConfig(50, 50, max_len=64, num_layers=2, num_decoder_layers=2, num_heads=4, hidden_dim=32, dropout=0)
    net = TransformerSeq2SeqNet(cfg).eval()
    source = torch.randint(4, 50, (3, 9))
    source[2, 5:] = PAD
    mask = source != PAD
    target = torch.randint(4, 50, (3, 12))
    cached, plain = net.start(source, mask, use_cache=True), net.start(source, mask, use_cache=False)
    with torch.no_grad():
        for t in range(1, 13):
            a, cached = net.step(target[:, :t], cached)
            b, plain = net.step(target[:, :t], plain)
            assert torch.allclose(a, b, atol=1e-5), t
    limits = torch.full((3,), 40)
    common = dict(bos=BOS, eos=EOS, banned=(PAD, BOS), limits=limits)
    assert greedy(net, source, mask, use_cache=True, **common) == greedy(net, source, mask, use_cache=False, **common)
    beam = [beam_search(net, source, mask, beam=4, use_cache=c, **common) for c in (True, False)]
    assert beam[0] == beam[1]


@pytest.mark.parametrize("name", sorted(NETS))
def test_padding_does_not_change_a_sentence(name):
    """A source decoded alone or next to a longer one (so padded) gives the same hypothesis."""
    net = NETS[name]
    long, short = torch.tensor([[4, 5, 3, 4, 5, 4, EOS]]), torch.tensor([[5, 4, EOS]])
    batch = torch.full((2, 7), PAD)
    batch[0], batch[1, :3] = long[0], short[0]
    common = dict(bos=BOS, eos=EOS, banned=(PAD, BOS))
    together = beam_search(net, batch, batch != PAD, beam=3, limits=torch.tensor([8, 8]), **common)
    alone = beam_search(net, short, short != PAD, beam=3, limits=torch.tensor([8]), **common)
    assert together[1] == alone[0]


def test_sampling_follows_the_generator_and_stays_in_the_vocabulary():
    torch.manual_seed(0)
    cfg = Seq2SeqConfig(V, V, max_len=16, num_layers=1, num_decoder_layers=1, num_heads=2, hidden_dim=16, dropout=0)
    net, (source, mask) = TransformerSeq2SeqNet(cfg).eval(), sources()
    common = dict(bos=BOS, eos=EOS, banned=(PAD, BOS), limits=torch.tensor([10, 10]), temperature=1.0, top_k=3)
    a = greedy(net, source, mask, generator=torch.Generator().manual_seed(5), **common)
    b = greedy(net, source, mask, generator=torch.Generator().manual_seed(5), **common)
    assert a == b and all(len(x) <= 9 for x in a)  # eos may come first: an empty text is a valid draw
    assert all(t not in (PAD, BOS, EOS) for x in a for t in x)
    draws = [greedy(net, source, mask, generator=torch.Generator().manual_seed(s), **common)[0] for s in range(8)]
    draws = {tuple(d) for d in draws}
    assert len(draws) > 1


def test_no_repeat_ngram_blocks_repeated_ngrams():
    net, (source, mask) = NETS["transformer"], sources()
    common = dict(bos=BOS, eos=EOS, banned=(PAD, BOS, EOS), limits=torch.tensor([9, 9]))  # 8 tokens, no early eos
    free = greedy(net, source, mask, **common)
    assert any(len(set(zip(x, x[1:]))) < len(x) - 1 for x in free), "the tiny net repeats bigrams by itself"
    for search in (greedy, lambda *a, **kw: beam_search(*a, beam=3, **kw)):
        for out in search(net, source, mask, no_repeat_ngram=2, **common):
            assert len(out) == 8 and len(set(zip(out, out[1:]))) == len(out) - 1  # every bigram once


# Hyperparameters as the constructors of commit 15c097f saved them (one keyword each), before the settings
# dataclasses: a checkpoint written then must rebuild the same module with load_module's cls(**hparams).
OLD_TRANSFORMER_HPARAMS = {
    "tokenizer": {"kind": "char", "chars": " abcdefghij"}, "source_tokenizer": None, "max_len": 16, "num_layers": 1,
    "num_decoder_layers": 1, "num_heads": 2, "hidden_dim": 16, "dropout": 0.1, "bias": True,
    "positions": "sinusoidal", "share_embeddings": True, "tie_output": True, "label_smoothing": 0.1, "lr": 0.001,
    "min_lr": 0.0001, "betas": (0.9, 0.98), "weight_decay": 0.01, "warmup_steps": 400, "lr_decay_steps": 10000,
    "beam": 1, "length_penalty": 1.0, "max_len_a": 1.2, "max_len_b": 10, "temperature": 0.0, "top_k": None,
    "top_p": None, "use_cache": True, "no_repeat_ngram": 0,
}  # fmt: skip


def test_old_style_hyperparameters_rebuild_the_module_from_a_checkpoint(tmp_path):
    torch.manual_seed(0)
    module = TransformerSeq2Seq(**OLD_TRANSFORMER_HPARAMS).eval()
    assert _comparable(dict(module.hparams)) == _comparable(OLD_TRANSFORMER_HPARAMS)
    target = "gen_lightning.seq2seq.module.TransformerSeq2Seq"
    ckpt = {
        "state_dict": module.state_dict(),
        "hyper_parameters": OLD_TRANSFORMER_HPARAMS,
        STATE_KEY: {"target": target},
    }
    torch.save(ckpt, tmp_path / "old.ckpt")
    loaded = load_module(tmp_path / "old.ckpt", overrides={"beam": 2})
    assert loaded.hparams.beam == 2 and loaded.decoding()["beam"] == 2
    assert loaded.generate(["abc", "hij a"], beam=1) == module.generate(["abc", "hij a"])
    # Hyperparameters are saved as plain values (a ListConfig from Hydra becomes a list): weights_only loads them.
    betas = OmegaConf.create([0.9, 0.99])
    torch.save(dict(TransformerSeq2Seq(**{**OLD_TRANSFORMER_HPARAMS, "betas": betas}).hparams), tmp_path / "h.pt")
    assert torch.load(tmp_path / "h.pt", weights_only=True)["betas"] == [0.9, 0.99]


def test_seq2seq_hyperparameters_are_one_list_and_bad_values_name_their_key():
    conf = Path(__file__).resolve().parents[1] / "conf" / "model"
    for cls, name in ((TransformerSeq2Seq, "transformer_seq2seq"), (RNNSeq2Seq, "rnn_seq2seq")):
        keys = set(OmegaConf.load(conf / f"{name}.yaml")) - {"_target_"}
        assert set(inspect.signature(cls).parameters) == keys | {"tokenizer", "source_tokenizer"}, name
        assert set(DECODING) <= keys
    assert inspect.signature(RNNSeq2Seq).parameters["warmup_steps"].default == 200  # the sibling's own default
    tok = {"kind": "char", "chars": "ab"}
    with pytest.raises(ValueError, match=r"TransformerSeq2Seq: model.beam='two' is not of type int"):
        TransformerSeq2Seq(tokenizer=tok, beam="two")
    with pytest.raises(ValueError, match=r"model.betas=\[0.9\] is not of type tuple\[float, float\]"):
        RNNSeq2Seq(tokenizer=tok, betas=[0.9])
    with pytest.raises(ValueError, match=r"RNNSeq2Seq has no hyperparameter beams; it takes: .*\bbeam\b"):
        RNNSeq2Seq(tokenizer=tok, beams=2)
    with pytest.raises(ValueError, match="beam must be >= 1, got 0"):
        TransformerSeq2Seq(tokenizer=tok, beam=0)
    with pytest.raises(ValueError, match="cell must be one of"):
        RNNSeq2Seq(tokenizer=tok, cell="rnn")
