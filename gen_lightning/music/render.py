"""Sampled tunes as files a person can use: ``.abc`` text, ``.mid`` through music21, and a piano-roll PNG.

The piano roll draws each note of a tune as a bar from its onset to its end (in quarter notes) at its MIDI
pitch, one panel per tune, titled with the validity check's verdict (gen_lightning/music/validity.py).
"""

from __future__ import annotations

import contextlib
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from gen_lightning.commands.outputs import numbered, write_each
from gen_lightning.files import write_text
from gen_lightning.music.validity import _parse, check_tune, first_tune

PNG_META = {"Software": None}  # the same tunes always give the same bytes


def tune_notes(abc: str) -> tuple[list[tuple[float, float, int]], list[float]]:
    """(onset, length, MIDI pitch) of every note of a tune's first part (chords: every note), in quarter notes,
    and the onsets of its bars; ([], []) if music21 cannot read it."""
    try:
        score, _ = _parse(abc)
    except Exception:
        return [], []
    part = score.parts[0] if getattr(score, "parts", None) else score
    notes = []
    for element in part.flatten().notes:
        for pitch in getattr(element, "pitches", ()):
            notes.append((float(element.offset), float(element.quarterLength), int(pitch.midi)))
    bars = [float(m.offset) for m in part.getElementsByClass("Measure")]
    return notes, bars


def write_midi(abc: str, path: Path) -> Path:
    """The tune as a MIDI file (music21's ``stream.write('midi')``); a ValueError when music21 cannot read it."""
    try:
        score, _ = _parse(abc)
        path.parent.mkdir(parents=True, exist_ok=True)
        score.write("midi", fp=str(path))
    except Exception as err:
        raise ValueError(f"cannot render the tune as MIDI ({type(err).__name__}: {err}):\n{abc}") from err
    return path


def piano_roll(tunes: list[str | None], path: Path | None = None, columns: int = 2) -> np.ndarray:
    """A grid of piano rolls, one per tune (None: unfinished), as (H, W, 3) uint8 (and a PNG at ``path``)."""
    rows = max(1, -(-len(tunes) // columns))
    fig = Figure(figsize=(6 * columns, 2.2 * rows), layout="constrained")
    axes = np.atleast_1d(fig.subplots(rows, columns)).ravel()
    for ax, tune in zip(axes, tunes):
        check = check_tune(tune)
        notes, bars = tune_notes(tune) if tune is not None else ([], [])
        for bar in bars[1:]:  # bar lines as written, so a bar that does not fit its meter shows
            ax.axvline(bar, color="0.8", linewidth=0.6, zorder=0)
        for onset, length, pitch in notes:
            ax.broken_barh([(onset, max(length, 0.05))], (pitch - 0.4, 0.8), color="C0" if check.valid else "C3")
        if notes:
            ax.set_xlim(0, max(o + d for o, d, _ in notes))
            low, high = min(p for *_, p in notes), max(p for *_, p in notes)
            ax.set_ylim(low - 2, high + 2)
        ax.set_title(("valid" if check.valid else f"invalid: {check.reason}")[:70], fontsize=8)
        ax.set_xlabel("quarter notes", fontsize=7)
        ax.set_ylabel("MIDI pitch", fontsize=7)
        ax.tick_params(labelsize=6)
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    for ax in axes[len(tunes) :]:
        ax.set_axis_off()
    canvas = FigureCanvasAgg(fig)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=80, metadata=PNG_META)
    fig.set_dpi(80)
    canvas.draw()
    return np.asarray(canvas.buffer_rgba())[..., :3].copy()


def write_tunes(samples: list[str], out_dir: Path, stem: str = "tune") -> list[Path]:
    """Each sample's first tune as ``<stem>_<i>.abc`` and, where music21 reads it, ``<stem>_<i>.mid``."""
    written = []
    for i, sample in enumerate(samples):
        abc = out_dir / f"{stem}_{i:02d}.abc"
        written += write_abc_files([sample], abc)
        with contextlib.suppress(ValueError):  # an unreadable sample keeps its .abc, which shows why
            written.append(write_midi(_tune_text(sample), abc.with_suffix(".mid")))
    return written


def _tune_text(sample: str) -> str:
    tune = first_tune(sample)
    return tune if tune is not None else sample.strip("\n")  # an unfinished tune: what there is


def _write_abc(tune: str, path: Path, number: int = 1) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    return write_text(path, f"X:{number}\n{tune}\n")


def write_abc_files(samples: list[str], target: Path) -> list[Path]:
    """``format=abc`` of ``gen-lightning sample``: each sample's first tune as an ABC file (``X:`` numbered)."""
    written = []
    for i, sample in enumerate(samples):
        written.append(_write_abc(_tune_text(sample), numbered(target, i, len(samples)), i + 1))
    return written


def write_midi_files(samples: list[str], target: Path) -> list[Path]:
    """``format=midi`` of ``gen-lightning sample``: each sample's first tune rendered by music21 as MIDI; a tune it
    cannot render is named and kept as ABC beside the others (``<stem>_<i>.abc``)."""
    tunes = [_tune_text(s) for s in samples]
    return write_each(
        tunes, target, write_midi, "MIDI", keep=lambda tune, path: _write_abc(tune, path.with_suffix(".abc"))
    )
