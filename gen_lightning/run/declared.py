"""What may be built from a file: the classes the project declares, checked before anything is imported or called.

A checkpoint names its model class, and a run's ``config.yaml`` names the classes of its data module, model, metric
protocol, callbacks and loggers (``_target_``). Importing and calling whatever a file names is code execution by
another door: ``torch.load(weights_only=True)`` stops pickles, not a checkpoint of plain values whose model class
reads ``os.system``. So a name read from a file is built only when it is declared:

- a ``_target_`` of the config tree in use: ``conf/`` and ``experiments/`` of the package (or the folders
  ``GEN_LIGHTNING_CONFIG_DIR`` / ``GEN_LIGHTNING_EXPERIMENTS_DIR`` name), and any config folder the command put on
  Hydra's search path (``hydra.searchpath=[file://my_family/conf]``, how a family outside the package plugs in);
- a class that an installed package declares in the entry-point group ``gen_lightning.families``
  (``[project.entry-points."gen_lightning.families"] my_model = "my_pkg.module:MyModel"``);
- a class registered in this process with ``declare(cls)``;
- Lightning's own callbacks and profilers (``lightning.pytorch.callbacks.*``, ``lightning.pytorch.profilers.*``),
  which a config may name as ``trainer.profiler._target_=...``.

A class that moved keeps loading: ``MOVED`` maps its old path to its new one. Nothing else is imported: the check
compares strings, so a refused name never reaches ``importlib``.
"""

from __future__ import annotations

import functools
import importlib
from collections.abc import Iterable
from importlib.metadata import entry_points
from pathlib import Path

from omegaconf import DictConfig, ListConfig, OmegaConf

ENTRY_POINTS = "gen_lightning.families"
LIGHTNING_MODULES = ("lightning.pytorch.callbacks.", "lightning.pytorch.profilers.")
# Classes that moved: their old paths, still named by configs and checkpoints written before the move.
MOVED = {
    "gen_lightning.search.TrialPruning": "gen_lightning.commands.search.TrialPruning",
    "gen_lightning.data.translation.PairedImageDataModule": "gen_lightning.data.images.PairedImageDataModule",
    "gen_lightning.data.translation.UnpairedImageDataModule": "gen_lightning.data.images.UnpairedImageDataModule",
    "gen_lightning.data.seq2seq.Seq2SeqDataModule": "gen_lightning.data.text.Seq2SeqDataModule",
    "gen_lightning.data.classification.TextClassificationDataModule": (
        "gen_lightning.data.text.TextClassificationDataModule"
    ),
}
_registered: set[str] = set()


class UndeclaredTarget(ValueError):
    """A file names a class or function the project does not declare; nothing was imported or called."""


def path_of(obj: type | str) -> str:
    return obj if isinstance(obj, str) else f"{obj.__module__}.{obj.__qualname__}"


def declare(obj: type | str) -> None:
    """Allow ``obj`` (a class, or its dotted path) to be built from checkpoints and saved configs in this process."""
    _registered.add(path_of(obj))


def declare_config_dirs(dirs: Iterable[str | Path]) -> None:
    """Declare the ``_target_`` values of the YAML files under ``dirs`` (config folders on Hydra's search path; the
    command line's ``hydra.searchpath`` is noted by ``config.compose`` itself)."""
    from gen_lightning.config import note_search_path

    note_search_path(list(dirs))


def targets_in(node) -> Iterable[str]:
    """Every ``_target_`` value inside a config node (mappings and lists, at any depth)."""
    if isinstance(node, dict | DictConfig):
        for key, value in node.items():
            if key == "_target_" and isinstance(value, str):
                yield value
            else:
                yield from targets_in(value)
    elif isinstance(node, list | ListConfig):
        for value in node:
            yield from targets_in(value)


@functools.lru_cache(maxsize=8)
def _targets_under(folders: tuple[Path, ...]) -> frozenset[str]:
    found: set[str] = set()
    for folder in folders:
        for path in sorted(folder.rglob("*.yaml")):
            try:
                node = OmegaConf.to_container(OmegaConf.load(path), resolve=False)
            except Exception:  # a file that is not a config declares nothing
                continue
            found.update(targets_in(node))
    return frozenset(found)


def _entry_point_targets() -> set[str]:
    return {ep.value.replace(":", ".") for ep in entry_points(group=ENTRY_POINTS)}


def declared() -> set[str]:
    """Every dotted path that may be built from a file in this process."""
    from gen_lightning.config import config_dir, experiments_dir, searched_dirs

    folders = tuple(sorted({config_dir(), experiments_dir(), *searched_dirs()}))
    return set(_targets_under(folders)) | _entry_point_targets() | _registered


def is_declared(target: str) -> bool:
    return target.startswith(LIGHTNING_MODULES) or target in declared()


def current(target: str) -> str:
    """The path a class has now (``MOVED``), for a name read from an older file."""
    return MOVED.get(target, target)


def check(target: str, source: str | Path, what: str = "a class") -> str:
    """``target`` (moved names followed) if it is declared; otherwise ``UndeclaredTarget`` naming the file."""
    target = current(str(target))
    if not is_declared(target):
        raise UndeclaredTarget(
            f"{source} names '{target}' as {what}, which gen-lightning does not declare, so it was neither imported "
            "nor called. A file may name only the classes of the project's configs (conf/), of a config folder on "
            f"Hydra's search path, of an installed package's '{ENTRY_POINTS}' entry points, or one registered with "
            "gen_lightning.run.declared.declare(cls). If this file is yours, register the class; otherwise do not "
            "use the file."
        )
    return target


def checked_config(node: DictConfig, source: str | Path) -> DictConfig:
    """``node`` with every ``_target_`` checked (and moved names followed), ready for ``instantiate``."""
    container = OmegaConf.to_container(node, resolve=False)

    def visit(value):
        if isinstance(value, dict):
            return {k: check(v, source, "a _target_") if k == "_target_" else visit(v) for k, v in value.items()}
        if isinstance(value, list):
            return [visit(v) for v in value]
        return value

    return OmegaConf.create(visit(container))


def build_class(target: str, source: str | Path, base: type | None = None) -> type:
    """Import the declared class ``target``; ``base``: it must be a subclass of it (a checkpoint's model class)."""
    target = check(target, source, "its model class" if base is not None else "a class")
    module_name, _, name = target.rpartition(".")
    try:
        obj = getattr(importlib.import_module(module_name), name)
    except (ImportError, AttributeError) as err:
        raise UndeclaredTarget(f"{source} names '{target}', which cannot be imported here: {err}") from err
    if base is not None and not (isinstance(obj, type) and issubclass(obj, base)):
        raise UndeclaredTarget(f"{source} names '{target}', which is not a {base.__name__}; it was not called")
    return obj


def load_config(path: str | Path) -> DictConfig:
    """A saved config (a run's ``config.yaml``) with every ``_target_`` checked; one clear error if unreadable."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"the run config '{path}' is missing: is {path.parent} a run directory?")
    try:
        node = OmegaConf.load(path)
    except Exception as err:
        raise ValueError(
            f"the run config '{path}' cannot be read ({type(err).__name__}: {' '.join(str(err).split())}); "
            "restore it from the run's .hydra/config.yaml or start a new run_dir"
        ) from err
    if not isinstance(node, DictConfig):
        raise ValueError(f"the run config '{path}' is not a mapping of settings: restore it or start a new run_dir")
    return checked_config(node, path)
