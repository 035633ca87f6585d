"""The three task types of contract v2 (docs/CONTRACT.md): what a model does and what a data module provides.

A task is ``(task, source_modality, modality)``: ``("unconditional", None, "image")`` for an image generator,
``("conditional", "text", "text")`` for a translator, ``("prediction", "text", "label")`` for a text classifier.
Models, data modules and metric protocols declare theirs as class attributes; a run's checks (``check_agree``)
compare them before anything is built or trained, and name the config options that would fit.
"""

from __future__ import annotations

from gen_lightning.config import config_targets

TASKS = ("unconditional", "conditional", "prediction")

Task = tuple[str, "str | None", "str | None"]


def task_of(obj) -> Task:
    """``(task, source_modality, modality)`` of a module or data module, or of their classes.

    Contract v1 classes declared only ``modality``: their task is unconditional generation."""
    return getattr(obj, "task", "unconditional"), getattr(obj, "source_modality", None), getattr(obj, "modality", None)


def describe(task: Task) -> str:
    """``unconditional image``, ``conditional text -> text``, ``prediction text -> label``."""
    kind, source, output = task
    if kind == "unconditional":
        return f"unconditional {output}"
    return f"{kind} {source} -> {output}"


def _options(group: str, accepts) -> list[str]:
    """The options of a config group whose class ``accepts``; one whose class cannot be imported here (an optional
    extra) fits nothing."""
    from hydra.utils import get_class

    names = []
    for name, target in config_targets(group).items():
        try:
            cls = get_class(target)
        except Exception:
            continue
        if accepts(cls):
            names.append(name)
    return names


def protocols_for(task: Task) -> list[str]:
    """The ``metrics=`` options that score models of ``task``."""
    return _options("metrics", lambda cls: task in getattr(cls, "tasks", ()))


def data_for(task: Task) -> list[str]:
    """The ``data=`` options whose data module provides ``task``."""
    return _options("data", lambda cls: task_of(cls) == task)


def check_agree(model_cls: type, data_cls: type, protocol_cls: type | None = None) -> None:
    """The model, the data and the metric protocol (None: no protocol) must agree on the task, checked from their
    classes; the message names the options that would fit."""
    task, provided = task_of(model_cls), task_of(data_cls)
    if provided != task:
        fits = data_for(task)
        raise ValueError(
            f"the model {model_cls.__name__} does {describe(task)}, but the data ({data_cls.__name__}) provides "
            f"{describe(provided)}; "
            + (
                f"data configs that fit it: {', '.join(f'data={d}' for d in fits)}"
                if fits
                else "no data config fits it"
            )
        )
    if protocol_cls is not None and task not in getattr(protocol_cls, "tasks", ()):
        fits = protocols_for(task)
        raise ValueError(
            f"the metric protocol {protocol_cls.__name__} does not score {describe(task)} models like "
            f"{model_cls.__name__}; " + ", ".join([*(f"metrics={p}" for p in fits), "metrics=none"]) + " would"
        )
