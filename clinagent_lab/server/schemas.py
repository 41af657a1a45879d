"""The API's nouns as JSON Schema: served at ``GET /clinagent/api/schema`` and the source of the sidebar's
TypeScript types (``labextension/src/schema.ts`` is generated from :func:`api_schemas`, never written by hand).
"""

from __future__ import annotations

from typing import Any

from ..events import event_json_schema
from ..recipe import Recipe
from ..records import Annotation, FinalTest, Iteration, Proposal, Session
from ..spec import TaskSpec

__all__ = ["api_schemas"]


def api_schemas() -> dict[str, Any]:
    """Name -> JSON Schema of every object the server sends or accepts."""
    models = {"TaskSpec": TaskSpec, "Recipe": Recipe, "Session": Session, "Iteration": Iteration,
              "Proposal": Proposal, "Annotation": Annotation, "FinalTest": FinalTest}
    out = {name: model.model_json_schema(mode="serialization") for name, model in models.items()}
    out["Event"] = event_json_schema()
    return out
