"""``music``: the share of valid tunes among a text model's samples (``val/valid_tunes``), with files to hear.

The model (any unconditional text model trained on ABC tunes: LSTM, GRU, GPT) writes ``num_items`` samples of up
to ``max_length`` tokens at ``temperature``, each starting after a blank line (``prompt``: the end of a tune, so
the model begins a new one). A sample's first tune is checked (gen_lightning/music/validity.py): finished within
the budget, parsed by music21 without error or warning, with bars that fit its meter. Sample ``i`` belongs to
batch ``i // batch_size``, drawn with a generator seeded from ``(seed, batch)``; process ``r`` of ``W`` draws
batches ``r, r + W, ...``, so one process and many give the same tunes and the same share.

The card also gives the same check on the data's held-out real tunes (``real_valid_share``, the metric's ceiling
on that corpus: real transcriptions hold irregular bars too). In training, the first ``files`` tunes are written
as ``.abc`` and ``.mid`` under ``RUN_DIR/samples/tunes/step<N>/`` and drawn as piano rolls (``figures``, logged to
W&B as images).
"""

from __future__ import annotations

import torch

from gen_lightning.metrics.protocol import EvaluationCallback, batch_generator, gather_objects
from gen_lightning.music.render import piano_roll, write_tunes
from gen_lightning.music.validity import first_tune, valid_share
from gen_lightning.run_dir import RunDir


class TuneValidity(EvaluationCallback):
    """``valid_tunes`` of an ABC-trained text model; see the file docstring.

    Args (besides ``EvaluationCallback``'s; ``num_items`` is the number of sampled tunes): ``max_length``
    (tokens sampled per tune), ``temperature``, ``top_k``, ``prompt`` (the context each sample starts from),
    ``files`` (tunes written as .abc / .mid and drawn as piano rolls in training)."""

    protocol_name = "music"
    tasks = (("unconditional", None, "text"),)
    metric_directions = {"valid_tunes": "max"}
    subset_setting = None  # num_items counts sampled tunes: the same number on any split

    def __init__(
        self,
        every_n_epochs: int = 1,
        split: str = "val",
        num_items: int | None = 64,
        batch_size: int = 32,
        seed: int = 0,
        max_length: int = 1024,
        temperature: float = 1.0,
        top_k: int | None = None,
        prompt: str = "\n\n",
        files: int = 8,
    ) -> None:
        super().__init__(every_n_epochs, split, num_items or 64, batch_size, seed)
        if max_length < 1 or temperature <= 0:
            raise ValueError(f"need max_length >= 1 and temperature > 0, got {max_length}, {temperature}")
        self.max_length, self.temperature, self.top_k = max_length, temperature, top_k
        self.prompt, self.files = prompt, files
        self._ceiling: tuple[int, float] | None = None

    def settings(self) -> dict:
        import music21

        return {
            "max_length": self.max_length,
            "temperature": self.temperature,
            "top_k": self.top_k,
            "prompt": repr(self.prompt),
            "music21": music21.__version__,
        }

    def _samples(self, module) -> list[str]:
        from gen_lightning.nn.distributed import dist_info

        rank, world = dist_info()
        rows = []
        for b in range(rank, -(-self.num_items // self.batch_size), world):
            n = min(self.batch_size, self.num_items - b * self.batch_size)
            generator = batch_generator(self.seed, b, module.device)
            texts = module.sample(
                n, self.max_length, prompt=self.prompt, temperature=self.temperature, top_k=self.top_k,
                generator=generator,
            )  # fmt: skip
            rows += [(b * self.batch_size + i, t.removeprefix(self.prompt)) for i, t in enumerate(texts)]
        return [t for _, t in sorted(gather_objects(rows))]

    def _real_ceiling(self, datamodule) -> float | None:
        """The check on the data's first ``num_items`` held-out real tunes (computed once)."""
        tunes = getattr(datamodule, "val_tunes", None)
        if not tunes:
            return None
        if self._ceiling is None or self._ceiling[0] != id(datamodule):
            self._ceiling = (id(datamodule), valid_share(list(tunes[: self.num_items]))[0])
        return self._ceiling[1]

    def compute(self, module, datamodule, split: str) -> dict:
        samples = self._samples(module)
        tunes = [first_tune(s) for s in samples]
        share, checks = valid_share(tunes)
        card = {
            "tunes": len(tunes),
            "unfinished": sum(t is None for t in tunes),
            "real_valid_share": self._real_ceiling(datamodule),
        }
        figures = {}
        if self.files:
            roll = piano_roll(tunes[: self.files])  # (H, W, 3) uint8
            figures["piano_roll"] = torch.from_numpy(roll).permute(2, 0, 1).float() / 255
        return {"metrics": {"valid_tunes": share}, "protocol": card, "outputs": samples, "figures": figures}

    def _evaluate_in_fit(self, trainer, pl_module) -> dict:
        result = super()._evaluate_in_fit(trainer, pl_module)
        if trainer.is_global_zero and self.files:
            folder = RunDir(trainer.default_root_dir).sample("tunes", trainer.global_step)
            write_tunes(result["outputs"][: self.files], folder)
        return result
