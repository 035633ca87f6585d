"""Where the Hydra configs live, and how ``experiment=NAME`` finds ``experiments/NAME.yaml``.

Config groups are in ``conf/`` and named experiments in ``experiments/``, both at the project root (or inside
the installed package, where the wheel puts them). Experiments are registered in Hydra's ConfigStore as the
group ``experiment`` in the global package, so ``experiment=NAME`` composes like any group and Hydra lists the
valid names when one is unknown. Study files (those with a top-level ``study:`` key) are not experiments.
"""

from __future__ import annotations

import os
from collections.abc import Collection
from contextlib import contextmanager
from pathlib import Path

from hydra.core.config_store import ConfigStore
from omegaconf import DictConfig, OmegaConf

PACKAGE_DIR = Path(__file__).resolve().parent


def _locate(name: str, env: str) -> Path:
    if os.environ.get(env):
        return Path(os.environ[env]).expanduser().resolve()
    for candidate in (PACKAGE_DIR / name, PACKAGE_DIR.parent / name):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(f"cannot find the '{name}' directory of gen-lightning (set {env})")


def config_dir() -> Path:
    return _locate("conf", "GEN_LIGHTNING_CONFIG_DIR")


def experiments_dir() -> Path:
    return _locate("experiments", "GEN_LIGHTNING_EXPERIMENTS_DIR")


def is_study(node: DictConfig) -> bool:
    return isinstance(node, DictConfig) and "study" in node


def register_experiments() -> list[str]:
    """Store every experiments/*.yaml that is not a study as ``experiment/<name>`` (global package)."""
    cs = ConfigStore.instance()
    names = []
    for path in sorted(experiments_dir().glob("*.yaml")):
        node = OmegaConf.load(path)
        if is_study(node):
            continue
        cs.store(group="experiment", name=path.stem, node=node, package="_global_")
        names.append(path.stem)
    return names


# Values that are text by nature, taken verbatim: YAML would read prompt=ROMEO: as a mapping, prompt=42 as a number.
VERBATIM_KEYS = ("prompt", "ckpt", "out", "source", "input", "encoding", "study_dir")


def parse_kv(args: list[str], own: Collection[str] | None = None) -> tuple[dict, list[str]]:
    """The ``key=value`` arguments of every command but ``fit`` (which is Hydra's).

    Returns ``(options, rest)``: the command's ``own`` keys (every key when ``own`` is None), values parsed as
    YAML scalars or lists (``n=8``, ``labels=[1,2]``, ``resize=true``; ``VERBATIM_KEYS`` as text), and the other
    arguments as given (Hydra overrides, ``model.K=V`` ...), for the command to route."""
    import yaml

    options, rest = {}, []
    for arg in args:
        key, sep, value = arg.partition("=")
        if not sep or not key:
            raise ValueError(f"expected key=value, got '{arg}'")
        if own is not None and key not in own:
            rest.append(arg)
        elif key in VERBATIM_KEYS:
            options[key] = value
        else:
            try:
                options[key] = yaml.safe_load(value) if value else ""
            except yaml.YAMLError:
                options[key] = value
    return options, rest


_searched: set[Path] = set()  # config folders put on Hydra's search path in this process


def note_search_path(dirs: Collection[str | Path]) -> None:
    """Remember config folders given on Hydra's search path (``file://DIR``): their ``_target_`` classes are declared
    (run/declared.py), so a family plugged in that way loads from its own checkpoints in this process."""
    _searched.update(
        Path(str(d).strip().strip("'\"").removeprefix("file://")).resolve() for d in dirs if str(d).strip()
    )


def search_path_of(overrides: Collection[str]) -> list[str]:
    """The folders of a ``hydra.searchpath=[file://DIR, ...]`` override."""
    return [d for o in overrides if o.lstrip("+").partition("=")[0] == "hydra.searchpath"
            for d in o.partition("=")[2].strip("[]").split(",")]  # fmt: skip


def searched_dirs() -> set[Path]:
    return set(_searched)


def compose(overrides: list[str] | None = None) -> DictConfig:
    """The composed root config without the ``hydra`` node (no Hydra run), e.g. for tests and studies."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    note_search_path(search_path_of(overrides or []))
    register_experiments()
    with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
        return hydra_compose(config_name="config", overrides=list(overrides or []), return_hydra_config=False)


def compose_option(group: str, option: str) -> DictConfig:
    """One option of a config group as Hydra composes it (its defaults list included), e.g. ``metrics`` of
    ``gen-lightning evaluate metrics=NAME``; an unknown option is a ValueError naming the known ones."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    if not (config_dir() / group / f"{option}.yaml").is_file():
        choices = sorted(p.stem for p in (config_dir() / group).glob("*.yaml"))
        raise ValueError(f"unknown {group} option '{option}'; choose from {', '.join(choices)}")
    with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
        return hydra_compose(config_name=None, overrides=[f"+{group}={option}"]).get(group) or OmegaConf.create({})


def config_targets(group: str) -> dict[str, str]:
    """``{option: _target_}`` of every option of a config group that builds an object."""
    out = {}
    for path in sorted((config_dir() / group).glob("*.yaml")):
        node = OmegaConf.load(path)
        if isinstance(node, DictConfig) and "_target_" in node:
            out[path.stem] = str(node._target_)
    return out


@contextmanager
def instantiating(what: str):
    """Around ``hydra.utils.instantiate`` of the ``what`` node: a constructor's own error in one line, prefixed
    with ``what`` (Hydra wraps it in four)."""
    from hydra.errors import InstantiationException

    try:
        yield
    except InstantiationException as err:
        cause = err.__cause__ or err
        if isinstance(cause, ValueError | TypeError | KeyError | OSError):
            raise ValueError(f"{what}: {cause}") from err
        raise
