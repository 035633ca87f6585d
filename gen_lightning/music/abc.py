"""Tunes in ABC notation: reading collections, choosing the header fields a model sees, and corpora.

ABC (Walshaw; standard 2.1, abcnotation.com/wiki/abc:standard:v2.1) writes one tune as header fields (``X:``
reference number, ``T:`` title, ``M:`` meter, ``L:`` unit note length, ``K:`` key, which ends the header, ...)
followed by the body (notes, bar lines); a blank line ends the tune. A model sees a tune as the header fields it
keeps, in a fixed order with ``K:`` last (the standard requires it to end the header), then the body lines:

    M:2/4
    L:1/16
    K:G
    d4A2c2 | d4d4 | A3cd2g2 | c2A2G4

By default meter, unit length and key are kept (``L:`` decides what every note length means) and everything else
(reference numbers, titles, origins, notes, sources, transcribers) is dropped: a model should learn the music,
not the bibliography. Comment lines, lyrics (``w:``/``W:``) and body field lines not kept (``P:`` parts, ...)
are dropped; inline fields (``[K:D]``) stay, as they change the music. Tunes without a meter (``M:none``) are
dropped when ``require_meter`` is set, as their bars cannot be checked, and identical tunes are kept once.

The corpora ship inside music21's wheel (``music21/corpus/``): the Essen folk song collection (Schaffrath 1995;
8,514 tunes, mostly German and Chinese folk songs, each with its region of origin in ``O:``), O'Neill's Music of
Ireland (1850 tunes, 1903) and Ryan's Mammoth Collection (1883, ~1,050 tunes).
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field
from pathlib import Path

CORPORA = {"essen": "essenFolksong", "oneills": "oneills1850", "ryans": "ryansMammoth"}
DEFAULT_HEADERS = ("M", "L", "K")
FIELD = re.compile(r"^([A-Za-z]):(.*)$")
TUNE_SEPARATOR = "\n\n"  # a blank line ends an ABC tune


@dataclass
class Tune:
    """One tune: its header fields in order (``(key, value)``, repeats allowed) and its body lines."""

    fields: list[tuple[str, str]] = field(default_factory=list)
    body: list[str] = field(default_factory=list)
    source: str = ""  # where it was read (file name), for error messages

    def get(self, key: str, default: str | None = None) -> str | None:
        return next((value for k, value in self.fields if k == key), default)

    def text(self, keep: tuple[str, ...] | list[str] = DEFAULT_HEADERS) -> str:
        """The tune as a model sees it: the kept fields (in ``keep``'s order, ``K:`` last), then the body."""
        order = [k for k in keep if k != "K"] + (["K"] if "K" in keep else [])
        header = [f"{k}:{self.get(k)}" for k in order if self.get(k) is not None]
        body = [line for line in self.body if not _is_dropped_field(line, keep)]
        return "\n".join(header + body)


def _is_dropped_field(line: str, keep) -> bool:
    match = FIELD.match(line)
    return match is not None and match.group(1) not in keep


def _strip_comment(line: str) -> str:
    # ``%`` starts a comment, except the escaped ``\%`` of text strings; ``%%`` directives are comments too.
    cut = re.search(r"(?<!\\)%", line)
    return (line[: cut.start()] if cut else line).rstrip()


def parse_tunes(text: str, source: str = "") -> list[Tune]:
    """Every tune (``X:`` ... blank line) of an ABC file; text outside tunes (a file header) is skipped."""
    tunes: list[Tune] = []
    current: Tune | None = None
    in_body = False
    for raw in text.splitlines():
        line = _strip_comment(raw)
        if not raw.strip():
            current = None  # a blank line ends the tune
            continue
        if line.startswith("X:"):  # a reference number always starts a tune
            current, in_body = Tune(source=source), False
            tunes.append(current)
        if current is None or not line:
            continue  # text outside tunes, or a comment line inside one
        match = FIELD.match(line)
        if not in_body and match:
            key, value = match.group(1), match.group(2).strip()
            current.fields.append((key, value))
            in_body = key == "K"
        elif not (match and match.group(1) in "wW"):  # lyrics are not music
            in_body = True
            current.body.append(line)
    return [t for t in tunes if t.body]


def has_meter(tune: Tune) -> bool:
    meter = (tune.get("M") or "").strip().lower()
    return bool(meter) and meter != "none"


def corpus_dir(name: str) -> Path:
    """The folder of one of music21's bundled ABC corpora (``essen``, ``oneills``, ``ryans``)."""
    if name not in CORPORA:
        raise ValueError(f"unknown music corpus {name!r}; music21 ships {sorted(CORPORA)} (or give data.path)")
    try:
        import music21
    except ImportError as err:
        raise RuntimeError("the music corpora ship with music21: pip install music21") from err
    folder = Path(music21.__file__).parent / "corpus" / CORPORA[name]
    if not folder.is_dir():
        raise FileNotFoundError(f"music21 {music21.__version__} has no corpus folder {folder}")
    return folder


def read_abc_files(files: list[Path], encoding: str = "utf-8") -> list[Tune]:
    tunes = []
    for file in files:
        data = file.read_bytes()
        try:
            text = data.decode(encoding)
        except UnicodeDecodeError as err:
            raise ValueError(
                f"{file} is not valid {encoding} (byte {err.start}: {err.reason}); set data.encoding to the file's "
                "encoding (e.g. data.encoding=latin-1)"
            ) from err
        tunes.extend(parse_tunes(text, source=file.name))
    return tunes


@functools.cache
def _corpus_tunes(name: str) -> tuple[Tune, ...]:
    return tuple(read_abc_files(sorted(corpus_dir(name).glob("*.abc"))))


def corpus_tunes(name: str) -> list[Tune]:
    """Every tune of a bundled corpus, files in sorted order (read once per process: Essen takes ~2 s)."""
    return list(_corpus_tunes(name))


def select(tunes: list[Tune], keep=DEFAULT_HEADERS, require_meter: bool = True) -> list[str]:
    """The tunes as model texts, without meter-less ones (if ``require_meter``) and without duplicates."""
    seen: set[str] = set()
    texts = []
    for tune in tunes:
        if require_meter and not has_meter(tune):
            continue
        text = tune.text(keep)
        if text not in seen:
            seen.add(text)
            texts.append(text)
    return texts


ESSEN_REGIONS = ("China", "Lothringen", "Luxemburg", "Deutschland")


def essen_regions(regions=ESSEN_REGIONS, keep=DEFAULT_HEADERS) -> tuple[list[str], list[str]]:
    """Essen tunes labelled by region of origin: (texts, labels), text = the tune as a model sees it.

    A tune's label is the first of ``regions`` its ``O:`` field names ("Mitteleuropa, Deutschland / Frankreich,
    Lothringen" is Lothringen with the default order); tunes naming none are left out, duplicates kept once.
    """
    texts, labels, seen = [], [], set()
    for tune in corpus_tunes("essen"):
        origin = tune.get("O") or ""
        region = next((r for r in regions if r in origin), None)
        text = tune.text(keep)
        if region is not None and text not in seen:
            seen.add(text)
            texts.append(text)
            labels.append(region)
    return texts, labels
