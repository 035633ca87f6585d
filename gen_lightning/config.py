"""Where the Hydra configs live, and how ``experiment=NAME`` finds ``experiments/NAME.yaml``.

Config groups are in ``conf/`` and named experiments in ``experiments/``, both at the project root (or inside
the installed package, where the wheel puts them). Experiments are registered in Hydra's ConfigStore as the
group ``experiment`` in the global package, so ``experiment=NAME`` composes like any group and Hydra lists the
valid names when one is unknown. Study files (those with a top-level ``study:`` key) are not experiments.
"""

from __future__ import annotations

import os
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


def compose(overrides: list[str] | None = None) -> DictConfig:
    """The composed root config without the ``hydra`` node (no Hydra run), e.g. for tests and studies."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    register_experiments()
    with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
        return hydra_compose(config_name="config", overrides=list(overrides or []), return_hydra_config=False)
