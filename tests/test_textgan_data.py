"""``data=sentences`` (gen_lightning/data/text/sentences.py) and the ``sentences`` metric protocol on real models."""

from __future__ import annotations

import pytest
import torch
from lightning.pytorch import Trainer
from omegaconf import OmegaConf

from gen_lightning.data.text.sentences import IGNORE, SentencesDataModule
from gen_lightning.data.text.tokenizers import from_config
from gen_lightning.data.text.words import WordTokenizer
from gen_lightning.metrics.evaluate import evaluate_module
from gen_lightning.metrics.sentences import SentenceMetrics


def write(folder, train: str, test: str = "a dog runs .\na cat sleeps .\n"):
    folder.mkdir(exist_ok=True)
    (folder / "train.txt").write_text(train)
    (folder / "test.txt").write_text(test)
    return folder


def test_batches_pad_and_mask_and_the_vocabulary_comes_from_training(tmp_path):
    path = write(tmp_path / "d", "a dog 's ball .\n\na cat sat on the mat .\n")
    dm = SentencesDataModule(path=str(path), max_length=8, batch_size=2)
    dm.setup()
    tok = dm.tokenizer
    assert tok.words[:3] == ["<pad>", "<eos>", "<unk>"] and "runs" not in tok.words  # test words are unknown
    assert [" ".join(s) for s in dm.sentences("test")] == ["a dog runs .", "a cat sleeps ."]
    inputs, targets = dm.datasets["train"][0]
    assert inputs.shape == targets.shape == (9,)
    words = tok.encode_words(["a", "dog", "'s", "ball", "."])
    assert inputs[:7].tolist() == [tok.eos_id, *words, tok.eos_id] and (inputs[7:] == tok.pad_id).all()
    assert targets[:6].tolist() == [*words, tok.eos_id] and (targets[6:] == IGNORE).all()
    test_inputs, _ = dm.datasets["test"][0]
    assert tok.unk_id in test_inputs.tolist()
    # The description rebuilds the same tokenizer (checkpoints carry it); a line break is <eos> both ways.
    again = from_config(dm.model_kwargs()["tokenizer"])
    assert isinstance(again, WordTokenizer) and again.words == tok.words
    assert again.encode("\n").tolist() == [tok.eos_id]
    assert again.decode(again.encode("a dog .\na cat")) == "a dog .\na cat"


def test_bad_files_are_clear_errors(tmp_path):
    write(tmp_path / "empty", "\n \n")
    with pytest.raises(ValueError, match=r"train.txt is empty"):
        SentencesDataModule(path=str(tmp_path / "empty")).setup()
    write(tmp_path / "long", "one two three four five six\nshort line\n")
    with pytest.raises(ValueError, match=r"train.txt:1 has 6 words, more than data.max_length=4.*too_long=truncate"):
        SentencesDataModule(path=str(tmp_path / "long"), max_length=4).setup()
    dm = SentencesDataModule(path=str(tmp_path / "long"), max_length=4, too_long="truncate")
    dm.setup()
    assert dm.sentences("train")[0] == ["one", "two", "three", "four"] and dm.card()["lines_truncate"] == 1
    dm = SentencesDataModule(path=str(tmp_path / "long"), max_length=4, too_long="drop")
    dm.setup()
    assert dm.sentences("train") == [["short", "line"]]
    (tmp_path / "latin").mkdir()
    (tmp_path / "latin" / "train.txt").write_bytes("un caf\xe9 noir\n".encode("latin-1"))
    (tmp_path / "latin" / "test.txt").write_text("x\n")
    with pytest.raises(ValueError, match=r"not valid UTF-8.*data.encoding=latin-1"):
        SentencesDataModule(path=str(tmp_path / "latin")).setup()
    with pytest.raises(ValueError, match="data.too_long must be one of"):
        SentencesDataModule(too_long="cut")
    with pytest.raises(ValueError, match="data.tokenizer must be one of"):
        SentencesDataModule(tokenizer="nltk")


def test_one_file_is_split_and_the_embedded_default_works_offline(tmp_path):
    file = tmp_path / "all.txt"
    file.write_text("".join(f"sentence number {i} .\n" for i in range(20)))
    dm = SentencesDataModule(path=str(file), test_fraction=0.25)
    dm.setup()
    assert len(dm.sentences("train")) == 15 and dm.sentences("test")[0] == ["sentence", "number", "15", "."]
    embedded = SentencesDataModule()
    embedded.setup()
    assert len(embedded.sentences("train")) > 1000 and embedded.tokenizer.vocab_size > 1000


def tiny_lm(model: str, dm) -> torch.nn.Module:
    from gen_lightning.rnn.module import CharRNN
    from gen_lightning.transformer.gpt import GPT

    torch.manual_seed(0)
    if model == "lstm":
        return CharRNN(**dm.model_kwargs(), hidden_dim=32, num_layers=1, dropout=0.0, lr=1e-2)
    kwargs = {"num_layers": 1, "num_heads": 2, "hidden_dim": 32, "lr": 3e-3, "warmup_steps": 0}
    return GPT(**dm.model_kwargs(), block_size=dm.hparams.max_length + 1, **kwargs)


@pytest.fixture
def small_sentences():
    dm = SentencesDataModule(max_length=32, batch_size=32)
    dm.setup()
    return dm


@pytest.mark.parametrize("model", ["lstm", "gpt"])
def test_language_models_train_on_sentences_and_the_protocol_scores_them(model, small_sentences, tmp_path):
    dm = small_sentences
    module = tiny_lm(model, dm)
    protocol = SentenceMetrics(num_items=40, batch_size=20, temperatures=[0.5])
    before = evaluate_module(module, dm, protocol)["metrics"]
    trainer = Trainer(
        max_steps=40, logger=False, enable_checkpointing=False, enable_progress_bar=False,
        enable_model_summary=False, default_root_dir=tmp_path, num_sanity_val_steps=0, limit_val_batches=0,
    )  # fmt: skip
    trainer.fit(module, datamodule=dm)
    result = evaluate_module(module, dm, protocol)
    after = result["metrics"]
    assert after["test/nll_test"] < before["test/nll_test"] - 0.5  # it learnt
    assert after["test/bleu2"] > before["test/bleu2"]
    # NLL_test is the validation loss of the language model (the validation split is the test split here).
    val = Trainer(logger=False, enable_progress_bar=False, enable_model_summary=False).validate(
        module, dm, verbose=False
    )
    assert after["test/nll_test"] == pytest.approx(val[0]["val/loss"], rel=1e-5)
    # The same numbers again (seeded per batch), the card, the temperature sweep, the sentences as outputs.
    assert evaluate_module(module, dm, protocol)["metrics"] == after
    card = result["protocol"]
    assert card["hypotheses"] == 40 and card["references"] == len(dm.sentences("test")) and card["temperature"] == 1.0
    assert "regex" in card["tokenizer"] and "method1" in card["bleu"]
    assert {"test/bleu5_t0.5", "test/self_bleu5_t0.5"} <= set(after)
    assert after["test/self_bleu2_t0.5"] > after["test/self_bleu2"]  # colder: less diverse
    assert len(result["outputs"]) == 40 and all("\n" not in s for s in result["outputs"])


def test_texygen_protocol_by_name_and_bad_protocol_values():
    from hydra.utils import instantiate

    from gen_lightning.config import compose
    from gen_lightning.tasks import protocols_for

    cfg = compose(["model=lstm", "data=sentences", "metrics=sentences_texygen"])
    protocol = instantiate(cfg.metrics)  # the published table's: every reference, as many hypotheses
    assert protocol.num_references is None and protocol.self_bleu_items is None and protocol.num_items == 10000
    fast = instantiate(compose(["model=lstm", "data=sentences", "metrics=sentences_texygen_fast"]).metrics)
    assert fast.num_references == 500 and fast.self_bleu_items == 500
    assert compose(["model=lstm", "data=sentences"]).metrics._target_.endswith("SentenceMetrics")  # its default
    assert "sentences" in protocols_for(("unconditional", None, "text"))
    # `gen-lightning evaluate metrics=NAME` reads an option as fit composes it: its defaults list included.
    from gen_lightning.commands.evaluate import metrics_config

    alone = metrics_config({}, ["metrics=sentences_texygen"])
    assert OmegaConf.to_container(alone) == OmegaConf.to_container(cfg.metrics)
    assert metrics_config({}, ["metrics=sentences_texygen", "metrics.num_items=64"]).num_items == 64
    with pytest.raises(ValueError, match="unknown metrics option 'texygen'; choose from .*sentences_texygen"):
        metrics_config({}, ["metrics=texygen"])
    with pytest.raises(ValueError, match=r"metrics.temperatures\[1\] must be a positive number, got 'hot'"):
        SentenceMetrics(temperatures=[0.8, "hot"])
    with pytest.raises(ValueError, match="metrics.temperature must be a positive number"):
        SentenceMetrics(temperature=0)
    with pytest.raises(ValueError, match="metrics.num_references must be null"):
        SentenceMetrics(num_references=1)


# ----------------------------------------------------------------- data=oracle


def tiny_oracle(seed: int = 3, **kwargs):
    from gen_lightning.data.text.oracle import OracleDataModule

    dm = OracleDataModule(
        vocab_size=60, hidden_dim=8, max_length=6, num_train=256, num_test=64, oracle_seed=seed, **kwargs
    )
    dm.setup()
    return dm


def test_oracle_is_reproducible_from_its_seed_and_scores_its_own_data_best():
    dm, again, other = tiny_oracle(), tiny_oracle(), tiny_oracle(seed=4)
    assert torch.equal(dm.ids["train"], again.ids["train"]) and not torch.equal(dm.ids["train"], other.ids["train"])
    assert dm.ids["train"].shape == (256, 6) and int(dm.ids["train"].max()) < 60
    inputs, targets = dm.datasets["train"][0]
    assert inputs.shape == (7,) and targets[-1] == dm.tokenizer.eos_id and inputs[0] == dm.tokenizer.eos_id
    assert dm.sentences("train")[0] == [str(t) for t in dm.ids["train"][0].tolist()]
    own, invalid = dm.oracle_nll(dm.sentences("test"))
    uniform, _ = dm.oracle_nll([[str((7 * i + j) % 60) for j in range(6)] for i in range(64)])
    assert invalid == 0 and own < uniform  # the oracle's samples are likelier under it than arbitrary sequences
    assert dm.oracle_nll([["1", "2"], ["x"] * 6, dm.sentences("test")[0]]) == (
        pytest.approx(float(dm.oracle.nll(dm.ids["test"][:1]))), 2,
    )  # fmt: skip


def test_oracle_is_saved_with_the_run_and_a_different_one_is_refused(tmp_path):
    dm = tiny_oracle()
    lm = tiny_lm("lstm", dm)
    trainer = Trainer(max_steps=2, logger=False, enable_progress_bar=False, enable_model_summary=False,
                      default_root_dir=tmp_path, limit_val_batches=0)  # fmt: skip
    trainer.fit(lm, datamodule=dm)
    trainer.save_checkpoint(tmp_path / "last.ckpt")
    saved = torch.load(tmp_path / "last.ckpt", weights_only=True)["OracleDataModule"]["oracle"]
    assert torch.equal(saved["head.weight"], dm.oracle.head.weight)
    fresh = tiny_oracle()
    fresh.load_state_dict({"oracle": saved})  # the same seed: accepted
    with pytest.raises(ValueError, match="oracle differs from the one data.oracle_seed=4 draws"):
        tiny_oracle(seed=4).load_state_dict({"oracle": saved})


def test_the_protocol_reports_nll_oracle_on_oracle_data():
    dm = tiny_oracle()
    result = evaluate_module(tiny_lm("lstm", dm), dm, SentenceMetrics(num_items=32, batch_size=16))
    metrics, card = result["metrics"], result["protocol"]
    assert {"test/nll_oracle", "test/nll_test", "test/bleu2"} <= set(metrics)
    assert card["nll_oracle_invalid"] < 32 and "SeqGAN oracle" in card["data"]


def _protocol_result() -> dict:
    dm = SentencesDataModule(max_length=32, batch_size=32)
    dm.setup()
    return evaluate_module(tiny_lm("lstm", dm), dm, SentenceMetrics(num_items=30, batch_size=8))["metrics"]


def _ddp_worker(rank: int, world: int, init: str, out: str) -> None:
    torch.distributed.init_process_group("gloo", init_method=init, rank=rank, world_size=world)
    torch.save(_protocol_result(), f"{out}/{rank}.pt")
    torch.distributed.destroy_process_group()


@pytest.mark.slow  # two fresh interpreters importing torch: ~1 min on the shared 2-core machine
def test_two_processes_give_the_one_process_numbers(tmp_path):
    single = _protocol_result()
    torch.multiprocessing.spawn(_ddp_worker, args=(2, f"file://{tmp_path / 'init'}", str(tmp_path)), nprocs=2)
    for rank in range(2):
        result = torch.load(tmp_path / f"{rank}.pt", weights_only=True)
        assert result.keys() == single.keys()
        for name, value in single.items():  # the same sentences; NLL summed in another order (float32 logits)
            assert result[name] == pytest.approx(value, rel=1e-6 if "nll" in name else 1e-12), (rank, name)


def test_sentences_name_their_source_as_every_data_module(tmp_path, monkeypatch):
    """data/base.py's keys and errors: a hub split of one sentence a row, split as one file; a folder lacking a
    split's file; two sources at once."""
    import datasets

    from gen_lightning.data.sources import DataSourceError, SourceNotFoundError

    rows = {"caption": [f"caption number {i} ." for i in range(10)] + ["", None]}
    monkeypatch.setattr(datasets, "load_dataset", lambda name, split, **kw: datasets.Dataset.from_dict(rows))
    dm = SentencesDataModule(hub_name="someone/captions", text_column="caption", test_fraction=0.2)
    dm.prepare_data()
    dm.setup()
    assert len(dm.sentences("train")) == 8 and dm.sentences("test")[0] == ["caption", "number", "8", "."]
    assert dm.card()["data"] == "hub dataset 'someone/captions'"
    with pytest.raises(DataSourceError, match="data.hub_name='someone/captions' is one split: set data.test_fraction"):
        SentencesDataModule(hub_name="someone/captions", text_column="caption", test_fraction=0.0).setup()
    with pytest.raises(DataSourceError, match="data.text_column='text': the hub dataset 'someone/captions' has no"):
        SentencesDataModule(hub_name="someone/captions").setup()
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "train.txt").write_text("a dog .\n")
    with pytest.raises(SourceNotFoundError, match=r"data.path='.*d' is a folder without data.test_file='test.txt'"):
        SentencesDataModule(path=str(tmp_path / "d")).setup()
    with pytest.raises(DataSourceError, match="give one source, not both data.path='x' and data.hub_name='y'"):
        SentencesDataModule(path="x", hub_name="y")
