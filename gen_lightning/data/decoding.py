"""Reading text files: the one place where bytes become text.

``read_text(path, encoding)`` reads a file (gzip-compressed when its name ends in ``.gz``), refuses an empty one,
and decodes it with the configured ``data.encoding``. A failure raises one error type with one message naming the
file, the encoding, the line and byte where decoding failed, and the fix::

    /data/mr/reviews.pos is not valid UTF-8 text: line 17, byte 2034 (invalid continuation byte). Set data.encoding
    to the file's encoding (e.g. data.encoding=latin-1), or re-encode it: iconv -f latin1 -t utf-8 reviews.pos

Every text reader of the project (language-model corpora, labelled texts, text pairs, ABC tunes) goes through here.
"""

from __future__ import annotations

import codecs
import gzip
from pathlib import Path

from gen_lightning.data.sources import DataSourceError, EmptySourceError, TextDecodingError


def read_bytes(path: str | Path, *, what: str = "text file") -> bytes:
    """The bytes of ``path`` (decompressed for ``.gz``); an empty or all-whitespace file is an error."""
    path = Path(path)
    data = path.read_bytes()
    if path.suffix == ".gz":
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError) as err:
            raise DataSourceError(f"{path} is not a readable gzip file ({err}); decompress or re-create it") from err
    if not data.strip():
        raise EmptySourceError(f"the {what} {path} is empty: it holds no text (remove it, or fill it)")
    return data


def decode_text(data: bytes, path: str | Path, encoding: str = "utf-8", hint: str = "") -> str:
    """``data`` (the bytes of ``path``) decoded with ``encoding``; ``hint`` is added to the fix on failure."""
    try:
        codecs.lookup(encoding)
    except LookupError as err:
        raise DataSourceError(
            f"data.encoding={encoding!r} is not an encoding Python knows (utf-8, latin-1, ...)"
        ) from err
    try:
        return data.decode(encoding)
    except UnicodeDecodeError as err:
        line = data[: err.start].count(b"\n") + 1
        name = Path(path).name
        utf8 = codecs.lookup(encoding).name == "utf-8"
        fix = (
            f"Set data.encoding to the file's encoding (e.g. data.encoding=latin-1), or re-encode it: "
            f"iconv -f latin1 -t utf-8 {name}"
            if utf8
            else f"Set data.encoding to the file's encoding (not {encoding}), e.g. data.encoding=utf-8"
        )
        raise TextDecodingError(
            f"{path} is not valid {encoding.upper()} text: line {line}, byte {err.start} ({err.reason}). {fix}{hint}"
        ) from err


def read_text(path: str | Path, encoding: str = "utf-8", *, what: str = "text file", hint: str = "") -> str:
    """The text of ``path`` in ``encoding`` (see the file docstring for the errors)."""
    return decode_text(read_bytes(path, what=what), path, encoding, hint)
