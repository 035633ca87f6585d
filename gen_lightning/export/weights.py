"""A state dict as one safetensors file, and back, exactly: tied tensors, views and non-contiguous tensors included.

safetensors refuses what ``torch.save`` keeps: two names for one tensor (GPT's output head tied to its token
embedding, Press & Wolf 2017), tensors that share memory without being the same (a view of a slice), and
non-contiguous ones. So each tensor is written once under its first name, the other names of the very same tensor
(same memory, shape, strides and type) are recorded as aliases and filled back in when the file is read, a tensor
that only overlaps another is copied, and every tensor is made contiguous. The file's SHA-256 is recorded beside it,
so a corrupt or truncated file is named as such instead of loading wrong numbers.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from gen_lightning.files import file_sha256, write_with


class WeightsError(ValueError):
    """A weights file cannot be read or does not hold what its export says; the message names the file."""


def _identity(t: torch.Tensor) -> tuple:
    return (t.untyped_storage().data_ptr(), t.storage_offset(), tuple(t.shape), t.stride(), t.dtype, t.device)


def split_aliases(state: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """``(tensors, aliases)``: each distinct tensor once, contiguous and owning its memory, and ``{alias: name}``
    for every other name of a tensor already kept (a tied weight)."""
    tensors: dict[str, torch.Tensor] = {}
    aliases: dict[str, str] = {}
    first: dict[tuple, str] = {}
    storages: set[int] = set()
    for name, tensor in state.items():
        tensor = tensor.detach()
        if tensor.numel() == 0:  # empty tensors share no memory worth keeping (and all sit at address 0)
            tensors[name] = tensor.cpu().contiguous()
            continue
        key = _identity(tensor)
        if key in first:
            aliases[name] = first[key]
            continue
        first[key] = name
        storage = tensor.untyped_storage().data_ptr()
        shared = storage in storages  # overlaps a tensor already kept (a view): give it its own memory
        storages.add(storage)
        tensor = tensor.cpu().contiguous()
        tensors[name] = tensor.clone() if shared or not _owns_storage(tensor) else tensor
    return tensors, aliases


def _owns_storage(t: torch.Tensor) -> bool:
    """Whether ``t`` covers its whole storage (safetensors writes a view of a larger tensor only as a copy)."""
    return t.storage_offset() == 0 and t.untyped_storage().nbytes() == t.numel() * t.element_size()


def save(state: dict[str, torch.Tensor], path: str | Path, metadata: dict[str, str] | None = None) -> dict:
    """Write ``state`` to ``path`` (atomic, files.py); returns ``{"file", "sha256", "aliases"}`` for the export's
    config."""
    tensors, aliases = split_aliases(state)
    path = Path(path)

    def writer(tmp: Path) -> None:
        save_file(tensors, str(tmp), metadata={"format": "pt", **(metadata or {})})
        tmp.chmod(0o666 & ~_umask())  # safetensors creates it private (0600); an export is made to be shared

    write_with(path, writer)
    return {"file": path.name, "sha256": file_sha256(path), "aliases": aliases}


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def load(folder: Path, entry: dict, device: str | torch.device = "cpu") -> dict[str, torch.Tensor]:
    """The state dict of the export in ``folder`` whose config describes its weights as ``entry``: checked against
    its SHA-256, read without pickle, tied names filled back in (the same tensor under each name)."""
    path = folder / entry["file"]
    if not path.is_file():
        raise WeightsError(f"the export '{folder}' has no weights file '{entry['file']}': export the checkpoint again")
    if entry.get("sha256") and file_sha256(path) != entry["sha256"]:
        raise WeightsError(
            f"'{path}' is corrupt or truncated: its SHA-256 differs from the one recorded in its config.json when it "
            "was exported. Copy the export again, or export the checkpoint again."
        )
    try:
        state = load_file(str(path), device=str(device))
    except (SafetensorError, OSError, ValueError, RuntimeError) as err:
        raise WeightsError(
            f"'{path}' is not a readable safetensors file ({type(err).__name__}: {err}). Copy the export again, or "
            "export the checkpoint again."
        ) from err
    for alias, name in entry.get("aliases", {}).items():
        if name not in state:
            raise WeightsError(f"'{path}' lacks '{name}', which its config.json names as the tensor of '{alias}'")
        state[alias] = state[name]
    return state
