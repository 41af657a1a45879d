"""The shapes the sidebar reads, as pydantic models: session state answers and the progress events.

``tools/make_api_types.py`` writes their JSON Schema (with TaskSpec, Recipe and the session records) to
``labextension/src/api-schema.json`` and ``json-schema-to-typescript`` turns that into ``labextension/src/schema.ts``;
``tests/test_api_types.py`` regenerates both and compares, so the sidebar's types cannot drift from the server.

The events are those :class:`~clinagent_lab.server.events.EventBus` stamps (``v``, ``type``, ``session``,
``seq``, ``at``) with the fields the engine and the manager send; fields the sidebar does not read are allowed
(``extra="allow"``), so a new field never breaks an old sidebar.
"""

from __future__ import annotations

from typing import Any, Literal, Union

from pydantic import BaseModel, ConfigDict, Field
from pydantic.json_schema import models_json_schema

from ..records import Annotation, FinalTest, Iteration, Proposal, Session
from ..recipe import Recipe
from ..spec import TaskSpec

__all__ = ["API_MODELS", "Event", "SessionState", "RunningJob", "Runtime", "api_json_schema"]


class _Event(BaseModel):
    model_config = ConfigDict(extra="allow")

    v: int = 1
    session: str
    seq: int
    at: float = Field(description="server time, seconds since the epoch")


class RunningJob(BaseModel):
    """What runs now (``state`` events, ``runtime.running``)."""

    session: str
    iteration: int | None = None
    phase: Literal["starting", "proposing", "running", "stopping"]
    auto_continue: bool
    started_at: float


class Runtime(BaseModel):
    model_config = ConfigDict(extra="allow")

    running: RunningJob | None = None
    busy: bool = False
    auto_continue: bool = False


class SessionState(BaseModel):
    """``GET sessions/<id>``: the session record and what the server is doing with it."""

    model_config = ConfigDict(extra="allow")

    session: Session
    runtime: Runtime


class IterationStarted(_Event):
    type: Literal["iteration_started"]
    iteration: int
    idea: str | None = None
    rationale: str | None = None
    max_epochs: int | None = None


class FitStarted(_Event):
    type: Literal["fit_started"]
    iteration: int
    max_epochs: int | None = None
    steps_per_epoch: int | None = None
    budget_s: float | None = None


class EpochEvent(_Event):
    type: Literal["epoch"]
    iteration: int
    epoch: int = Field(description="0-based index of the epoch that just ended")
    max_epochs: int | None = None
    metrics: dict[str, float] = Field(default_factory=dict)
    budget_s: float | None = None


class FitFinished(_Event):
    type: Literal["fit_finished"]
    iteration: int


class IterationFinished(_Event):
    type: Literal["iteration_finished"]
    iteration: int
    status: Literal["pending", "running", "ok", "crash", "timeout", "stopped"]
    decision: Literal["kept", "discarded", "baseline", "failed", "pending"]
    reason: str | None = None
    selection_value: float | None = None
    wall_s: float | None = None
    error: str | None = None
    metrics: dict[str, Any] = Field(default_factory=dict)


class ProposalEvent(_Event):
    type: Literal["proposal"]
    proposal: Proposal | None = None
    after: int | None = None
    edited: bool | None = None


class LoopFinished(_Event):
    type: Literal["loop_finished"]
    reason: str
    best_iteration: int | None = None


class TestStarted(_Event):
    type: Literal["test_started"]
    iteration: int


class SessionFinished(_Event):
    type: Literal["session_finished"]
    iteration: int
    metrics: dict[str, Any] = Field(default_factory=dict)


class FinalTestEvent(_Event):
    type: Literal["final_test"]
    final_test: FinalTest


class StateEvent(_Event):
    type: Literal["state"]
    running: RunningJob | None = None
    auto_continue: bool | None = None


class ErrorEvent(_Event):
    type: Literal["error"]
    error: str | None = None
    what: str | None = None
    where: str | None = None
    fix: str | None = None
    message: str | None = None


class LogEvent(_Event):
    type: Literal["log"]
    message: str


class AnnotationEvent(_Event):
    type: Literal["annotation"]
    annotation: Annotation


class ExportEvent(_Event):
    type: Literal["export"]
    path: str
    relative: str | None = None


Event = Union[IterationStarted, FitStarted, EpochEvent, FitFinished, IterationFinished, ProposalEvent,
              LoopFinished, TestStarted, SessionFinished, FinalTestEvent, StateEvent, ErrorEvent, LogEvent,
              AnnotationEvent, ExportEvent]

#: Every model whose schema the sidebar's types come from.
API_MODELS: tuple[type[BaseModel], ...] = (
    TaskSpec, Recipe, Session, Iteration, Proposal, FinalTest, Annotation, SessionState, RunningJob,
    IterationStarted, FitStarted, EpochEvent, FitFinished, IterationFinished, ProposalEvent, LoopFinished,
    TestStarted, SessionFinished, FinalTestEvent, StateEvent, ErrorEvent, LogEvent, AnnotationEvent, ExportEvent)


def api_json_schema() -> dict[str, Any]:
    """One JSON Schema document: every model of :data:`API_MODELS` under ``$defs`` and the ``Event`` union."""
    _, schema = models_json_schema([(m, "serialization") for m in API_MODELS], title="ClinagentApi",
                                   ref_template="#/$defs/{model}")
    defs = schema["$defs"]
    events = [m.__name__ for m in Event.__args__]  # type: ignore[attr-defined]
    for name, definition in defs.items():
        for prop in definition.get("properties", {}).values():
            prop.pop("title", None)  # per-field titles would each become a named TypeScript alias
        if name not in events and "properties" in definition:
            # records are always sent whole (every field, defaults included), so every field is present
            definition["required"] = list(definition["properties"])
    defs["Event"] = {"title": "Event", "oneOf": [{"$ref": f"#/$defs/{name}"} for name in events]}
    # a root that names every model, so that json-schema-to-typescript exports each of them
    return {"title": "ClinagentApi", "type": "object", "additionalProperties": False,
            "properties": {name: {"$ref": f"#/$defs/{name}"} for name in sorted(defs)},
            "$defs": dict(sorted(defs.items()))}
