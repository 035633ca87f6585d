"""Music as text: tunes in ABC notation for the sequence families (LSTM, GRU, GPT train on it unchanged).

Sources: one of the corpora music21 ships in its wheel (``corpus: essen | oneills | ryans``, see
gen_lightning/music/abc.py), or a folder of the user's files (``path``): ``.abc`` files are read as they are,
MIDI and MusicXML files are converted to ABC melodies with music21 (gen_lightning/music/convert.py says which
events are kept). Each tune keeps the header fields in ``keep_headers`` (default meter, unit length and key).

``normalise_length`` (default) rewrites every tune's note lengths to the ABC standard's default unit for its
meter and drops ``L:`` (gen_lightning/music/lengths.py): one spelling per rhythm and meter, and tunes that start
as ``M:6/8`` / ``K:D``. ``only_valid`` keeps only the tunes that pass the validity check of
gen_lightning/music/validity.py (89% of Essen: the rest have bars that do not fit their declared meter), so a model
learns regular tunes; the verdicts are cached on disk after the first run (a few CPU minutes for Essen).

Splits are by tune, never inside one: the distinct tunes are shuffled with ``split_seed`` (fixed, so every run
of a study validates on the same tunes) and ``val_fraction`` of them form the validation split. Each split is
one stream of its tunes, each ended by a blank line (ABC's end of tune, which the model learns to write), cut
into next-token windows as in gen_lightning/data/text/corpus.py.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch.utils.data import DataLoader

from gen_lightning.data.base import DataModule, Source
from gen_lightning.data.decoding import read_text
from gen_lightning.data.sources import DataSourceError, EmptySourceError, local_path
from gen_lightning.data.text.corpus import Windows
from gen_lightning.data.text.tokenizers import build_tokenizer
from gen_lightning.music import abc
from gen_lightning.music.convert import SUFFIXES, file_to_abc
from gen_lightning.music.lengths import with_default_unit
from gen_lightning.music.validity import cached_validity

LOCAL = "a folder (or file) of .abc, MIDI or MusicXML tunes"


def folder_tunes(path: str | Path, encoding: str = "utf-8") -> list[abc.Tune]:
    """Tunes of a file or folder: ``.abc`` files as written, MIDI / MusicXML files converted by music21."""
    root = local_path(path, LOCAL)
    files = [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.is_file())
    abc_files = [f for f in files if f.suffix.lower() == ".abc"]
    scores = [f for f in files if f.suffix.lower() in SUFFIXES]
    if not abc_files and not scores:
        raise EmptySourceError(
            f"data.path={str(path)!r} holds no .abc, MIDI or MusicXML files ({', '.join(sorted(SUFFIXES | {'.abc'}))})"
        )
    tunes = []
    for file in abc_files:
        tunes.extend(abc.parse_tunes(read_text(file, encoding, what="ABC file"), source=file.name))
    for file in scores:
        tunes.extend(abc.parse_tunes(f"X:1\n{file_to_abc(file)}", source=file.name))
    return tunes


def tune_stream(tunes: list[str]) -> str:
    """Tunes joined into one text, each ended by a blank line."""
    return "".join(t + abc.TUNE_SEPARATOR for t in tunes)


class MusicDataModule(DataModule):
    """Next-token windows over ABC tunes, split by tune."""

    task, source_modality, modality = "unconditional", None, "text"
    LOCAL = LOCAL

    def __init__(
        self,
        corpus: str | None = "essen",
        path: str | None = None,
        encoding: str = "utf-8",
        keep_headers: list[str] | tuple[str, ...] = abc.DEFAULT_HEADERS,
        require_meter: bool = True,
        normalise_length: bool = True,
        only_valid: bool = False,
        tokenizer: str | dict = "char",
        block_size: int = 256,
        batch_size: int = 64,
        val_fraction: float = 0.1,
        train_stride: int = 1,
        split_seed: int = 0,
        num_workers: int = 0,
        seed: int = 0,
    ) -> None:
        super().__init__()
        if not 0.0 < val_fraction < 1.0:
            raise ValueError(f"val_fraction must be in (0, 1), got {val_fraction}")
        for key, value in {"block_size": block_size, "batch_size": batch_size, "train_stride": train_stride}.items():
            if value < 1:
                raise ValueError(f"{key} must be a positive integer, got {value}")
        keep_headers = [str(k) for k in keep_headers]  # plain values: checkpoints load with weights_only=True
        tokenizer = tokenizer if isinstance(tokenizer, str) else dict(tokenizer)
        self.save_hyperparameters(logger=False)
        self.check_source()
        self.tokenizer = None
        self.train_tunes: list[str] = []
        self.val_tunes: list[str] = []
        self.train_set: Windows | None = None
        self.val_set: Windows | None = None

    @property
    def source(self) -> Source:
        """``path`` when given, else the embedded ``corpus`` (the key music configs have always used)."""
        h, corpora = self.hparams, ", ".join(sorted(abc.CORPORA))
        if h.path is not None:
            return Source("path", str(h.path), "path")
        if h.corpus is None:
            raise DataSourceError(f"give one source: data.path ({LOCAL}) or data.corpus (one of {corpora})")
        if h.corpus not in abc.CORPORA:
            raise DataSourceError(f"data.corpus={h.corpus!r} is not a corpus music21 ships; choose one of {corpora}")
        return Source("embedded", h.corpus, "corpus")

    @property
    def source_name(self) -> str:
        source = self.source
        return source.value if source.kind == "path" else f"music21's {source.value} corpus"

    def _tunes(self) -> list[str]:
        h = self.hparams
        raw = folder_tunes(h.path, h.encoding) if h.path else abc.corpus_tunes(h.corpus)
        if h.normalise_length:  # every tune in its meter's default unit, without L: (tunes that cannot be: left out)
            raw = [t for t in map(with_default_unit, raw) if t is not None]
        tunes = abc.select(raw, tuple(h.keep_headers), h.require_meter)
        if h.only_valid:
            tunes = [t for t, ok in zip(tunes, cached_validity(tunes)) if ok]
        if len(tunes) < 2:
            meter = " with a meter (M:; or set data.require_meter=false)" if h.require_meter else ""
            found = f"{self.source_name} holds {len(tunes)} distinct tunes{meter}"
            raise DataSourceError(f"{found}; need at least 2 to split")
        return tunes

    def setup(self, stage: str | None = None) -> None:
        if self.train_set is not None:
            return
        h = self.hparams
        tunes = self._tunes()
        order = torch.randperm(len(tunes), generator=torch.Generator().manual_seed(h.split_seed)).tolist()
        n_val = max(1, round(len(tunes) * h.val_fraction))
        self.val_tunes = [tunes[i] for i in order[:n_val]]
        self.train_tunes = [tunes[i] for i in order[n_val:]]
        train_text, val_text = tune_stream(self.train_tunes), tune_stream(self.val_tunes)
        self.tokenizer = build_tokenizer(h.tokenizer, train_text + val_text)
        for split, text in (("training", train_text), ("validation", val_text)):
            ids = self.tokenizer.encode(text)
            if len(ids) < h.block_size + 1:
                raise DataSourceError(
                    f"the {split} tunes of {self.source_name} have {len(ids)} tokens, fewer than block_size + 1 = "
                    f"{h.block_size + 1}: use a smaller block_size or more tunes"
                )
            stride = h.train_stride if split == "training" else h.block_size
            windows = Windows(
                ids.to(torch.uint8 if self.tokenizer.vocab_size <= 256 else torch.int32), h.block_size, stride
            )
            if split == "training":
                self.train_set = windows
            else:
                self.val_set = windows

    def train_dataloader(self) -> DataLoader:
        return self.train_loader(self.train_set)

    def val_dataloader(self) -> DataLoader:
        return self.eval_loader(self.val_set)

    def model_kwargs(self) -> dict:
        if self.tokenizer is None:
            raise RuntimeError("call setup() before model_kwargs(): the vocabulary is built from the tunes")
        return {"tokenizer": self.tokenizer.to_config()}
