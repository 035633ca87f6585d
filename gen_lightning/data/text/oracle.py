"""``data=oracle``: the synthetic benchmark of SeqGAN (Yu et al., AAAI 2017, section "Synthetic Data Experiments").

A randomly initialised LSTM, the oracle, is the true data distribution: vocabulary 5,000, embedding and hidden
width 32, sequences of 20 tokens, every parameter drawn from N(0, 1) (SeqGAN's ``target_lstm``), the first input
the embedding of token 0 (its start token). It writes the training set (10,000 sequences in the paper) and a test
set, and scores generated sequences: NLL_oracle is the mean negative log-likelihood per token of generated
sequences under the oracle (SeqGAN: 9.04 after MLE pre-training, 8.74 after adversarial training).

The oracle is drawn from ``oracle_seed`` with its own ``torch.Generator`` (the run's seed does not touch it), and
saved with the run: the data module's ``state_dict`` holds its weights, so every checkpoint carries the oracle it
was trained against, and a resumed or re-evaluated run uses that one (a mismatch with the seed is an error).

Token ``k`` of the oracle is the word ``str(k)`` of a fixed word vocabulary (``<pad>``, ``<eos>``, ``<unk>``, then
``"0"`` .. ``"4999"``), so the sequence models and the ``sentences`` protocol read it like any sentence data: a
batch is ``<eos> x_1 .. x_20 <eos>`` (gen_lightning/data/text/sentences.py, whose ``SentenceData`` it is). Its source,
in data/base.py's terms, is embedded (``seqgan_oracle``, drawn here): it reads no path and no hub dataset.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import nn

from gen_lightning.data.text.sentences import SentenceData, pad_examples
from gen_lightning.data.text.tokenizers import VocabularyError
from gen_lightning.data.text.words import SPECIALS, WordTokenizer
from gen_lightning.files import save_torch


def cache_root() -> Path:
    """``$GEN_LIGHTNING_CACHE`` (default ``~/.cache/gen_lightning``)."""
    return Path(os.environ.get("GEN_LIGHTNING_CACHE") or Path.home() / ".cache" / "gen_lightning")


class OracleLSTM(nn.Module):
    """SeqGAN's target LSTM: ids (B, T) -> next-token logits (B, T, V), start token 0, N(0, 1) parameters."""

    def __init__(self, vocab_size: int = 5000, hidden_dim: int = 32, seed: int = 0) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab_size, hidden_dim)
        self.lstm = nn.LSTM(hidden_dim, hidden_dim, batch_first=True)
        self.head = nn.Linear(hidden_dim, vocab_size)
        generator = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            for p in self.parameters():  # in the order of named_parameters: the same oracle for the same seed
                p.copy_(torch.randn(p.shape, generator=generator))
        self.requires_grad_(False)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        """Logits of x_1..x_T given the start token and x_1..x_{T-1}: (B, T) -> (B, T, V)."""
        start = torch.zeros_like(ids[:, :1])
        h, _ = self.lstm(self.embed(torch.cat([start, ids[:, :-1]], dim=1)))  # (B, T, H)
        return self.head(h)

    @torch.no_grad()
    def sample(self, n: int, length: int, generator: torch.Generator, batch_size: int = 2000) -> torch.Tensor:
        """(n, length) sequences drawn ancestrally (all randomness from ``generator``)."""
        out = []
        for start in range(0, n, batch_size):
            ids = torch.zeros(min(batch_size, n - start), 1, dtype=torch.long)  # the start token
            state, rows = None, []
            for _ in range(length):
                h, state = self.lstm(self.embed(ids), state)
                # Inverse CDF (torch.multinomial is 6x slower for 5,000 classes on a CPU).
                cdf = self.head(h[:, -1]).softmax(-1).cumsum(-1)  # (B, V)
                u = torch.rand(len(cdf), 1, generator=generator) * cdf[:, -1:]
                ids = torch.searchsorted(cdf, u).clamp_(max=cdf.size(1) - 1)  # (B, 1)
                rows.append(ids)
            out.append(torch.cat(rows, dim=1))
        return torch.cat(out)

    @torch.no_grad()
    def nll(self, ids: torch.Tensor) -> torch.Tensor:
        """(B, T) sequences -> (B,) mean negative log-likelihood per token."""
        logp = self(ids).log_softmax(-1).gather(-1, ids[..., None])[..., 0]  # (B, T)
        return -logp.mean(dim=1)


class OracleDataModule(SentenceData):
    """Sequences of SeqGAN's oracle as sentence data (see the file docstring)."""

    EMBEDDED = {"seqgan_oracle": "SeqGAN oracle LSTM"}

    def __init__(
        self,
        vocab_size: int = 5000,
        hidden_dim: int = 32,
        max_length: int = 20,
        num_train: int = 10000,
        num_test: int = 2000,
        oracle_seed: int = 88,
        batch_size: int = 64,
        eval_batch_size: int | None = None,
        num_workers: int = 0,
        seed: int = 0,
        tokenizer: dict | None = None,  # a checkpoint's (init_from): must be the oracle's fixed vocabulary
    ) -> None:
        super().__init__()
        for key, value in {"vocab_size": vocab_size, "hidden_dim": hidden_dim, "max_length": max_length}.items():
            if value < 1:
                raise ValueError(f"data.{key} must be a positive integer, got {value}")
        if num_train < 1 or num_test < 2:
            raise ValueError(f"data.num_train must be >= 1 and data.num_test >= 2, got {num_train}, {num_test}")
        self.save_hyperparameters(logger=False)
        self.oracle: OracleLSTM | None = None
        self.tokenizer = WordTokenizer([*SPECIALS, *map(str, range(vocab_size))], "whitespace")
        self.ids: dict[str, torch.Tensor] = {}
        self.datasets: dict = {}

    def setup(self, stage: str | None = None) -> None:
        if self.datasets:
            return
        h = self.hparams
        if h.tokenizer is not None and list(h.tokenizer.get("words", [])) != self.tokenizer.words:
            raise VocabularyError(
                f"a carried tokenizer ({len(h.tokenizer.get('words', []))} words) is not the oracle's fixed vocabulary "
                f"of {self.tokenizer.vocab_size} (<pad>, <eos>, <unk>, '0' .. '{h.vocab_size - 1}')"
            )
        if self.oracle is None:
            self.oracle = OracleLSTM(h.vocab_size, h.hidden_dim, h.oracle_seed)
        train, test = self._sequences()
        self.ids = {"train": train, "val": test, "test": test}
        offset = len(SPECIALS)  # oracle token k is vocabulary id k + 3
        for split, ids in self.ids.items():
            self.datasets[split] = pad_examples((ids + offset).tolist(), h.max_length, 1, 0)

    def _sequences(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The training and test sequences: drawn from a second generator seeded by ``oracle_seed + 1`` (so they
        too depend on the oracle seed only), cached under ``$GEN_LIGHTNING_CACHE/oracle/`` (a minute to draw on a
        loaded CPU); a cached file is used only when the oracle that drew it is this one."""
        h = self.hparams
        key = f"v{h.vocab_size}_h{h.hidden_dim}_t{h.max_length}_n{h.num_train}+{h.num_test}_s{h.oracle_seed}"
        file = cache_root() / "oracle" / f"{key}_torch{torch.__version__.split('+')[0]}.pt"
        if file.is_file():
            cached = torch.load(file, map_location="cpu", weights_only=True)
            if torch.equal(cached["head"], self.oracle.head.weight):
                return cached["train"], cached["test"]
        generator = torch.Generator().manual_seed(h.oracle_seed + 1)
        train = self.oracle.sample(h.num_train, h.max_length, generator)
        test = self.oracle.sample(h.num_test, h.max_length, generator)
        file.parent.mkdir(parents=True, exist_ok=True)
        save_torch({"train": train, "test": test, "head": self.oracle.head.weight}, file)
        return train, test

    # ------------------------------------------------------------ the oracle saved with the run

    def state_dict(self) -> dict:
        return {"oracle": self.oracle.state_dict()} if self.oracle is not None else {}

    def load_state_dict(self, state: dict) -> None:
        if "oracle" not in state:
            return
        h = self.hparams
        saved = OracleLSTM(h.vocab_size, h.hidden_dim, h.oracle_seed)
        fresh = {k: v.clone() for k, v in saved.state_dict().items()}
        saved.load_state_dict(state["oracle"])
        if any(not torch.equal(fresh[k], v) for k, v in saved.state_dict().items()):
            raise ValueError(
                f"the checkpoint's oracle differs from the one data.oracle_seed={h.oracle_seed} draws (another seed "
                "or another torch version's generator): evaluate with the checkpoint's data config"
            )
        self.oracle = saved

    # ------------------------------------------------------------ what the sentence metrics read

    @property
    def source_name(self) -> str:
        h = self.hparams
        return f"{self.EMBEDDED['seqgan_oracle']} (vocab {h.vocab_size}, hidden {h.hidden_dim}, seed {h.oracle_seed})"

    def sentences(self, split: str) -> list[list[str]]:
        self.check_split(split)
        return [list(map(str, row)) for row in self.ids[split].tolist()]

    def oracle_nll(self, hypotheses: list[list[str]]) -> tuple[float, int]:
        """Mean NLL per token under the oracle of the hypotheses of exactly ``max_length`` oracle tokens, and the
        number of the others (shorter, longer, or holding a word that is not an oracle token: not scored)."""
        h = self.hparams
        valid = [
            [int(w) for w in s]
            for s in hypotheses
            if len(s) == h.max_length and all(w.isdigit() and int(w) < h.vocab_size for w in s)
        ]
        if not valid:
            return float("nan"), len(hypotheses)
        nll = torch.cat([self.oracle.nll(torch.tensor(valid[i : i + 1000])) for i in range(0, len(valid), 1000)])
        return float(nll.mean()), len(hypotheses) - len(valid)

    def card(self) -> dict:
        h = self.hparams
        return {
            "data": self.source_name,
            "tokenizer": "oracle tokens (whitespace)",
            "vocab_size": self.tokenizer.vocab_size,
            "max_length": h.max_length,
            "train_sequences": h.num_train,
        }
