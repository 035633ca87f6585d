"""Is a sampled tune music? It must parse as ABC and its bars must fit the meter it declares.

A tune is valid when
1. it is finished: the sample ends it with a blank line (ABC's end of tune) before the sampling budget runs out;
2. it declares a meter (``M:``; ``M:none`` declares none) and music21's ABC reader parses it without an error
   and without a warning (music21 warns, and guesses, on symbols it cannot read as notes);
3. it has bars: at least two regular bar lines (music21 builds no measures from fewer);
4. every bar lasts what the meter says (``M:6/8`` -> 3 quarter notes; ``C`` = 4/4, ``C|`` = 2/2), or a whole
   multiple of it: the Essen collection ends a line at each phrase and leaves out the bar line there when the
   phrase ends with a full bar, so two full bars run together (music21 reads them as one measure). The first and
   the last bar, and a bar next to a repeat sign or a double bar, may be shorter: a pickup (anacrusis) and the
   bar it completes at the end of a section. music21's own re-barring, which splits overfull bars and invents a
   meter for the rest, is switched off: the bars are checked as written.

Limitation: music21 (10.5) ignores meter changes inside a tune's body (``[M:3/4]`` or an ``M:`` line), so every bar
is checked against the header's meter; the Essen collection has none.

``valid_share`` of the held-out real tunes is the metric's ceiling on a corpus (about 95% on Essen: its
transcriptions hold some genuinely irregular bars, e.g. unmarked meter changes); report it beside the models'.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import re
import warnings
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from unittest import mock

from gen_lightning.files import write_text

SECTION_BARS = ("double", "final", "light-light", "light-heavy", "heavy-light", "heavy-heavy")
METER = re.compile(r"^M:\s*(.*)$", re.MULTILINE)
FIELD_LINE = re.compile(r"^[A-Za-z]:")


@dataclass(frozen=True)
class TuneCheck:
    valid: bool
    reason: str  # "ok", or the first thing that fails


def _invalid(reason: str) -> TuneCheck:
    return TuneCheck(False, reason)


def first_tune(sample: str) -> str | None:
    """The first tune of a sampled text (leading blank lines skipped), or None when no blank line ends it."""
    text = sample.lstrip("\n")
    end = text.find("\n\n")
    return text[:end] if end >= 0 else None


def _parse(abc: str):
    """music21's score of ``abc`` with its bars as written, and the warnings its ABC reader printed.

    music21 prints its ABC warnings rather than raising them. It also re-bars a score after reading it
    (``abcFormat.translate.reBar``): an overfull bar is split and the remainder given an invented meter, which
    would hide exactly the errors this check looks for, so that step is switched off while parsing.
    """
    from music21 import converter
    from music21.abcFormat import translate
    from music21.stream import makeNotation

    printed = io.StringIO()
    with (
        warnings.catch_warnings(),
        contextlib.redirect_stderr(printed),
        contextlib.redirect_stdout(printed),
        mock.patch.object(translate, "reBar", lambda part, inPlace=True: None),
        mock.patch.object(makeNotation, "makeBeams", lambda s, *args, **kwargs: s),  # half the time; notation only
    ):
        warnings.simplefilter("ignore")
        score = converter.parse(abc, format="abc", forceSource=True)
    return score, printed.getvalue().strip()


def mark_line_ends(abc: str) -> str:
    """``abc`` with a double bar at each body line end that has no bar line (nor a ``\\`` continuation).

    A line end is a phrase end in the Essen collection, written without its bar line: the phrase may end on a
    full bar, or inside one that the next line completes. The double bar makes it a section end for the check.
    """
    lines = abc.split("\n")
    body = next((i + 1 for i, line in enumerate(lines) if line.startswith("K:")), 0)
    for i in range(body, len(lines)):
        stripped = lines[i].rstrip()
        if stripped and stripped[-1] not in "|]:\\" and not FIELD_LINE.match(stripped):
            lines[i] = stripped + " ||"
    return "\n".join(lines)


def _is_section_end(barline) -> bool:
    from music21 import bar

    return isinstance(barline, bar.Repeat) or (barline is not None and barline.type in SECTION_BARS)


def _exact(quarter_length) -> Fraction:
    # music21 stores tuplet lengths as Fractions and others as floats; a float sum of 1/6 + 1/6 + 1/6 is not 0.5.
    return Fraction(quarter_length).limit_denominator(1 << 12)


def _length(container) -> Fraction:
    return sum((_exact(n.quarterLength) for n in container.notesAndRests), Fraction(0))


def _bar_problem(measures) -> str | None:
    """The first bar whose length does not fit the meter in force, described; None if every bar fits."""
    meter = None
    last = len(measures) - 1
    for i, m in enumerate(measures):
        meter = m.timeSignature or meter
        if meter is None:
            return "no meter in force at the first bar"
        want = _exact(meter.barDuration.quarterLength)
        lengths = [_length(v) for v in m.voices] if m.voices else [_length(m)]  # each voice must fill the bar
        for have in lengths:
            if have > 0 and have % want == 0:  # whole bars: a bar line left out
                continue
            edge = i in (0, last) or _is_section_end(m.leftBarline) or _is_section_end(m.rightBarline)
            edge = edge or (i > 0 and _is_section_end(measures[i - 1].rightBarline))
            if have < want and edge:
                continue
            return (
                f"bar {i + 1} lasts {float(have):g} quarter notes, the meter {meter.ratioString} needs {float(want):g}"
            )
    return None


def check_tune(abc: str | None) -> TuneCheck:
    """Check one tune (its ABC text, or None for a sample that never finished a tune)."""
    from music21 import stream

    if abc is None:
        return _invalid("unfinished: no blank line ends the tune")
    meter = METER.search(abc)
    if meter is None or meter.group(1).strip().lower() in ("", "none"):
        return _invalid("no meter declared (M:)")
    try:
        score, printed = _parse(mark_line_ends(abc))
    except Exception as err:  # music21 raises many types on malformed ABC
        return _invalid(f"music21 cannot parse it: {type(err).__name__}: {err}")
    if printed:
        return _invalid(f"music21 warns: {printed.splitlines()[0]}")
    part = score.parts[0] if getattr(score, "parts", None) else score
    if not part.recurse().notes:
        return _invalid("no notes")
    measures = list(part.getElementsByClass(stream.Measure))
    if not measures:
        return _invalid("fewer than two bar lines: no bars to check")
    problem = _bar_problem(measures)
    return _invalid(problem) if problem else TuneCheck(True, "ok")


def valid_share(tunes: list[str | None]) -> tuple[float, list[TuneCheck]]:
    """The share of valid tunes, and each tune's check."""
    checks = [check_tune(t) for t in tunes]
    return (sum(c.valid for c in checks) / len(checks) if checks else 0.0), checks


CHECK_VERSION = 1  # bump when the check changes: cached verdicts of an older check are not reused


def cache_dir() -> Path:
    """``$GEN_LIGHTNING_CACHE/music`` (default ``~/.cache/gen_lightning/music``)."""
    root = os.environ.get("GEN_LIGHTNING_CACHE") or Path.home() / ".cache" / "gen_lightning"
    return Path(root).expanduser() / "music"


def cached_validity(tunes: list[str]) -> list[bool]:
    """``check_tune(t).valid`` for every tune, kept on disk by the tunes' hash (Essen: ~7 CPU minutes once)."""
    import music21

    h = hashlib.sha256(f"{CHECK_VERSION}|{music21.__version__}".encode())
    for tune in tunes:
        h.update(tune.encode("utf-8") + b"\0")
    path = cache_dir() / f"validity-{h.hexdigest()[:24]}.json"
    if path.is_file():
        flags = json.loads(path.read_text())
        if len(flags) == len(tunes):
            return flags
    flags = [check_tune(t).valid for t in tunes]
    write_text(path, json.dumps(flags))  # concurrent writers write the same verdicts; a reader never sees half a file
    return flags
