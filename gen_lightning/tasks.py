"""The three task types of contract v2 (docs/CONTRACT.md): what a model does and what a data module provides.

A task is ``(task, source_modality, modality)``: ``("unconditional", None, "image")`` for an image generator,
``("conditional", "text", "text")`` for a translator, ``("prediction", "text", "label")`` for a text classifier.
Models, data modules and metric protocols declare theirs as class attributes; ``train.fit`` and the metric
protocols compare them before anything is built or trained.
"""

from __future__ import annotations

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
