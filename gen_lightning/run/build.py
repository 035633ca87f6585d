"""A run's data module and model, built from their config nodes (``_target_``) in one way for every command:
``fit`` (``prepare``), and a run read back (``SavedRun``: ``sample``, ``evaluate``, study evaluations).

The only shape facts that flow from data to model are the data module's ``model_kwargs()``; on resume, what the
model recorded at its first construction and the config leaves null (a frozen sub-model's description: the latent
diffusion model's ``autoencoder``) comes from the checkpoint, so a resume needs the checkpoint alone.
"""

from __future__ import annotations

import inspect

from hydra.utils import instantiate
from omegaconf import DictConfig

from gen_lightning.callbacks.resume import STATE_KEY
from gen_lightning.config import instantiating
from gen_lightning.run.declared import current
from gen_lightning.run.init_from import InitFromError


def build_datamodule(data_cfg: DictConfig, carried: dict | None = None, source=None, stage: str | None = "fit"):
    """Instantiate the data module (with ``carried`` constructor arguments, e.g. a pre-trained tokenizer), prepare
    and set it up for ``stage``. ``source``: the file ``carried`` came from, for the message when the data do not
    fit."""
    from gen_lightning.data.text.tokenizers import VocabularyError

    with instantiating("data"):
        datamodule = instantiate(data_cfg, **(carried or {}), _convert_="all")
    try:
        datamodule.prepare_data()
        if stage is not None:
            datamodule.setup(stage)
    except VocabularyError as err:
        if not carried:
            raise
        raise InitFromError(
            f"the data does not fit the tokenizer of init_from={source} ({err}). Pre-train on text that covers this "
            "data (or with a byte or subword tokenizer), or train this run from scratch."
        ) from err
    return datamodule


def build_model(model_cfg: DictConfig, model_cls: type, datamodule, ckpt: dict | None = None):
    """The model of ``model_cfg`` (its class ``model_cls``) for ``datamodule``, with the arguments of a resumed
    checkpoint ``ckpt`` that the config leaves null (see the file docstring)."""
    given = datamodule.model_kwargs()
    if ckpt is not None and current(ckpt[STATE_KEY]["target"]) == model_cfg._target_:
        accepted = inspect.signature(model_cls).parameters
        saved = ckpt.get("hyper_parameters", {})
        given |= {k: v for k, v in saved.items()
                  if k in accepted and v is not None and k not in given and model_cfg.get(k) is None}  # fmt: skip
    with instantiating("model"):
        return instantiate(model_cfg, **given, _convert_="all")
