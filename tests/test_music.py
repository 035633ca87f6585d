"""Music as text: ABC tunes from music21's corpora, conversion from MIDI / MusicXML, the validity check of sampled
tunes on known good and broken tunes, rendering, the music data module's splits and the ``music`` protocol."""

from __future__ import annotations

import pytest
import torch

from gen_lightning.music import abc, convert, lengths, render, validity

GOOD = {
    "plain": "M:3/4\nL:1/8\nK:G\nD2 | G2 B2 d2 | c2 A2 F2 | G4 |]",
    "tuplet": "M:2/4\nL:1/8\nK:G\n(3GAB G | A4 | B4 |]",
    "repeat with pickup": "M:6/8\nL:1/8\nK:D\n|:A|d2f a2f|g2e c2A:|\n|:B|d>ef [df]2 z|]",
    "phrase across a line end": "M:4/2\nL:1/4\nK:F\nF2 | F2A2G2F2 | E4F2\nG2 | A4A2B2 | G4F2F2 | F8 |]",
}
BROKEN = {
    "overfull bar": ("M:3/4\nL:1/8\nK:G\nG2 B2 d2 e2 | c2 A2 F2 | G6 |]", "bar 1 lasts 4 quarter notes"),
    "short bar mid-line": ("M:3/4\nL:1/8\nK:G\nG2 B2 d2 | c2 A2 | G6 |]", "bar 2 lasts 2"),
    "no meter": ("L:1/8\nK:G\nG2B2d2|G2B2d2|G6|", "no meter"),
    "free meter": ("M:none\nL:1/8\nK:G\nG2B2d2|G2B2d2|G6|", "no meter"),
    "unreadable meter": ("M:3/x\nL:1/8\nK:G\nG2B2d2|G2B2d2|", "cannot parse"),
    "unclosed chord": ("M:3/4\nL:1/8\nK:G\n(((((G2B2d2|[[[[", "cannot parse"),
    "symbols music21 guesses": ("M:2/4\nL:1/8\nK:G\nG4|A4|\u00e9\u00e9\u00e9", "warns"),
    "one bar line only": ("M:2/4\nL:1/8\nK:G\nG4 A4 |]", "fewer than two bar lines"),
    "header only": ("M:2/4\nL:1/8\nK:G", "no notes"),
}


@pytest.mark.parametrize("name", sorted(GOOD))
def test_valid_tunes_pass(name):
    assert validity.check_tune(GOOD[name]) == validity.TuneCheck(True, "ok")


@pytest.mark.parametrize("name", sorted(BROKEN))
def test_broken_tunes_fail_with_the_reason(name):
    tune, reason = BROKEN[name]
    check = validity.check_tune(tune)
    assert not check.valid and reason in check.reason


def test_an_unfinished_sample_is_invalid_and_a_finished_one_is_cut_at_its_end():
    sample = "\n" + GOOD["plain"] + "\n\nM:2/4\nL:1/8\nK:D\nAB"
    assert validity.first_tune(sample) == GOOD["plain"]
    assert validity.first_tune("M:2/4\nL:1/8\nK:D\nABcd|") is None
    assert validity.check_tune(None).reason.startswith("unfinished")
    share, checks = validity.valid_share([GOOD["plain"], None, BROKEN["overfull bar"][0], GOOD["tuplet"]])
    assert share == 0.5 and [c.valid for c in checks] == [True, False, False, True]


def test_real_essen_tunes_are_mostly_valid():
    """The check on real transcriptions: most pass (the measured ceiling on all of Essen is 89%)."""
    tunes = abc.select(abc.corpus_tunes("essen"))[::400][:20]
    assert validity.valid_share(tunes)[0] >= 0.7


def test_tunes_keep_only_the_chosen_headers_and_no_lyrics_or_comments():
    text = "%abc-2.1\nfile header\n\nX:7\nT:Title\nO:Europa, Deutschland\nM:2/4\nL:1/8\n"
    text += "K:G % key\nGA Bc|\nw: la la\nd4|]\n"
    (tune,) = abc.parse_tunes(text)
    assert tune.get("O") == "Europa, Deutschland" and tune.get("K") == "G"
    assert tune.text() == "M:2/4\nL:1/8\nK:G\nGA Bc|\nd4|]"
    assert tune.text(("K", "T")) == "T:Title\nK:G\nGA Bc|\nd4|]"  # K: always ends the header
    tunes = abc.parse_tunes(text + "\nX:8\nM:none\nK:C\nCDEF|\n")
    assert abc.select(tunes) == [tune.text()]  # the meter-less tune is dropped
    assert len(abc.select(tunes + tunes, require_meter=False)) == 2  # duplicates kept once


def test_corpora_ship_with_music21():
    tunes = abc.corpus_tunes("essen")
    assert len(tunes) > 8000 and all(t.body for t in tunes[:50])
    texts, labels = abc.essen_regions()
    assert set(labels) == set(abc.ESSEN_REGIONS) and len(texts) == len(labels) > 7000
    assert not any("O:" in t or "T:" in t for t in texts[:200])  # the region is read from the music only
    with pytest.raises(ValueError, match="unknown music corpus"):
        abc.corpus_dir("bach")


def test_musicxml_melody_converts_to_abc_with_the_same_notes():
    from music21 import converter, corpus

    score = corpus.parse("bach/bwv66.6")  # MusicXML
    tune = convert.score_to_abc(score)
    assert tune.startswith("M:4/4\nL:1/8\nK:F#m\n")
    back = converter.parse(tune, format="abc").parts[0].flatten().notes
    soprano = score.parts[0].flatten().notes
    assert [(n.pitch.midi, n.quarterLength) for n in back] == [(n.pitch.midi, n.quarterLength) for n in soprano]
    assert validity.check_tune(tune).valid


def test_midi_file_converts_to_abc_with_the_same_notes(tmp_path):
    from music21 import converter

    original = converter.parse(GOOD["plain"], format="abc")
    path = render.write_midi(GOOD["plain"], tmp_path / "t.mid")
    tune = convert.file_to_abc(path)
    notes = [(n.pitch.midi, n.quarterLength) for n in converter.parse(tune, format="abc").parts[0].flatten().notes]
    assert notes == [(n.pitch.midi, n.quarterLength) for n in original.parts[0].flatten().notes]
    (tmp_path / "bad.mid").write_bytes(b"not midi")
    with pytest.raises(ValueError, match="bad.mid"):
        convert.file_to_abc(tmp_path / "bad.mid")


def test_accidentals_follow_the_key_and_hold_to_the_end_of_the_bar():
    from music21 import converter

    tune = "M:4/4\nL:1/8\nK:D\nF^F=FF cc=cc | f2 _B2 B2 B2 |]"  # F# in D; =F holds for the rest of the bar
    score = converter.parse(tune, format="abc")
    back = converter.parse(convert.score_to_abc(score), format="abc")
    pitches = [n.pitch.midi for n in score.parts[0].flatten().notes]
    assert [n.pitch.midi for n in back.parts[0].flatten().notes] == pitches


def test_piano_roll_and_files(tmp_path):
    image = render.piano_roll([GOOD["plain"], None, BROKEN["overfull bar"][0]], tmp_path / "roll.png")
    assert image.ndim == 3 and image.shape[2] == 3 and (tmp_path / "roll.png").is_file()
    assert image.std() > 10  # notes drawn, not a blank canvas
    written = render.write_tunes([GOOD["plain"] + "\n\nM:", "garbage [[[\n\n"], tmp_path / "tunes")
    names = sorted(p.name for p in written)
    assert names == ["tune_00.abc", "tune_00.mid", "tune_01.abc"]  # the unreadable one keeps its .abc only
    assert (tmp_path / "tunes" / "tune_00.abc").read_text().startswith("X:1\nM:3/4")


def test_music_data_splits_by_tune(tmp_path):
    from gen_lightning.data.music import MusicDataModule

    dm = MusicDataModule(block_size=32, batch_size=4, val_fraction=0.1)
    dm.setup("fit")
    assert not set(dm.train_tunes) & set(dm.val_tunes)  # never one tune in both splits
    assert len(dm.val_tunes) == round(0.1 * (len(dm.train_tunes) + len(dm.val_tunes)))
    inputs, targets = next(iter(dm.train_dataloader()))
    assert inputs.shape == (4, 32) and torch.equal(inputs[:, 1:], targets[:, :-1])
    text = dm.tokenizer.decode(dm.val_set.ids[:2000].long().tolist())
    assert text.startswith(dm.val_tunes[0] + "\n\n")  # each tune ended by a blank line
    again = MusicDataModule(block_size=32, batch_size=4, seed=5)
    again.setup("fit")
    assert again.val_tunes == dm.val_tunes  # the split depends on split_seed only


def test_music_data_from_a_folder_of_abc_and_midi(tmp_path):
    from gen_lightning.data.music import MusicDataModule

    (tmp_path / "a.abc").write_text("X:1\nT:A\nM:3/4\nL:1/8\nK:G\nD2 | G2 B2 d2 | c2 A2 F2 | G4 |]\n\n" + "X:2\n"
                                    "M:2/4\nL:1/8\nK:D\nA4 | d4 | f4 | d4 |]\n")  # fmt: skip
    render.write_midi(GOOD["tuplet"], tmp_path / "b.mid")
    dm = MusicDataModule(corpus=None, path=str(tmp_path), block_size=8, batch_size=2, val_fraction=0.34)
    dm.setup("fit")
    assert len(dm.train_tunes) == 2 and len(dm.val_tunes) == 1
    assert any("/3" in t for t in dm.train_tunes + dm.val_tunes)  # the MIDI triplet survived (as 2/3 or 4/3)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="holds no .abc, MIDI or MusicXML"):
        MusicDataModule(corpus=None, path=str(tmp_path / "empty")).setup()


def test_music_protocol_scores_samples_and_is_reproducible(tmp_path):
    from gen_lightning.data.music import MusicDataModule
    from gen_lightning.music.protocol import TuneValidity
    from gen_lightning.rnn.module import CharRNN

    dm = MusicDataModule(block_size=32, batch_size=4)
    dm.setup("fit")
    model = CharRNN(**dm.model_kwargs(), hidden_dim=16, num_layers=1, dropout=0.0)
    protocol = TuneValidity(num_items=6, batch_size=4, max_length=64, files=4)
    before = torch.get_rng_state()
    a, b = protocol.evaluate(model, dm), protocol.evaluate(model, dm)
    assert torch.equal(before, torch.get_rng_state())  # the training RNG is untouched
    assert a["outputs"] == b["outputs"] and len(a["outputs"]) == 6
    assert a["metrics"]["val/valid_tunes"] == 0.0  # an untrained model writes no valid tune
    assert a["protocol"]["real_valid_share"] > 0.5 and a["figures"]["piano_roll"].shape[0] == 3
    with pytest.raises(ValueError, match="metrics=music scores unconditional text"):
        from gen_lightning.classifier.module import TextClassifier

        protocol.check(TextClassifier({"kind": "byte"}, 2, ["a", "b"], body="lstm", hidden_dim=8, num_layers=1))


@pytest.mark.parametrize(
    "written,unit,meter,expected",
    [
        ("A3 B/2 c// d3/2 z2", "1/4", "4/4", "A6 B c/2 d3 z4"),
        ("A B2 [ce]2 (3ABc", "1/8", "2/4", "A2 B4 [c2e2]2 (3A2B2c2"),
        ('"Am"A !trill!B2 [K:D] z', "1/16", "3/4", '"Am"A/2 !trill!B [K:D] z/2'),
    ],
)  # fmt: skip
def test_lengths_are_rewritten_to_the_default_unit(written, unit, meter, expected):
    tune = abc.Tune([("M", meter), ("L", unit), ("K", "G")], [written])
    assert lengths.with_default_unit(tune).text() == f"M:{meter}\nK:G\n{expected}"
    assert lengths.with_default_unit(abc.Tune([("M", "none"), ("K", "G")], [written])) is None


def test_real_tunes_keep_their_notes_in_the_default_unit():
    """music21 reads the same pitches and lengths before and after, on real tunes of the three corpora."""
    tunes = [t for c in abc.CORPORA for t in abc.corpus_tunes(c)[::500] if abc.has_meter(t)][:24]
    for tune in tunes:
        rewritten = lengths.with_default_unit(tune)
        before, after = (validity._parse(t.text())[0].parts[0].flatten().notesAndRests for t in (tune, rewritten))
        assert [(n.quarterLength, n.pitches) for n in after] == [(n.quarterLength, n.pitches) for n in before]
        assert "L:" not in rewritten.text()


# ---------------------------------------------------------------- per-item output formats (issue 24)

UNRENDERABLE = BROKEN["unclosed chord"][0]  # music21 cannot read it: no MIDI


def test_midi_files_write_every_tune_that_renders_and_name_the_others(tmp_path, capsys):
    """A weakly trained model's 26th tune stopped `sample format=midi` after 25 files; now every renderable tune
    is written, each unrenderable one is named and kept as ABC, and only a batch with no renderable tune fails."""
    samples = [GOOD["plain"], UNRENDERABLE, GOOD["tuplet"], BROKEN["unreadable meter"][0]]
    written = render.write_midi_files(samples, tmp_path / "tunes.mid")
    assert [p.name for p in written] == ["tunes_00.mid", "tunes_02.mid"]
    assert (tmp_path / "tunes_01.abc").read_text() == f"X:1\n{UNRENDERABLE}\n"
    assert (tmp_path / "tunes_03.abc").is_file() and not (tmp_path / "tunes_01.mid").exists()
    err = capsys.readouterr().err
    assert "wrote 2 of 4 samples as MIDI; not written:" in err
    assert "sample 1: no tunes_01.mid (cannot render the tune as MIDI (ABCHandlerException: Bad chord" in err
    assert "; kept as tunes_01.abc" in err and "sample 3: no tunes_03.mid" in err

    kept = r"\(each kept as its source beside it\)"
    with pytest.raises(
        ValueError, match=rf"none of the 2 samples could be written as MIDI {kept}; sample 0: no bad_00"
    ):
        render.write_midi_files([UNRENDERABLE, UNRENDERABLE], tmp_path / "bad.mid")
    assert (tmp_path / "bad_00.abc").is_file() and (tmp_path / "bad_01.abc").is_file()


def test_sample_format_midi_exits_0_when_some_tunes_render_and_1_when_none_do(tmp_path, monkeypatch, capsys):
    """Through the command line, with a tiny text model whose samples are replaced by fixed tunes."""
    from conftest import tiny_overrides

    from gen_lightning import cli
    from gen_lightning.config import compose
    from gen_lightning.rnn.module import CharRNN
    from gen_lightning.run import train

    run_dir = tmp_path / "run"
    train.fit(compose(tiny_overrides(run_dir, "trainer.max_steps=2", "trainer.max_epochs=-1", model="lstm")))
    ckpt = str(run_dir / "checkpoints" / "last.ckpt")
    tunes = [GOOD["plain"], UNRENDERABLE, GOOD["tuplet"]]
    monkeypatch.setattr(CharRNN, "sample", lambda self, n, **kw: tunes[:n])
    cli.main(["sample", f"ckpt={ckpt}", "n=3", "length=8", "format=midi", f"out={tmp_path / 'out' / 't.mid'}"])
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["t_00.mid", "t_01.abc", "t_02.mid"]
    assert "sample 1: no t_01.mid" in capsys.readouterr().err

    monkeypatch.setattr(CharRNN, "sample", lambda self, n, **kw: [UNRENDERABLE] * n)
    with pytest.raises(SystemExit, match="gen-lightning sample: none of the 2 samples could be written as MIDI"):
        cli.main(["sample", f"ckpt={ckpt}", "n=2", "length=8", "format=midi", f"out={tmp_path / 'none' / 't.mid'}"])
