"""An offline summarisation corpus from the installed Python standard library: code and its one-line summary.

Code summarisation as CodeSearchNet (Husain et al. 2019) and CodeXGLUE code-to-text (Lu et al. 2021) define it:
the document is a function's source code with its docstring removed, the summary is the docstring's first
sentence. Functions and methods come from the ``.py`` files of the standard library, parsed with ``ast`` (nothing
is imported), with CodeSearchNet's filters: no test code (``test``/``tests``/``idle_test`` folders, names
containing "test"), no dunder methods (constructors and standard protocol methods), at least 3 lines of code, a
summary of 3 to 40 words; duplicates of a document are dropped. Splits go by file (a hash of its path: 90% train,
5% validation, 5% test), so no file's functions are on both sides. The corpus depends on the Python version
(CPython 3.11: 4,159 / 233 / 196 pairs).

The lead baseline of this task is the document's first line: the ``def`` line, whose name and arguments often
already say what the function does.
"""

from __future__ import annotations

import ast
import functools
import hashlib
import re
import sys
import sysconfig
import textwrap
from pathlib import Path

SKIP_DIRS = {"test", "tests", "idle_test", "site-packages", "dist-packages", "__pycache__", "lib2to3"}
MIN_LINES, MIN_WORDS, MAX_WORDS = 3, 3, 40
SENTENCE_END = re.compile(r"(?<=[.!?])\s")


def stdlib_files(root: Path | None = None) -> list[Path]:
    root = root or Path(sysconfig.get_paths()["stdlib"])
    files = []
    for path in sorted(root.rglob("*.py")):
        if not SKIP_DIRS.intersection(path.relative_to(root).parts[:-1]):
            files.append(path)
    return files


def first_sentence(docstring: str) -> str:
    """The first sentence of the first paragraph, on one line."""
    paragraph = " ".join(textwrap.dedent(docstring).strip().split("\n\n")[0].split())
    return SENTENCE_END.split(paragraph, maxsplit=1)[0].strip()


def _without_docstring(node: ast.AST, lines: list[str]) -> str:
    doc = node.body[0]
    start, end = node.lineno - 1, node.end_lineno
    if node.decorator_list:
        start = node.decorator_list[0].lineno - 1
    kept = [line for i, line in enumerate(lines[start:end], start) if not doc.lineno - 1 <= i < doc.end_lineno]
    return textwrap.dedent("\n".join(kept)).strip("\n")


def file_pairs(path: Path) -> list[tuple[str, str]]:
    """(code without docstring, first sentence of the docstring) of the functions of one file."""
    try:
        source = path.read_text(encoding="utf-8")
        tree = ast.parse(source)
    except (SyntaxError, UnicodeDecodeError, ValueError):
        return []  # a few files are templates or in other encodings: not Python 3 code
    lines = source.split("\n")
    pairs = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            continue
        doc = ast.get_docstring(node, clean=True)
        if not doc or "test" in node.name.lower() or (node.name.startswith("__") and node.name.endswith("__")):
            continue
        summary = first_sentence(doc)
        code = _without_docstring(node, lines)
        if MIN_WORDS <= len(summary.split()) <= MAX_WORDS and code.count("\n") + 1 >= MIN_LINES:
            pairs.append((code, summary))
    return pairs


def split_of(relative: str) -> str:
    bucket = int(hashlib.md5(relative.encode()).hexdigest(), 16) % 20
    return "test" if bucket == 0 else "val" if bucket == 1 else "train"


@functools.lru_cache(maxsize=2)
def stdlib_summaries(root: Path | None = None) -> dict[str, tuple[list[str], list[str]]]:
    """{"train" | "val" | "test": (documents, summaries)} from the standard library at ``root`` (parsed once per
    process; callers must not modify the lists)."""
    root = root or Path(sysconfig.get_paths()["stdlib"])
    splits: dict[str, tuple[list[str], list[str]]] = {s: ([], []) for s in ("train", "val", "test")}
    seen = set()
    for path in stdlib_files(root):
        split = split_of(path.relative_to(root).as_posix())
        for code, summary in file_pairs(path):
            if code in seen:
                continue
            seen.add(code)
            splits[split][0].append(code)
            splits[split][1].append(summary)
    if not splits["train"][0]:
        raise RuntimeError(f"no documented functions found in the standard library at {root}")
    return splits


def describe() -> str:
    return f"CPython {sys.version.split()[0]} standard library functions (code -> docstring's first sentence)"
