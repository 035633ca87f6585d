"""Pairs of texts for sequence-to-sequence models (translation, summarisation) as a LightningDataModule.

Sources (``data/base.py``'s keys; readers in ``parallel.py``): a local folder of aligned line files, TSV or JSONL
per split, a Hugging Face dataset, or (``embedded=stdlib_summaries``) the code-summarisation corpus of the installed
standard library (``docstrings.py``). The tokenizer is trained at setup on the training split: subword
(``bpe``/``unigram``, ``subword.py``), or ``byte``/``char``. ``joint_vocab`` trains one vocabulary on sources and
targets together (required to share embeddings); otherwise the source side has its own, given to the model as
``source_tokenizer``.

Batches (docs/CONTRACT.md, conditional text): ``{"source", "target"}`` int64 (B, S) / (B, T) padded on the right
with the tokenizer's pad id, ``"source_mask"`` / ``"target_mask"`` bool (True at real tokens). A source is its
ids and eos; a target is bos, its ids and eos (the decoder reads target[:, :-1] and predicts target[:, 1:]); both
truncated to ``max_len`` tokens. Batches hold sentences of similar length (``data/buckets.py``).
``evaluation_loader`` yields the raw, untokenised texts for the metric protocols.
"""

from __future__ import annotations

import torch
from omegaconf import DictConfig, ListConfig, OmegaConf
from torch.utils.data import DataLoader, Dataset

from gen_lightning.data.base import DataModule
from gen_lightning.data.buckets import BucketBatchSampler
from gen_lightning.data.loaders import evaluation_loader
from gen_lightning.data.text.parallel import LOCAL, Pairs, hub_pairs, read_folder_split
from gen_lightning.data.text.subword import ALGORITHMS, train_cached
from gen_lightning.data.text.tokenizers import ByteTokenizer, CharTokenizer, from_config

TOKENIZERS = (*ALGORITHMS, "byte", "char")
SPLITS = ("train", "val", "test")


class Vocabulary:
    """A tokenizer with the framing symbols pad/bos/eos: its own (subword), or three ids after its vocabulary."""

    def __init__(self, config: dict) -> None:
        self.tokenizer = tok = from_config(config)
        if hasattr(tok, "pad_id"):
            self.pad, self.bos, self.eos, self.size = tok.pad_id, tok.bos_id, tok.eos_id, tok.vocab_size
        else:  # char / byte: no special symbols of their own
            v = tok.vocab_size
            self.pad, self.bos, self.eos, self.size = v, v + 1, v + 2, v + 3

    def encode_batch(self, texts: list[str]) -> list[list[int]]:
        if hasattr(self.tokenizer, "encode_batch"):
            return self.tokenizer.encode_batch(texts)
        return [self.tokenizer.encode(t).tolist() for t in texts]

    def decode(self, ids: list[int]) -> str:
        if hasattr(self.tokenizer, "pad_id"):
            return self.tokenizer.decode(ids)
        return self.tokenizer.decode([i for i in ids if i < self.tokenizer.vocab_size])

    def frame_source(self, ids: list[int], max_len: int) -> list[int]:
        return [*ids[: max_len - 1], self.eos]

    def frame_target(self, ids: list[int], max_len: int) -> list[int]:
        return [self.bos, *ids[: max_len - 2], self.eos]


def pad(rows: list[list[int]], value: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, L) int64 ids padded on the right with ``value`` and the (B, L) bool mask of the real tokens."""
    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), value, dtype=torch.long)
    for i, row in enumerate(rows):
        ids[i, : len(row)] = torch.tensor(row, dtype=torch.long)
    lengths = torch.tensor([len(r) for r in rows])
    return ids, torch.arange(width)[None] < lengths[:, None]


class PairDataset(Dataset):
    """Framed id lists of sources and targets."""

    def __init__(self, sources: list[list[int]], targets: list[list[int]]) -> None:
        self.sources, self.targets = sources, targets

    def __len__(self) -> int:
        return len(self.sources)

    def __getitem__(self, i: int) -> tuple[list[int], list[int]]:
        return self.sources[i], self.targets[i]

    def lengths(self) -> list[int]:
        return [max(len(s), len(t)) for s, t in zip(self.sources, self.targets)]


class RawPairs(Dataset):
    """Untokenised (source, target) texts, for the metric protocols."""

    def __init__(self, sources: list[str], targets: list[str]) -> None:
        self.sources, self.targets = sources, targets

    def __len__(self) -> int:
        return len(self.sources)

    def __getitem__(self, i: int) -> tuple[str, str]:
        return self.sources[i], self.targets[i]


def collate_texts(items: list[tuple[str, str]]) -> dict[str, list[str]]:
    return {"source": [s for s, _ in items], "target": [t for _, t in items]}


class Collate:
    """A list of (source ids, target ids) -> the contract's dict batch (a class: picklable for workers)."""

    def __init__(self, source_pad: int, target_pad: int) -> None:
        self.source_pad, self.target_pad = source_pad, target_pad

    def __call__(self, items) -> dict[str, torch.Tensor]:
        source, source_mask = pad([s for s, _ in items], self.source_pad)
        target, target_mask = pad([t for _, t in items], self.target_pad)
        return {"source": source, "source_mask": source_mask, "target": target, "target_mask": target_mask}


def _plain(value):
    return OmegaConf.to_container(value, resolve=True) if isinstance(value, DictConfig | ListConfig) else value


class Seq2SeqDataModule(DataModule):
    """Source/target text pairs: translation (``conf/data/translation.yaml``), summarisation (``summarization``)."""

    task, source_modality, modality = "conditional", "text", "text"
    EMBEDDED = {"stdlib_summaries": "the embedded standard-library summaries"}
    LOCAL = LOCAL
    LOCAL_COPY = "save the pairs as SPLIT.tsv or SPLIT.jsonl files in a folder and pass data.path=FOLDER"

    def __init__(
        self,
        path: str | None = None,
        source_lang: str = "de",
        target_lang: str = "en",
        source_field: str | None = None,
        target_field: str | None = None,
        splits: dict | None = None,
        hub_name: str | None = None,
        hub_kwargs: dict | None = None,
        embedded: str | None = None,
        encoding: str = "utf-8",
        tokenizer: str = "bpe",
        vocab_size: int = 8000,
        joint_vocab: bool = True,
        pre_tokenizer: str = "byte_level",
        max_len: int = 128,
        batch_size: int = 64,
        pool: int = 50,
        num_workers: int = 0,
        seed: int = 0,
    ) -> None:
        super().__init__()
        if tokenizer not in TOKENIZERS:
            raise ValueError(f"tokenizer must be one of {TOKENIZERS}, got {tokenizer!r}")
        if max_len < 3 or batch_size < 1:
            raise ValueError(f"need max_len >= 3 and batch_size >= 1, got {max_len} and {batch_size}")
        # Plain containers (Hydra passes DictConfigs): checkpoints keep these and load with weights_only=True.
        splits, hub_kwargs = _plain(splits), _plain(hub_kwargs)
        self.save_hyperparameters(logger=False)
        self.check_source()
        self.split_names = {**{s: s for s in SPLITS}, **dict(splits or {})}
        self.source_vocab: Vocabulary | None = None
        self.target_vocab: Vocabulary | None = None
        self._pairs: dict[str, Pairs] = {}
        self.datasets: dict[str, PairDataset] = {}

    # ---- reading -------------------------------------------------------------------------------------
    def pairs(self, split: str) -> Pairs:
        """(sources, targets) of ``train``, ``val`` or ``test``, untokenised."""
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
        if split not in self._pairs:
            h = self.hparams
            name = self.split_names[split]
            fields = (h.source_field or h.source_lang, h.target_field or h.target_lang)
            kind = self.source.kind
            if kind == "embedded":
                from gen_lightning.data.text.docstrings import stdlib_summaries

                self._pairs.update(stdlib_summaries())
            elif kind == "hub":
                self._pairs[split] = hub_pairs(self.load_hub(name), h.hub_name, *fields)
            else:
                encoding = h.get("encoding", "utf-8")
                self._pairs[split] = read_folder_split(h.path, name, h.source_lang, h.target_lang, *fields, encoding)
        return self._pairs[split]

    def hub_splits(self) -> set[str]:
        return {self.split_names["train"], self.split_names["val"]}

    def _train_vocab(self, texts: list[str]) -> Vocabulary:
        h = self.hparams
        if h.tokenizer == "byte":
            return Vocabulary(ByteTokenizer().to_config())
        if h.tokenizer == "char":
            return Vocabulary(CharTokenizer.from_text("".join(texts)).to_config())
        tok = train_cached(texts, algorithm=h.tokenizer, vocab_size=h.vocab_size, pre_tokenizer=h.pre_tokenizer)
        return Vocabulary(tok.to_config())

    def setup(self, stage: str | None = None) -> None:
        if self.target_vocab is not None:
            return
        h = self.hparams
        sources, targets = self.pairs("train")
        if h.joint_vocab:
            self.source_vocab = self.target_vocab = self._train_vocab(sources + targets)
        else:
            self.source_vocab, self.target_vocab = self._train_vocab(sources), self._train_vocab(targets)
        for split in ("train", "val"):
            src, tgt = self.pairs(split)
            framed_src = [self.source_vocab.frame_source(s, h.max_len) for s in self.source_vocab.encode_batch(src)]
            framed_tgt = [self.target_vocab.frame_target(t, h.max_len) for t in self.target_vocab.encode_batch(tgt)]
            self.datasets[split] = PairDataset(framed_src, framed_tgt)

    # ---- loaders -------------------------------------------------------------------------------------
    def _loader(self, split: str, shuffle: bool) -> DataLoader:
        h = self.hparams
        dataset = self.datasets[split]
        sampler = BucketBatchSampler(dataset.lengths(), h.batch_size, shuffle=shuffle, seed=h.seed, pool=h.pool)
        return DataLoader(
            dataset,
            batch_sampler=sampler,
            collate_fn=Collate(self.source_vocab.pad, self.target_vocab.pad),
            num_workers=h.num_workers,
            persistent_workers=h.num_workers > 0,
            # A private generator: creating an iterator must not draw from the global RNG (exact resume).
            generator=torch.Generator().manual_seed(h.seed),
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", shuffle=False)

    def evaluation_loader(self, split: str, num_items: int | None = None, batch_size: int = 64):
        """Raw ``{"source", "target"}`` text batches of the first ``num_items`` pairs of ``split`` (plus ``index``
        and ``batch``), batch-sharded across processes (``gen_lightning.data.loaders.evaluation_loader``)."""
        return evaluation_loader(RawPairs(*self.pairs(split)), num_items, batch_size, collate_texts)

    def model_kwargs(self) -> dict:
        """The tokenizers' descriptions (the target's; the source's too when the vocabularies are separate)."""
        if self.target_vocab is None:
            raise RuntimeError("call setup() before model_kwargs(): the vocabulary is trained on the training split")
        kwargs = {"tokenizer": self.target_vocab.tokenizer.to_config()}
        if not self.hparams.joint_vocab:
            kwargs["source_tokenizer"] = self.source_vocab.tokenizer.to_config()
        return kwargs
