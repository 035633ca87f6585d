"""``gen-lightning export ckpt=PATH out=DIR [format=gen-lightning|hf]``: a trained model outside its run.

``ckpt`` is a checkpoint of gen-lightning or a run directory (its ``checkpoints/last.ckpt``). ``out`` is a new or
empty folder, or an earlier export to replace. The default format is the project's own (gen_lightning/export/):
``model.safetensors``, ``config.json``, the tokenizer's file and a model card ``README.md``; it loads back with
``gen_lightning.export.load_module(DIR)`` and is accepted by ``gen-lightning sample ckpt=DIR``. ``format=hf``
writes Hugging Face's layout, for the architectures ``transformers`` knows (GPT, BERT), through
``gen_lightning.interop.hf.export_hf``.
"""

from __future__ import annotations

from pathlib import Path

from gen_lightning.config import parse_kv
from gen_lightning.export import export_checkpoint
from gen_lightning.run.checkpoint import CheckpointError
from gen_lightning.run_dir import RunDir

USAGE = "usage: gen-lightning export ckpt=CHECKPOINT_OR_RUN_DIR out=DIR [format=gen-lightning|hf]"
FORMATS = ("gen-lightning", "hf")


def checkpoint_of(path: str | Path) -> Path:
    """The checkpoint ``ckpt=`` names: the file itself, or a run directory's ``checkpoints/last.ckpt``."""
    path = Path(path)
    if not path.is_dir():
        return path  # checkpoint.read names a missing or unreadable file
    run = RunDir(path)
    if not run.last.is_file():
        found = sorted(p.name for p in run.checkpoints.glob("*.ckpt")) if run.checkpoints.is_dir() else []
        hint = f"; give one of its checkpoints: {', '.join(found)}" if found else ""
        raise CheckpointError(f"ckpt={path} is a folder without {run.last.relative_to(run.path)}{hint}")
    return run.last


def export_command(args: list[str]) -> Path:
    options, unknown = parse_kv(args, own=("ckpt", "out", "format"))
    if unknown or not options.get("ckpt") or not options.get("out"):
        given = f"unknown argument '{unknown[0].partition('=')[0]}'; " if unknown else ""
        raise ValueError(given + USAGE)
    return export(**options)


def export(ckpt: str, out: str, format: str = "gen-lightning") -> Path:  # noqa: A002 - the command's own word
    if format not in FORMATS:
        raise ValueError(f"format={format} is not one of {', '.join(FORMATS)}")
    path = checkpoint_of(ckpt)
    if format == "hf":
        return export_hf(path, Path(out))
    target = export_checkpoint(path, out)
    print(f"exported {path} to {target}: {', '.join(sorted(p.name for p in target.iterdir()))}")
    print(f"load it with gen_lightning.export.load_module('{target}') or `gen-lightning sample ckpt={target}`")
    return target


def export_hf(path: Path, out: Path) -> Path:
    """Hugging Face's layout (config.json, model.safetensors, the tokenizer's files) of a GPT or BERT model."""
    from gen_lightning.run.checkpoint import load_module

    try:
        from gen_lightning.interop import hf
    except ModuleNotFoundError as err:
        raise ValueError(f"format=hf needs gen_lightning.interop.hf, which this installation lacks ({err})") from err
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ValueError(f"out={out} exists and is not an empty folder: give a new or empty one (nothing was written)")
    hf.export_hf(load_module(path), out)
    print(f"exported {path} in Hugging Face's layout to {out}")
    return out
