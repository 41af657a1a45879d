"""Progress and state events: one versioned envelope and one union of typed events, used by the kernel
(JSON lines in the run folder's ``events.jsonl``), the engine (``on_event`` callbacks) and the server
(emitted on jupyter_server's event bus to the sidebar, which is typed from :func:`event_json_schema`).

Every event carries ``v`` (:data:`EVENT_VERSION`), ``type`` and ``time``; the engine adds ``session`` and
``iteration`` (and ``budget_s`` on the kernel's events it relays), the server adds ``seq`` (the replay
position). Fields beyond those declared are kept and passed through, so a newer kernel does not break an
older sidebar; a declared field of the wrong type is an error.

Example:
    >>> event = make_event("epoch", epoch=2, max_epochs=10, metrics={"val_auroc": 0.91})
    >>> event["type"], event["v"], event["epoch"]
    ('epoch', 2, 2)
    >>> make_event("epoch", epoch="two")
    Traceback (most recent call last):
    ...
    clinagent_lab.errors.ClinagentError: event 'epoch' is malformed: field 'epoch': Input should be a valid integer...
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from numbers import Integral, Real
from typing import Annotated, Any, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from .errors import ClinagentError
from .records import Annotation, FinalTest, IterationStatus, Proposal

__all__ = ["EVENT_VERSION", "EVENT_TYPES", "EVENT_MODELS", "Event", "RunningJob", "headline", "make_event",
           "validate_event", "event_json_schema"]

#: version 2: one envelope for kernel, engine and server events (version 1 had three)
EVENT_VERSION = 2

Metrics = dict[str, Any]


class _Envelope(BaseModel):
    model_config = ConfigDict(extra="allow")

    v: int = EVENT_VERSION
    time: float = Field(default_factory=lambda: round(time.time(), 3))
    session: str | None = None
    iteration: int | None = None
    #: the server's replay position (events the server emits)
    seq: int | None = None
    #: the iteration's time budget in seconds (on kernel events relayed by the engine)
    budget_s: float | None = None
    #: when the server emitted it
    at: float | None = None


# --- the kernel (written to events.jsonl inside the iteration notebook) --------------------------------
class CellEvent(_Envelope):
    type: Literal["cell"] = "cell"
    index: int
    total: int
    tags: list[str] = Field(default_factory=list)


class DataStarted(_Envelope):
    """The notebook starts loading the data with the frozen split (the kernel is up, the imports are done)."""

    type: Literal["data_started"] = "data_started"
    data_path: str | None = None


class FitStarted(_Envelope):
    type: Literal["fit_started"] = "fit_started"
    max_epochs: int | None = None
    steps_per_epoch: int | None = None


class EpochEvent(_Envelope):
    type: Literal["epoch"] = "epoch"
    epoch: int = Field(description="0-based index of the epoch that just ended")
    step: int | None = None
    max_epochs: int | None = None
    metrics: dict[str, float] = Field(default_factory=dict)


class PlanEvent(_Envelope):
    type: Literal["plan"] = "plan"
    stage: Literal["first_steps", "second_epoch"]
    epochs: int
    seconds_per_epoch: float | None = None
    seconds_allowed: float | None = None


class FitFinished(_Envelope):
    type: Literal["fit_finished"] = "fit_finished"
    epoch: int | None = None
    step: int | None = None


class Evaluated(_Envelope):
    type: Literal["evaluated"] = "evaluated"
    metrics: Metrics = Field(default_factory=dict)


class JobEvent(_Envelope):
    """Where the notebook runs: a scheduler's job submitted, started on a node, ended (with the scheduler's
    state and reason)."""

    type: Literal["job"] = "job"
    state: str
    backend: str | None = None
    job_id: str | None = None
    node: str | None = None
    reason: str | None = None


# --- the engine ----------------------------------------------------------------------------------------
class IterationStarted(_Envelope):
    type: Literal["iteration_started"] = "iteration_started"
    rationale: str = ""
    idea: str | None = None
    max_epochs: int | None = None


class IterationFinished(_Envelope):
    type: Literal["iteration_finished"] = "iteration_finished"
    status: IterationStatus
    decision: Literal["kept", "discarded", "baseline", "failed", "pending"] | None = None
    reason: str | None = None
    selection_value: float | None = None
    wall_s: float | None = None
    error: str | None = None
    metrics: Metrics = Field(default_factory=dict)


class LoopFinished(_Envelope):
    type: Literal["loop_finished"] = "loop_finished"
    reason: str | None = None
    best_iteration: int | None = None


class TestStarted(_Envelope):
    __test__ = False  # not a pytest test class
    type: Literal["test_started"] = "test_started"


class SessionFinished(_Envelope):
    type: Literal["session_finished"] = "session_finished"
    metrics: Metrics = Field(default_factory=dict)
    predictions: str | None = None


# --- the server ----------------------------------------------------------------------------------------
class ProposalEvent(_Envelope):
    type: Literal["proposal"] = "proposal"
    proposal: Proposal | None = None
    #: the other candidates of the round ``proposal`` opens (``--parallel``), approved with it
    candidates: list[Proposal] = Field(default_factory=list)
    after: int | None = None
    edited: bool | None = None
    rejected: Proposal | None = None


class RunningJob(BaseModel):
    """What the server runs now (``state`` events, ``runtime.running``)."""

    session: str
    iteration: int | None = None
    phase: Literal["starting", "proposing", "running", "stopping"]
    auto_continue: bool
    started_at: float


class StateEvent(_Envelope):
    type: Literal["state"] = "state"
    running: RunningJob | None = None
    auto_continue: bool | None = None


class ErrorEvent(_Envelope):
    type: Literal["error"] = "error"
    error: str | None = None
    what: str | None = None
    where: str | None = None
    fix: str | None = None
    message: str | None = None


class LogEvent(_Envelope):
    type: Literal["log"] = "log"
    message: str = ""


class AnnotationEvent(_Envelope):
    type: Literal["annotation"] = "annotation"
    annotation: Annotation


class FinalTestEvent(_Envelope):
    type: Literal["final_test"] = "final_test"
    final_test: FinalTest


class ExportEvent(_Envelope):
    type: Literal["export"] = "export"
    path: str
    relative: str | None = None


#: every event model, in the order of the union
EVENT_MODELS: tuple[type[_Envelope], ...] = (
    CellEvent, JobEvent, DataStarted, FitStarted, EpochEvent, PlanEvent, FitFinished, Evaluated,
    IterationStarted, IterationFinished, LoopFinished, TestStarted, SessionFinished, ProposalEvent, StateEvent,
    ErrorEvent, LogEvent, AnnotationEvent, FinalTestEvent, ExportEvent)
Event = Annotated[Union[EVENT_MODELS], Field(discriminator="type")]  # type: ignore[valid-type]
_ADAPTER: TypeAdapter[Any] = TypeAdapter(Event)
EVENT_TYPES: tuple[str, ...] = tuple(cls.model_fields["type"].default for cls in EVENT_MODELS)


def validate_event(data: dict[str, Any]) -> dict[str, Any]:
    """``data`` checked against its type's schema, with the envelope's defaults filled in, as a plain dict."""
    try:
        return _ADAPTER.validate_python(data).model_dump(mode="json")
    except ValidationError as exc:
        problems = "; ".join(f"field '{'.'.join(str(p) for p in e['loc'][1:]) or 'type'}': {e['msg']}"
                             for e in exc.errors()[:4])
        raise ClinagentError(f"event '{data.get('type')}' is malformed: {problems}",
                             where=f"event type '{data.get('type')}'",
                             fix=f"known types: {', '.join(EVENT_TYPES)}") from None


def make_event(type_: str, **fields: Any) -> dict[str, Any]:
    """A validated event of ``type_`` (see :data:`EVENT_TYPES`) as a JSON-ready dict."""
    return validate_event({"type": type_, **fields})


def event_json_schema() -> dict[str, Any]:
    """The JSON Schema of :data:`Event` (served to the sidebar; its TypeScript types are generated from it)."""
    return _ADAPTER.json_schema()


def headline(metrics: Mapping[str, Any]) -> dict[str, Any]:
    """The scalar metrics of a metrics dict, as the ``evaluated``, ``iteration_finished`` and
    ``session_finished`` events carry them (and the notebook's metrics table shows them).

    Numbers (numpy scalars included) become Python numbers, an undefined one (None, NaN) stays as None so
    the reader sees it is missing; strings are kept; nested values (confusion, per class, confounders) and
    keys starting with ``_`` are left out.

    Example:
        >>> headline({"auroc": 0.91, "ppv": float("nan"), "npv": None, "primary_metric": "auroc",
        ...           "confusion": {"tp": 3}, "_cache": 1.0})
        {'auroc': 0.91, 'ppv': None, 'npv': None, 'primary_metric': 'auroc'}
    """
    out: dict[str, Any] = {}
    for key, value in metrics.items():
        if str(key).startswith("_"):
            continue
        if value is None or isinstance(value, (str, bool)):
            out[key] = value
        elif isinstance(value, Integral):
            out[key] = int(value)
        elif isinstance(value, Real):
            out[key] = None if math.isnan(float(value)) else float(value)
    return out
