"""MIDI and MusicXML files to ABC tunes with music21, keeping the melody a text model can learn.

music21 reads MIDI (quantised to sixteenths and triplet eighths) and MusicXML but writes no ABC, so a score is
written out here. What is kept: of the first part (MIDI track / staff), its first voice, and of a chord its top
note (the melody); each note's pitch (with accidentals against the key signature, per ABC's rule that an
accidental holds to the end of its bar), its length as a multiple of the unit ``L:1/8``, ties, rests and bar lines;
the first meter and key, and later meter and key changes as inline fields (``[M:3/4]``). What is dropped: other
parts and voices, chord tones below the top, grace notes, dynamics, articulations, ornaments, lyrics, tempo and
repeat signs (a MIDI file has none; MusicXML repeats are written out once, unexpanded).
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

UNIT = Fraction(1, 8)  # L:1/8, in whole notes
MAJOR = {0: "C", 1: "G", 2: "D", 3: "A", 4: "E", 5: "B", 6: "F#", 7: "C#"}
MAJOR |= {-1: "F", -2: "Bb", -3: "Eb", -4: "Ab", -5: "Db", -6: "Gb", -7: "Cb"}
ACCIDENTALS = {-2: "__", -1: "_", 0: "=", 1: "^", 2: "^^"}
BARS_PER_LINE = 4
SUFFIXES = {".mid", ".midi", ".xml", ".mxl", ".musicxml"}


def key_name(key_signature) -> str:
    """ABC's key of a music21 Key / KeySignature: ``G``, ``Bb``, ``F#m``, ``Ddor``."""
    mode = getattr(key_signature, "mode", None)
    if mode and mode != "major" and getattr(key_signature, "tonic", None) is not None:
        tonic = key_signature.tonic.name.replace("-", "b")
        return tonic + ("m" if mode == "minor" else mode[:3])
    return MAJOR.get(key_signature.sharps, "C")


def key_alters(key_signature) -> dict[str, int]:
    """Alteration in semitones of each step (C..B) under a key signature."""
    alters = dict.fromkeys("CDEFGAB", 0)
    for pitch in key_signature.alteredPitches:
        alters[pitch.step] = int(pitch.alter)
    return alters


def pitch_token(pitch, alters: dict, bar_state: dict) -> str:
    """ABC pitch of a music21 Pitch, with an accidental only where the key and the bar so far differ."""
    alter = int(pitch.alter) if pitch.accidental is not None else 0
    octave = pitch.octave if pitch.octave is not None else 4
    current = bar_state.get((pitch.step, octave), alters[pitch.step])
    mark = ""
    if alter != current:
        mark = ACCIDENTALS.get(alter, "")
        bar_state[(pitch.step, octave)] = alter
    letter = pitch.step if octave <= 4 else pitch.step.lower()
    shift = "," * max(0, 4 - octave) if octave <= 4 else "'" * max(0, octave - 5)
    return mark + letter + shift


def length_token(quarter_length) -> str:
    """ABC length of a note of ``quarter_length`` quarter notes against the unit L:1/8: "", "2", "/2", "3/2"."""
    ratio = Fraction(quarter_length).limit_denominator(96) / (UNIT * 4)
    if ratio == 1:
        return ""
    if ratio.denominator == 1:
        return str(ratio.numerator)
    return f"{ratio.numerator if ratio.numerator != 1 else ''}/{ratio.denominator}"


def _melody(measure):
    """The notes and rests of a bar's first voice, chords reduced to their top note, grace notes dropped."""
    source = measure.voices[0] if measure.voices else measure
    for element in source.notesAndRests:
        if element.duration.isGrace or element.quarterLength == 0:
            continue
        yield element


def _bar(measure, alters: dict) -> str:
    bar_state: dict = {}
    tokens = []
    for element in _melody(measure):
        length = length_token(element.quarterLength)
        if element.isRest:
            tokens.append("z" + length)
            continue
        note = max(element.notes, key=lambda n: n.pitch.ps) if element.isChord else element
        tie = "-" if element.tie is not None and element.tie.type in ("start", "continue") else ""
        tokens.append(pitch_token(note.pitch, alters, bar_state) + length + tie)
    return "".join(tokens)


def score_to_abc(score) -> str:
    """One ABC tune (``M:``, ``L:``, ``K:`` and the body) of a music21 score's melody."""
    from music21 import key, meter, stream

    part = score.parts[0] if getattr(score, "parts", None) else score
    if not part.getElementsByClass(stream.Measure):
        part = part.makeMeasures()
    measures = list(part.getElementsByClass(stream.Measure))
    if not measures:
        raise ValueError("the score has no notes")
    first_meter = next(iter(part.recurse().getElementsByClass(meter.TimeSignature)), None) or meter.TimeSignature()
    first_key = next(iter(part.recurse().getElementsByClass(key.KeySignature)), None) or key.KeySignature(0)
    header = [f"M:{first_meter.ratioString}", "L:1/8", f"K:{key_name(first_key)}"]
    alters, bars = key_alters(first_key), []
    current_meter, current_key = first_meter.ratioString, key_name(first_key)
    for m in measures:
        inline = ""
        if m.timeSignature is not None and m.timeSignature.ratioString != current_meter:
            current_meter = m.timeSignature.ratioString
            inline += f"[M:{current_meter}]"
        if m.keySignature is not None and key_name(m.keySignature) != current_key:
            current_key, alters = key_name(m.keySignature), key_alters(m.keySignature)
            inline += f"[K:{current_key}]"
        body = _bar(m, alters)
        if body:
            bars.append(inline + body)
    lines = [" | ".join(bars[i : i + BARS_PER_LINE]) + " |" for i in range(0, len(bars), BARS_PER_LINE)]
    lines[-1] = lines[-1][:-1] + "|]"
    return "\n".join(header + lines)


def file_to_abc(path: Path) -> str:
    """A MIDI or MusicXML file's melody as an ABC tune; a file music21 cannot read is a ValueError naming it."""
    from music21 import converter

    try:
        score = converter.parse(str(path))
    except Exception as err:
        raise ValueError(f"music21 cannot read {path}: {type(err).__name__}: {err}") from err
    try:
        return score_to_abc(score)
    except ValueError as err:
        raise ValueError(f"{path}: {err}") from err
