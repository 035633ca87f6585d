"""An export folder: a trained model outside its run, rebuilt without pickle (issue 26, "Export").

    DIR/
      model.safetensors     the module's state as the checkpoint holds it (weights, EMA, buffers such as SRGAN's
                            classifier features), each tied tensor once (weights.py)
      config.json           the model class, its constructor arguments (``hparams``), the data facts it takes from
                            its data (``data``: image shape, classes, tokenizers), the weights' SHA-256 and aliases
      tokenizer.json        the tokenizer the data gave the model (``source_tokenizer.json`` for a separate source
                            side): a subword tokenizer as Hugging Face ``tokenizers`` writes it, any other as the
                            project's description (``to_config()``)
      README.md             the model card (card.py)

``export_checkpoint(ckpt, out)`` writes it from a checkpoint, after checking that the model builds from the JSON
arguments and takes the weights. ``load_module(DIR)`` rebuilds it: the class named in config.json is checked against
run/declared.py before anything is imported, the weights are read with safetensors (no pickle) and checked against
their SHA-256. Every file is written through files.py (atomic).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import lightning as L
import torch

import gen_lightning
from gen_lightning.callbacks.resume import STATE_KEY
from gen_lightning.export import card, weights
from gen_lightning.files import write_json, write_text
from gen_lightning.run import checkpoint as ckpt_io
from gen_lightning.run import declared
from gen_lightning.tasks import task_of

FORMAT = "gen-lightning-export"
FORMAT_VERSION = 1
CONFIG, WEIGHTS, CARD = "config.json", "model.safetensors", "README.md"
# The constructor arguments a model takes from its data (docs/CONTRACT.md, "Construction").
DATA_FACTS = ("channels", "image_size", "num_classes", "class_names", "source_channels", "source_image_size")
TOKENIZERS = ("tokenizer", "source_tokenizer")
FILES = (CONFIG, WEIGHTS, CARD, *(f"{name}.json" for name in TOKENIZERS))


class ExportError(ValueError):
    """An export cannot be written or read; the message names the folder or file and what to do."""


def is_export(path: str | Path) -> bool:
    """Whether ``path`` is a folder holding an export's config.json (``load_module`` then says if it is not one)."""
    return Path(path).is_dir() and (Path(path) / CONFIG).is_file()


# ---- writing ---------------------------------------------------------------------------------------------
def export_checkpoint(ckpt_path: str | Path, out: str | Path) -> Path:
    """Write the export of the gen-lightning checkpoint ``ckpt_path`` into the folder ``out`` (new, empty, or an
    earlier export); returns ``out``."""
    ckpt = ckpt_io.read(ckpt_path)
    cls = ckpt_io.module_class(ckpt, ckpt_path)  # declared (run/declared.py), or refused before any import
    hparams = json_arguments(ckpt.get("hyper_parameters", {}), ckpt_path)
    build(cls, hparams, ckpt["state_dict"], f"checkpoint '{ckpt_path}'")  # what load_module will do, done now
    out = writable_folder(out)
    target = declared.path_of(cls)
    config = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "gen_lightning_version": gen_lightning.__version__,
        "class": target,
        "task": dict(zip(("task", "source_modality", "modality"), task_of(cls))),
        "hparams": {k: v for k, v in hparams.items() if k not in (*DATA_FACTS, *TOKENIZERS)},
        "data": {k: hparams[k] for k in DATA_FACTS if k in hparams},
        "trained": {"checkpoint": str(ckpt_path), "global_step": ckpt.get("global_step"), "epoch": ckpt.get("epoch")},
    }
    facts = card.run_facts(Path(ckpt_path), ckpt)  # the run's data config, seed and metrics, where it has them
    config["trained"].update({k: facts[k] for k in ("run_dir", "seed", "data") if k in facts})
    config["weights"] = weights.save(ckpt["state_dict"], out / WEIGHTS, {"gen_lightning_class": target})
    for name in TOKENIZERS:
        (out / f"{name}.json").unlink(missing_ok=True)  # an earlier export's into this folder
        if name in hparams:
            config["data"][name] = write_tokenizer(out, name, hparams[name]) if hparams[name] is not None else None
    write_text(out / CARD, card.model_card(config, facts, str(out)))
    write_json(out / CONFIG, config)  # last: a folder without it is an unfinished export
    return out


def json_arguments(hparams: dict, source: str | Path) -> dict:
    """The constructor arguments as JSON gives them back; a value JSON would change (not only a tuple becoming a
    list) is refused, naming it."""
    plain = {}
    for key, value in hparams.items():
        try:
            back = json.loads(json.dumps(value))
        except (TypeError, ValueError) as err:
            raise ExportError(
                f"{source}: the constructor argument {key}={value!r} cannot be written as JSON ({err})"
            ) from err
        if back != _as_lists(value):
            raise ExportError(f"{source}: the constructor argument {key} does not survive JSON (e.g. non-text keys)")
        plain[key] = back
    return plain


def _as_lists(value):
    if isinstance(value, tuple | list):
        return [_as_lists(v) for v in value]
    if isinstance(value, dict):
        return {k: _as_lists(v) for k, v in value.items()}
    return value


OWN_TEMPORARY = re.compile(rf"({'|'.join(map(re.escape, FILES))})\.\d+\.tmp")


def writable_folder(out: str | Path) -> Path:
    """``out``, created if missing; refused if it is a file, or a folder holding anything but an earlier export's
    files (nothing is written then)."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ExportError(f"out={out} is a file: give a folder for the export (new or empty)")
    if out.is_dir():
        others = sorted(p.name for p in out.iterdir() if p.name not in FILES and not OWN_TEMPORARY.fullmatch(p.name))
        if others:
            listed = ", ".join(others[:5]) + (" ..." if len(others) > 5 else "")
            raise ExportError(
                f"out={out} already holds files that are not part of an export ({listed}): give a new or empty "
                "folder (nothing was written)"
            )
        if (out / CONFIG).is_file():  # an earlier export may be replaced; another tool's folder (Hugging Face) not
            try:
                read_config(out)
            except ExportError as err:
                raise ExportError(
                    f"out={out} holds a {CONFIG} that is not a gen-lightning export's ({err}): give a new or empty "
                    "folder (nothing was written)"
                ) from err
    out.mkdir(parents=True, exist_ok=True)
    (out / CONFIG).unlink(missing_ok=True)  # until the new one is written, the folder is an unfinished export
    for temporary in out.iterdir():
        if OWN_TEMPORARY.fullmatch(temporary.name):
            temporary.unlink(missing_ok=True)  # left by an export that was killed while writing
    return out


def write_tokenizer(out: Path, name: str, description: dict) -> dict:
    """Write a tokenizer's file; returns its entry in config.json's ``data`` (the file and what is not in it)."""
    file = f"{name}.json"
    if description.get("kind") == "subword":  # the file is then the tokenizers library's own, loadable by it
        write_text(out / file, description["model"])
        entry = {k: v for k, v in description.items() if k != "model"}
        return {**entry, "file": file, "file_holds": "model"}
    write_json(out / file, description)
    return {"kind": description.get("kind"), "vocab_size": vocab_size(description), "file": file}


def vocab_size(description: dict) -> int | None:
    from gen_lightning.data.text.tokenizers import from_config

    try:
        return from_config(description).vocab_size
    except (ValueError, KeyError):
        return None


# ---- reading ---------------------------------------------------------------------------------------------
def read_config(folder: Path) -> dict:
    """The export's config.json, checked to be one (format, version, the keys load_module needs)."""
    path = folder / CONFIG
    if not path.is_file():
        raise ExportError(f"'{folder}' is not an export: it has no {CONFIG} (gen-lightning export ckpt=... out=...)")
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise ExportError(
            f"'{path}' cannot be read ({type(err).__name__}: {err}): export the checkpoint again"
        ) from err
    if not isinstance(config, dict) or config.get("format") != FORMAT:
        raise ExportError(
            f"'{folder}' is not a gen-lightning export (its {CONFIG} does not say format {FORMAT}); a Hugging Face "
            "model folder is read by `init_from=` where its architecture is supported"
        )
    if not isinstance(config.get("format_version"), int) or config["format_version"] > FORMAT_VERSION:
        raise ExportError(
            f"'{folder}' is an export of format version {config.get('format_version')!r}, written by gen-lightning "
            f"{config.get('gen_lightning_version')}; this gen-lightning {gen_lightning.__version__} reads version "
            f"{FORMAT_VERSION} and older: upgrade gen-lightning"
        )
    missing = [k for k in ("class", "hparams", "data", "weights") if not isinstance(config.get(k), str | dict)]
    if missing:
        raise ExportError(f"'{path}' lacks {', '.join(missing)}: export the checkpoint again")
    return config


def read_tokenizer(folder: Path, entry: dict) -> dict:
    path = folder / entry["file"]
    try:
        text = path.read_text(encoding="utf-8")
        if entry.get("file_holds") == "model":
            return {**{k: v for k, v in entry.items() if k not in ("file", "file_holds")}, "model": text}
        return json.loads(text)
    except (OSError, ValueError) as err:
        raise ExportError(f"the tokenizer file '{path}' cannot be read ({type(err).__name__}: {err})") from err


def arguments(folder: Path, config: dict, overrides: dict | None = None) -> dict:
    """The constructor arguments of the export: its ``hparams``, its data facts (tokenizers read from their
    files), then ``overrides``, which must name existing arguments."""
    data = dict(config["data"])
    for name in TOKENIZERS:
        if isinstance(data.get(name), dict) and "file" in data[name]:
            data[name] = read_tokenizer(folder, data[name])
    kwargs = {**config["hparams"], **data}
    # The same rule as a checkpoint's overrides (unknown names are an error naming the arguments).
    return ckpt_io.hyperparameters({"hyper_parameters": kwargs, STATE_KEY: {"target": config["class"]}}, overrides)


def load_module(
    path: str | Path, overrides: dict | None = None, map_location: str | torch.device = "cpu"
) -> L.LightningModule:
    """Rebuild the model exported to the folder ``path``, in eval mode; ``overrides`` replace constructor
    arguments (``{"sample_steps": 10}``) as for a checkpoint (run/checkpoint.py ``load_module``)."""
    folder = Path(path)
    config = read_config(folder)
    cls = declared.build_class(config["class"], f"the export '{folder}'", L.LightningModule)  # checked, then imported
    kwargs = arguments(folder, config, overrides)
    try:
        state = weights.load(folder, config["weights"])
    except weights.WeightsError as err:
        raise ExportError(str(err)) from err
    return build(cls, kwargs, state, f"the export '{folder}'", overrides).to(map_location).eval()


def build(cls: type, kwargs: dict, state: dict, source: str, overrides: dict | None = None) -> L.LightningModule:
    """``cls(**kwargs)`` holding ``state`` exactly (every tensor named, no tensor left over)."""
    try:
        module = cls(**kwargs)
    except (ValueError, TypeError) as err:
        if overrides:
            raise ExportError(f"the overrides {overrides} do not fit {cls.__name__}: {err}") from err
        raise ExportError(f"{source} does not fit {cls.__name__} (its constructor refuses it): {err}") from err
    try:
        module.load_state_dict(state)
    except RuntimeError as err:
        raise ExportError(f"the weights of {source} do not fit {cls.__name__}: {err}") from err
    return module
