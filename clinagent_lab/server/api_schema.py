"""The shapes the sidebar reads, as pydantic models: session state answers and the progress events.

``tools/make_api_types.py`` writes their JSON Schema (with TaskSpec, Recipe and the session records) to
``labextension/src/api-schema.json`` and ``json-schema-to-typescript`` turns that into ``labextension/src/schema.ts``;
``tests/test_api_types.py`` regenerates both and compares, so the sidebar's types cannot drift from the server.

The events are the union of :mod:`clinagent_lab.events` (one envelope for the kernel, the engine and the
server; fields the sidebar does not read are allowed, so a new field never breaks an old sidebar).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.json_schema import models_json_schema

from ..events import EVENT_MODELS, RunningJob
from ..records import Annotation, FinalTest, Iteration, Proposal, Session
from ..recipe import Recipe
from ..spec import TaskSpec
from .events import SCHEMA_ID

__all__ = ["API_MODELS", "SessionState", "Runtime", "EventsReplay", "ProposalRound", "CachedWeights",
           "WeightsList", "api_json_schema"]


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


class EventsReplay(BaseModel):
    """``GET sessions/<id>/events?after=seq``: what a late or reconnected sidebar missed. Live events come on
    jupyter_server's event bus under ``schema_id``."""

    schema_id: Literal[SCHEMA_ID]  # type: ignore[valid-type]
    events: list[dict[str, Any]] = Field(description="the events after ``after``, oldest first (typed as the "
                                                     "Event union in the sidebar)")
    last_seq: int


class ProposalRound(BaseModel):
    """``GET sessions/<id>/proposal``: the next proposal and the rest of its round (``--parallel``)."""

    proposal: Proposal | None
    candidates: list[Proposal]


class CachedWeights(BaseModel):
    """One pretrained weights file in the local cache (``clinagent weights list``)."""

    name: str
    source: str
    path: str
    bytes: int


class WeightsList(BaseModel):
    """``GET weights``: the pretrained weights this machine has cached (nothing is downloaded)."""

    cache: str
    weights: list[CachedWeights]


#: Every model whose schema the sidebar's types come from.
API_MODELS: tuple[type[BaseModel], ...] = (
    TaskSpec, Recipe, Session, Iteration, Proposal, FinalTest, Annotation, SessionState, RunningJob, EventsReplay,
    ProposalRound, CachedWeights, WeightsList, *EVENT_MODELS)


def api_json_schema() -> dict[str, Any]:
    """One JSON Schema document: every model of :data:`API_MODELS` under ``$defs`` and the ``Event`` union."""
    _, schema = models_json_schema([(m, "serialization") for m in API_MODELS], title="ClinagentApi",
                                   ref_template="#/$defs/{model}")
    defs = schema["$defs"]
    events = [m.__name__ for m in EVENT_MODELS]
    for name, definition in defs.items():
        for prop in definition.get("properties", {}).values():
            prop.pop("title", None)  # per-field titles would each become a named TypeScript alias
        if "properties" in definition:
            # records and events are always sent whole (every field, defaults and nulls included)
            definition["required"] = list(definition["properties"])
    defs["Event"] = {"title": "Event", "oneOf": [{"$ref": f"#/$defs/{name}"} for name in events]}
    defs["EventsReplay"]["properties"]["events"]["items"] = {"$ref": "#/$defs/Event"}
    # a root that names every model, so that json-schema-to-typescript exports each of them
    return {"title": "ClinagentApi", "type": "object", "additionalProperties": False,
            "properties": {name: {"$ref": f"#/$defs/{name}"} for name in sorted(defs)},
            "$defs": dict(sorted(defs.items()))}
