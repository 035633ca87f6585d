"""Note lengths of an ABC tune rewritten to the standard's default unit for its meter, so that ``L:`` can go.

ABC 2.1, section 3.1.7: without ``L:``, the unit note length is 1/16 when the meter is below 3/4 (2/4, 3/8) and
1/8 otherwise. Rewriting every tune to that unit gives a model one spelling per rhythm and meter (``G2`` is a
quarter note in every 3/4 tune, an eighth in every 2/4 tune), whatever unit its transcriber chose, and makes
tunes begin as the standard's examples do (``M:6/8``, ``K:D``). A note's length is the number after its pitch
(``A3``, ``A/2``, ``A//``, ``A3/2``), counted in units; rests (``z``, ``x``) likewise. Chords scale through
their notes, tuplets and broken rhythms (``(3``, ``>``) are relative and stay. Annotations, decorations and
inline fields are left as they are. A tune with another unit inside its body (an ``L:`` line or ``[L:...]``)
or a meter without a default (``M:none``, compound ``M:2+3/8``) is not rewritten (``None``).
"""

from __future__ import annotations

import re
from fractions import Fraction

from gen_lightning.music.abc import Tune

NOTE = re.compile(r"(\^\^|\^|__|_|=)?([A-Ga-gzx][,']*)(\d*)(/*)(\d*)")
LEFT_ALONE = re.compile(r'"[^"]*"|![^!]*!|\+[^+\s]*\+|\[[A-Za-z]:[^\]]*\]')  # annotations, decorations, fields
METER = re.compile(r"^(\d+)/(\d+)$")


def meter_value(meter: str | None) -> Fraction | None:
    """A meter as a fraction of a whole note: ``6/8`` -> 3/4, ``C`` -> 1, ``C|`` -> 1; None without one."""
    meter = (meter or "").strip()
    if meter in ("C", "C|"):
        return Fraction(1)
    match = METER.match(meter)
    return Fraction(int(match.group(1)), int(match.group(2))) if match and int(match.group(2)) else None


def default_unit(meter: Fraction) -> Fraction:
    return Fraction(1, 16) if meter < Fraction(3, 4) else Fraction(1, 8)


def parse_length(number: str, slashes: str, denominator: str) -> Fraction:
    """The multiplier written after a note: ``""`` 1, ``3`` 3, ``/`` 1/2, ``//`` 1/4, ``/3`` 1/3, ``3/2`` 3/2."""
    numerator = int(number) if number else 1
    if not slashes:
        return Fraction(numerator)
    return Fraction(numerator, int(denominator) if denominator else 2 ** len(slashes))


def format_length(length: Fraction) -> str:
    if length == 1:
        return ""
    if length.denominator == 1:
        return str(length.numerator)
    return f"{'' if length.numerator == 1 else length.numerator}/{length.denominator}"


def _rescale(segment: str, factor: Fraction) -> str:
    def one(m: re.Match) -> str:
        length = parse_length(m.group(3), m.group(4), m.group(5)) * factor
        return f"{m.group(1) or ''}{m.group(2)}{format_length(length)}"

    return NOTE.sub(one, segment)


def rescale_line(line: str, factor: Fraction) -> str:
    """A body line with every note and rest length multiplied by ``factor`` (other symbols unchanged)."""
    out, start = [], 0
    for kept in LEFT_ALONE.finditer(line):
        out += [_rescale(line[start : kept.start()], factor), kept.group(0)]
        start = kept.end()
    return "".join([*out, _rescale(line[start:], factor)])


def with_default_unit(tune: Tune) -> Tune | None:
    """The tune in its meter's default unit, without ``L:``; None when it cannot be rewritten (see above)."""
    meter = meter_value(tune.get("M"))
    if meter is None or any(line.startswith("L:") or "[L:" in line for line in tune.body):
        return None
    unit = tune.get("L")
    try:
        factor = Fraction(unit.strip()) / default_unit(meter) if unit else Fraction(1)
    except (ValueError, ZeroDivisionError):
        return None
    fields = [(k, v) for k, v in tune.fields if k != "L"]
    return Tune(fields, [rescale_line(line, factor) for line in tune.body], tune.source)
