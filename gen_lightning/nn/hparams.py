"""Hyper-parameters written once, as dataclasses, behind a module's keyword constructor.

nanoGPT keeps a network's settings in one dataclass (``GPTConfig``). A LightningModule here must also keep keyword
arguments: Hydra builds it from ``conf/model/*.yaml`` (YAML keys = argument names) and a checkpoint rebuilds it
with ``cls(**hparams)``. A family whose siblings share settings (seq2seq, image-to-image) therefore lists them in
dataclasses ("groups": the network's, the optimiser's, the decoder's), and each module takes them as
``**settings``:

- ``parse`` splits the keywords into one complete dict per group (the module's own defaults, then the
  dataclass's), refusing an unknown key or a value of the wrong type with a ValueError that names the key, the
  value and what is allowed; values are plain (lists, not tuples or OmegaConf containers), as
  ``torch.load(weights_only=True)`` needs them in ``save_hyperparameters``;
- ``signature`` writes the same list out as the class's ``inspect.signature`` (``help()``, IDEs, tests).
"""

from __future__ import annotations

import dataclasses
import inspect
import types
import typing
from collections.abc import Iterable, Mapping
from typing import Any

from omegaconf import Container, OmegaConf

# A field's metadata: left out of the saved hyperparameters while it holds its default (``saved``). For options
# added after checkpoints were written: their hyperparameters, and a resume's comparison with them, stay the same.
IF_SET = types.MappingProxyType({"saved": "if_set"})


def plain(value: Any) -> Any:
    """OmegaConf containers and tuples as plain lists and dicts (what a checkpoint can store and load)."""
    if isinstance(value, Container):
        value = OmegaConf.to_container(value, resolve=True)
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, Mapping):
        return {k: plain(v) for k, v in value.items()}
    return value


def _describe(kind: Any) -> str:
    """``int``, ``float | None``, ``tuple[float, float]``: the annotation as it is written."""
    plain_class = isinstance(kind, type) and typing.get_origin(kind) is None
    return kind.__name__ if plain_class else str(kind).replace("typing.", "").replace("NoneType", "None")


def _fits(value: Any, kind: Any) -> bool:
    """Whether ``value`` (plain) fits the annotation ``kind`` (int, float, bool, str, X | None, tuple[...], ...)."""
    origin, args = typing.get_origin(kind), typing.get_args(kind)
    if origin in (typing.Union, types.UnionType):
        return any(_fits(value, arg) for arg in args)
    if kind is type(None):
        return value is None
    if kind is Any:
        return True
    if kind is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if kind is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if origin in (tuple, list):
        if not isinstance(value, list):
            return False
        if origin is tuple and args and args[-1] is not Ellipsis:
            return len(value) == len(args) and all(_fits(v, a) for v, a in zip(value, args, strict=True))
        return all(_fits(v, args[0]) for v in value) if args else True
    if origin is dict or kind is dict:
        return isinstance(value, Mapping)
    return isinstance(value, origin or kind) if isinstance(origin or kind, type) else True


def _fields(group: type, skip: Iterable[str]) -> list[dataclasses.Field]:
    return [f for f in dataclasses.fields(group) if f.name not in set(skip)]


def _default(field: dataclasses.Field) -> Any:
    if field.default is not dataclasses.MISSING:
        return field.default
    if field.default_factory is not dataclasses.MISSING:
        return field.default_factory()
    return dataclasses.MISSING


def parse(
    owner: str,
    settings: Mapping[str, Any],
    groups: Iterable[type],
    defaults: Mapping[str, Any] | None = None,
    skip: Iterable[str] = (),
) -> list[dict[str, Any]]:
    """One complete keyword dict per dataclass of ``groups``, taken from ``settings``, then ``defaults`` (the
    module's own), then the dataclass's defaults. Fields named in ``skip`` are left to the caller (shape facts
    such as vocabulary sizes). Unknown keys, missing required ones and values of the wrong type: ValueError; a
    group without skipped fields is also built once, so its own checks (``__post_init__``) run."""
    groups, skip = list(groups), list(skip)
    known = [f.name for g in groups for f in _fields(g, skip)]
    unknown = sorted(set(settings) - set(known))
    if unknown:
        raise ValueError(f"{owner} has no hyperparameter {', '.join(unknown)}; it takes: {', '.join(known)}")
    given = {**(defaults or {}), **settings}
    out = []
    for group in groups:
        hints = typing.get_type_hints(group)
        values = {}
        for field in _fields(group, skip):
            value = plain(given[field.name]) if field.name in given else plain(_default(field))
            if value is dataclasses.MISSING:
                raise ValueError(f"{owner} needs the hyperparameter {field.name} (a {_describe(hints[field.name])})")
            if not _fits(value, hints[field.name]):
                raise ValueError(f"{owner}: model.{field.name}={value!r} is not of type {_describe(hints[field.name])}")
            values[field.name] = value
        if len(values) == len(dataclasses.fields(group)):
            group(**values)
        out.append(values)
    return out


def config(cls: type, hparams: Mapping[str, Any], **fixed: Any) -> Any:
    """A network's config dataclass from a module's hyperparameters, the fields in ``fixed`` (shape facts) given."""
    fields = [f for f in dataclasses.fields(cls) if f.name not in fixed]
    return cls(**fixed, **{f.name: hparams[f.name] if f.name in hparams else _default(f) for f in fields})


def saved(values: Mapping[str, Any], groups: Iterable[type]) -> dict[str, Any]:
    """``values`` without the ``IF_SET`` fields of ``groups`` that hold their default."""
    unset = {f.name for g in groups for f in dataclasses.fields(g) if f.metadata == IF_SET and values.get(f.name,
             dataclasses.MISSING) == _default(f)}  # fmt: skip
    return {k: v for k, v in values.items() if k not in unset}


def signature(
    init: Any, groups: Iterable[type], defaults: Mapping[str, Any] | None = None, skip: Iterable[str] = ()
) -> inspect.Signature:
    """``init``'s named parameters (``self`` and ``**settings`` left out) followed by every field of ``groups`` as
    a keyword with its default: the constructor's whole list, for ``inspect.signature(cls)``."""
    defaults = defaults or {}
    params = [
        p
        for p in inspect.signature(init).parameters.values()
        if p.name != "self" and p.kind is not inspect.Parameter.VAR_KEYWORD
    ]
    for group in groups:
        hints = typing.get_type_hints(group)
        for field in _fields(group, skip):
            default = defaults.get(field.name, _default(field))
            default = inspect.Parameter.empty if default is dataclasses.MISSING else default
            kind = inspect.Parameter.KEYWORD_ONLY
            params.append(inspect.Parameter(field.name, kind, default=default, annotation=hints[field.name]))
    return inspect.Signature(params)
