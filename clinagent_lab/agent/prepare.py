"""Before any session: a dataset loaded, checked, split and fingerprinted; a request read into a TaskSpec."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

from ..data.base import DatasetFingerprint, LoadedDataset
from ..data.fingerprint import compute_fingerprint
from ..data.formats import load_dataset
from ..data.splits import assign_splits, check_leakage, remove_cross_split_duplicates
from ..data.validate import check_images, check_labels
from ..errors import IntentError
from ..intent import assess_request, ground_spec, parse_offline
from ..llm import build_parser
from ..spec import TaskSpec
from ..tasks import get_backend

__all__ = ["prepare_data", "interpret", "prepare_image_cache"]


def prepare_data(data_path: str | Path, data_format: str | None = None, *, seed: int = 0,
                 format_options: dict[str, Any] | None = None) -> tuple[LoadedDataset, DatasetFingerprint]:
    """Load, validate, split (grouped, stratified), check leakage and fingerprint a dataset."""
    dataset = load_dataset(data_path, data_format, **(format_options or {}))
    dataset = check_images(dataset)
    check_labels(dataset)
    if dataset.source.get("splits_given") and dataset.table["split"].notna().all():
        dataset = remove_cross_split_duplicates(dataset)  # the dataset's own split: drop train/val copies
    dataset, rule = assign_splits(dataset, seed=seed)
    check_leakage(dataset)
    fingerprint = compute_fingerprint(dataset, split_rule=rule, leakage_checked=True)
    return dataset, fingerprint


def prepare_image_cache(engine: Any, recipe: Any, include_test: bool = False) -> None:
    """Decode and resize the session's images into the on-disk cache before a kernel starts, so that the
    iteration's time budget is spent training (see :mod:`clinagent_lab.data.cache`); a failure here is left to
    the notebook, which reads the images itself and reports what is wrong."""
    try:
        dm = get_backend(recipe.task_type).make_datamodule(engine.dataset(include_test), recipe, engine.session.spec,
                                            include_test=include_test)
        if hasattr(dm, "prepare_cache"):
            dm.prepare_cache()
    except Exception as exc:  # noqa: BLE001 - the notebook reads the images itself and reports the problem
        engine.session.log("image_cache_skipped", error=f"{type(exc).__name__}: {exc}")


def interpret(request: str, fingerprint: DatasetFingerprint | None = None, *, model: str = "offline",
              audit: Callable[[dict[str, Any]], None] | None = None, client: Any = None,
              redactor: Any = None, llm_options: dict[str, Any] | None = None) -> TaskSpec:
    """Request text (+ fingerprint) -> grounded TaskSpec, offline or through the configured LLM."""
    kind = assess_request(request)
    if kind == "empty":
        raise IntentError("the request is empty", fix="describe the task, e.g. 'pneumothorax on chest X-rays, "
                                                      "sensitivity matters most'")
    if kind == "non_imaging":
        spec = parse_offline(request, fingerprint)
        raise IntentError("the request does not describe a medical-imaging task",
                          where=f"request: {request!r}",
                          fix=(_question_text(spec.questions[0]) if spec.questions else
                               "say what to find in which images, e.g. 'classify skin lesions, melanoma matters'"))
    if not model or model == "offline":
        return parse_offline(request, fingerprint)  # grounds it when a fingerprint is given

    spec = build_parser(model, audit=audit or (lambda _: None), client=client, redactor=redactor,
                        **(llm_options or {}))(request, fingerprint)
    return ground_spec(spec, fingerprint) if fingerprint is not None else spec


def _question_text(question: Any) -> str:
    return question if isinstance(question, str) else getattr(question, "text", str(question))
