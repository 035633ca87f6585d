"""Every data module names its source, and reports a source it cannot read, the same way (gen_lightning/data/base.py,
sources.py, decoding.py): a missing path, a file that does not decode, an empty file, two sources, an unreachable hub.
"""

from __future__ import annotations

import gzip
import re

import pytest

from gen_lightning.data.decoding import read_text
from gen_lightning.data.images import ImageDataModule, PairedImageDataModule
from gen_lightning.data.music import MusicDataModule
from gen_lightning.data.sources import DataSourceError, EmptySourceError, SourceNotFoundError, TextDecodingError
from gen_lightning.data.text import Seq2SeqDataModule, TextClassificationDataModule, TextDataModule

LATIN1 = "caf\u00e9 au lait"  # \u00e9 is one byte in Latin-1, not valid UTF-8 on its own

# One reader per modality: a data module reading ``path`` as far as its first file.
READERS = {
    "image folder": lambda path, **kw: ImageDataModule(source="image_folder", path=path, **kw).setup("fit"),
    "paired folders": lambda path, **kw: PairedImageDataModule(source="folders", path=path, **kw).setup("fit"),
    "text": lambda path, **kw: TextDataModule(path=path, block_size=2, **kw).setup("fit"),
    "parallel text": lambda path, **kw: Seq2SeqDataModule(path=path, tokenizer="char", **kw).pairs("train"),
    "classification": lambda path, **kw: TextClassificationDataModule(path=path, **kw).setup("fit"),
    "music": lambda path, **kw: MusicDataModule(path=path, **kw).setup("fit"),
}
TEXT_READERS = ("text", "parallel text", "classification", "music")


@pytest.mark.parametrize("modality", sorted(READERS))
def test_a_missing_path_reads_the_same_in_every_modality(modality, tmp_path):
    missing = str(tmp_path / "nowhere")
    with pytest.raises(SourceNotFoundError) as info:
        READERS[modality](missing)
    assert isinstance(info.value, FileNotFoundError)  # what the text readers raised before
    message = str(info.value)
    assert message.startswith(f"data.path={missing!r} does not exist: give "), message
    assert len(message) > len(f"data.path={missing!r} does not exist: give ") + 10  # says what the path must hold


def test_a_relative_missing_path_says_where_it_was_looked_for(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(
        SourceNotFoundError, match=re.escape(f"data.path='corpus.txt' does not exist (relative to {tmp_path}):")
    ):
        TextDataModule(path="corpus.txt").setup("fit")


def _latin1_source(modality: str, root):
    """A source of ``modality`` whose one file holds Latin-1 bytes on its last line; (path to give, bad file)."""
    root.mkdir()
    lines = {"text": ["the first line", LATIN1], "music": ["X:1\nM:2/4\nK:C\nCDEF|", f"T:{LATIN1}"]}
    if modality == "parallel text":
        (root / "train.en").write_text("one\ntwo\n")
        bad = root / "train.de"
        bad.write_bytes(f"eins\n{LATIN1}\n".encode("latin-1"))
        return root, bad
    if modality == "classification":
        bad = root / "reviews.csv"
        bad.write_bytes(f"text,label\n{LATIN1},pos\n".encode("latin-1"))
        return bad, bad
    bad = root / ("tunes.abc" if modality == "music" else "corpus.txt")
    bad.write_bytes("\n".join(lines[modality]).encode("latin-1"))
    return root, bad


@pytest.mark.parametrize("modality", TEXT_READERS)
def test_a_file_in_the_wrong_encoding_reads_the_same_in_every_modality(modality, tmp_path):
    path, bad = _latin1_source(modality, tmp_path / "data")
    data = bad.read_bytes()
    offset = data.index(LATIN1.encode("latin-1")) + LATIN1.index("\u00e9")
    line = data[:offset].count(b"\n") + 1  # 2, and 5 in the tune (its header lines come first)
    with pytest.raises(TextDecodingError) as info:
        READERS[modality](str(path))
    message = str(info.value)
    assert message.startswith(f"{bad} is not valid UTF-8 text: line {line}, byte {offset} (invalid continuation byte)")
    assert "data.encoding=latin-1" in message and f"iconv -f latin1 -t utf-8 {bad.name}" in message
    try:  # with data.encoding=latin-1 the file decodes (the tiny data may then be too little for the module)
        READERS[modality](str(path), encoding="latin-1")
    except DataSourceError as err:
        assert not isinstance(err, TextDecodingError), err


def test_decoding_names_line_and_byte_and_reads_gzip(tmp_path):
    good = tmp_path / "ok.txt.gz"
    good.write_bytes(gzip.compress(f"ab\n{LATIN1}\n".encode()))
    assert read_text(good) == f"ab\n{LATIN1}\n"
    bad = tmp_path / "bad.txt"
    bad.write_bytes(b"line one\nline two\nx\xff\n")
    with pytest.raises(
        TextDecodingError, match=r"bad.txt is not valid UTF-8 text: line 3, byte 19 \(invalid start byte\)"
    ):
        read_text(bad)
    assert read_text(bad, "latin-1").endswith("x\u00ff\n")
    ascii_fix = (
        r"bad.txt is not valid ASCII text: line 3, byte 19 .*Set data.encoding to the file's encoding \(not ascii\)"
    )
    with pytest.raises(TextDecodingError, match=ascii_fix):
        read_text(bad, "ascii")
    with pytest.raises(DataSourceError, match="data.encoding='klingon' is not an encoding Python knows"):
        read_text(bad, "klingon")


@pytest.mark.parametrize("content", [b"", b"  \n\n\t\n"])
def test_an_empty_text_is_named(tmp_path, content):
    empty = tmp_path / "empty.txt"
    empty.write_bytes(content)
    with pytest.raises(EmptySourceError, match=re.escape(f"the text file {empty} is empty")):
        read_text(empty)
    with pytest.raises(EmptySourceError, match=re.escape(f"the text file {empty} is empty")):
        TextDataModule(path=str(empty), tokenizer="byte").setup("fit")  # bytes are not decoded, still refused


@pytest.mark.parametrize(
    "make",
    [
        lambda: TextDataModule(path="a.txt", hub_name="some/corpus"),
        lambda: TextClassificationDataModule(path="a.txt", hub_name="some/corpus"),
        lambda: Seq2SeqDataModule(path="a.txt", hub_name="some/corpus"),
    ],
)
def test_two_sources_are_refused_the_same_way(make):
    with pytest.raises(DataSourceError, match=r"^give one source, not both data.path='a.txt' and data.hub_name='some/"):
        make()


def test_an_unknown_embedded_source_lists_the_known_ones():
    with pytest.raises(DataSourceError, match="data.embedded='shakespeare' is not embedded data; choose one of pydoc"):
        TextDataModule(embedded="shakespeare")
    with pytest.raises(DataSourceError, match="data.corpus='bach' is not a corpus music21 ships; choose one of essen"):
        MusicDataModule(corpus="bach")


@pytest.mark.parametrize(
    "make",
    [
        lambda: TextDataModule(hub_name="someone/corpus"),
        lambda: TextClassificationDataModule(hub_name="someone/corpus"),
        lambda: Seq2SeqDataModule(hub_name="someone/corpus", splits={"train": "train", "val": "train"}),
        lambda: ImageDataModule(source="hub", hub_name="someone/corpus"),
    ],
)
def test_an_unreachable_hub_reads_the_same_in_every_modality(make, monkeypatch):
    datasets = pytest.importorskip("datasets")

    def offline(*args, **kwargs):
        raise ConnectionError("Couldn't reach 'someone/corpus' on the Hub")

    monkeypatch.setattr(datasets, "load_dataset", offline)
    module = make()
    with pytest.raises(DataSourceError) as info:
        module.prepare_data()
    message = str(info.value)
    assert message.startswith(
        "could not load the hub dataset 'someone/corpus' (data.hub_name; config None, split 'train'): ConnectionError"
    )
    assert message.endswith(f"or {module.LOCAL_COPY}.") and "data.path=" in module.LOCAL_COPY


# Every data config whose data.path is its source (extra overrides that make it so), and those that read no path.
PATH_CONFIGS = {
    "image_folder": [],
    "parquet": [],
    "paired_folders": [],
    "paired_parquet": [],
    "text": [],
    "text_embedded": [],
    "text_classification": [],
    "translation": [],
    "summarization": ["data.embedded=null"],
    "music": [],
    "sentences": [],
}
OTHER_CONFIGS = {"digits", "mnist", "cifar10", "paired", "paired_mnist", "unpaired", "text_hub", "oracle"}


def test_every_data_config_is_listed_here():
    from gen_lightning.config import config_dir

    assert {p.stem for p in (config_dir() / "data").glob("*.yaml")} == set(PATH_CONFIGS) | OTHER_CONFIGS


@pytest.mark.parametrize("name", sorted(PATH_CONFIGS))
def test_every_data_config_reports_a_missing_path_the_same_way(name, tmp_path):
    from hydra.utils import instantiate

    from gen_lightning.config import compose

    missing = str(tmp_path / "nowhere")
    cfg = compose([f"data={name}", f"data.path={missing}", *PATH_CONFIGS[name], "logger=none"])
    module = instantiate(cfg.data)
    assert module.source.kind == "path" and module.source.value == missing
    with pytest.raises(SourceNotFoundError, match=f"^data.path={re.escape(repr(missing))} does not exist: give "):
        module.prepare_data()
        module.setup("fit")
