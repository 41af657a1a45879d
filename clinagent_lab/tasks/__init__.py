"""Task backends: the glue between data, models and the frozen evaluator, one per task type.

A backend module registers an object with these callables (see :class:`TaskBackend`):

- ``make_datamodule(dataset, recipe, spec, include_test=False)`` -> LightningDataModule (train/val only unless
  ``include_test``; the test split is read only by the final evaluation);
- ``make_module(recipe, dataset, spec)`` -> LightningModule;
- ``predict(module, datamodule, split)`` -> predictions (a DataFrame for classification);
- ``evaluate(predictions, recipe, spec, dataset, threshold=None)`` -> metrics dict (library code, frozen);
- ``save_predictions(predictions, path)`` / ``load_predictions(path)``.

Iteration notebooks call these; so does the engine for the once-only test evaluation.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any, Callable

from ..registry import Registry

__all__ = ["TaskBackend", "TASKS", "get_backend"]


@dataclass(frozen=True)
class TaskBackend:
    name: str
    template: str
    make_datamodule: Callable[..., Any]
    make_module: Callable[..., Any]
    predict: Callable[..., Any]
    evaluate: Callable[..., dict]
    save_predictions: Callable[..., Any]
    load_predictions: Callable[..., Any]


TASKS: Registry[TaskBackend] = Registry("task type")

_MODULES = {
    "binary_classification": "classification",
    "multiclass_classification": "classification",
    "detection": "detection",
}


def get_backend(task_type: str) -> TaskBackend:
    if task_type not in TASKS and task_type in _MODULES:
        importlib.import_module(f"{__name__}.{_MODULES[task_type]}")
    return TASKS.get(task_type)
