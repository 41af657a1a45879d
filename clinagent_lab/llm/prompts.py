"""Prompt texts and message builders. Every payload passed in is already privacy-safe (see ``redact``).

The messages are plain OpenAI chat messages: one system message (role, rules, the reply schema) and one user
message holding the JSON payload.
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel

from .codecheck import HOOKS

__all__ = ["parse_messages", "propose_messages", "repair_messages", "recipe_fields", "LOCKED_FIELDS"]

#: Recipe fields an LLM may not change: what is evaluated and how it is selected is fixed by the TaskSpec.
LOCKED_FIELDS: tuple[str, ...] = ("task_type", "classes", "reasons", "custom_code",
                                  "evaluation.primary_metric", "evaluation.metric_params",
                                  "evaluation.positive_class", "evaluation.selection_metric",
                                  "evaluation.bootstrap")

_SCHEMA_RULE = ("Reply with exactly one JSON object, no prose and no code fences, valid against this JSON "
                "schema:\n")

PARSE_SYSTEM = """You turn a clinician's request into a TaskSpec for training a medical-imaging model.
You get the request, a draft TaskSpec from a rule-based parser (it may be wrong or incomplete) and aggregate
statistics of the dataset (class names, counts, metadata column names and how strongly each predicts the
label). Correct the draft where the request says otherwise; keep it where it is right.
Rules:
- classes and target_classes must be names from the dataset's classes when the dataset is given.
- a confounder's "column" must be one of the dataset's metadata_columns, or null.
- record every choice the request did not state in "assumptions", and what you could not decide in
  "questions". Do not invent requirements.
"""

PROPOSE_SYSTEM = """You plan the next experiment of a medical-imaging training loop. Each experiment is a
Recipe (given as JSON). You propose ONE idea per reply as a change to the current best recipe; the loop trains
it, evaluates it on the validation split and keeps it only if the selection metric improves and the
clinician's constraints hold.
Rules:
- "changes" maps dotted Recipe field paths (e.g. "optim.lr", "data.sampler", "loss.name") to new values.
  Use only the fields listed under "editable_fields", with values of the listed types.
- Never change: {locked}.
- "idea" is a short snake_case name of the idea; do not repeat an idea listed in "tried_ideas".
- "rationale": one or two sentences a clinician can read, citing the evidence (metrics, dataset stats).
- Optional "custom_code": hook name -> Python source for a notebook cell, only when no Recipe field can
  express the idea. Hooks and the function each must define:
{hooks}
  Hook code runs inside the training notebook. It must not start programs, use the network, read
  environment variables, load code dynamically, write files outside the iteration folder, or refer to the
  test split in any way. Use torch, torchvision, timm, numpy, albumentations.
"""

REPAIR_SYSTEM = """An experiment of a medical-imaging training loop crashed. You get the recipe, the custom
hook code it ran and the end of the (redacted) traceback. Fix the cause with the smallest change: corrected
hook code in "custom_code" (hook name -> the complete new source of that cell), and/or recipe "changes"
(dotted fields, e.g. a smaller "data.batch_size" on out-of-memory). Keep the same idea; explain the fix in
"rationale".
Hook contracts:
{hooks}
Hook code must not start programs, use the network, read environment variables, load code dynamically,
write files outside the iteration folder, or refer to the test split. Never change: {locked}.
"""


def _hooks_text() -> str:
    return "\n".join(f"  - {h.name}: {h.contract}" for h in HOOKS.values())


def _schema_text(schema: type[BaseModel]) -> str:
    return _SCHEMA_RULE + json.dumps(schema.model_json_schema(), separators=(",", ":"))


def _dump(payload: Any) -> str:
    return json.dumps(payload, indent=1, ensure_ascii=False, default=str)


def _constraints(info: Any) -> str:
    parts = []
    for meta in info.metadata:
        for attr, sym in (("gt", ">"), ("ge", ">="), ("lt", "<"), ("le", "<=")):
            value = getattr(meta, attr, None)
            if value is not None:
                parts.append(f"{sym}{value}")
    return (" " + " ".join(parts)) if parts else ""


def recipe_fields(model: type[BaseModel], prefix: str = "") -> dict[str, str]:
    """Dotted field path -> "type constraints: description" for every leaf of a Recipe-like model.

    Example:
        >>> from clinagent_lab.recipe import Recipe
        >>> recipe_fields(Recipe)["optim.lr"]
        'float >0.0 <=10.0'
    """
    out: dict[str, str] = {}
    for name, info in model.model_fields.items():
        path = f"{prefix}{name}"
        annotation = info.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            out.update(recipe_fields(annotation, prefix=f"{path}."))
            continue
        text = str(annotation).replace("typing.", "").replace("<class '", "").replace("'>", "")
        text += _constraints(info)
        if info.description:
            text += f": {info.description}"
        out[path] = text
    return out


def _editable(schema_fields: dict[str, str]) -> dict[str, str]:
    return {k: v for k, v in schema_fields.items()
            if not any(k == lock or k.startswith(lock + ".") for lock in LOCKED_FIELDS)}


def parse_messages(request: str, draft: dict[str, Any] | None, dataset: dict[str, Any] | None,
                   schema: type[BaseModel]) -> list[dict[str, str]]:
    """Messages asking for a TaskSpec (``schema``) given the redacted request, a draft and dataset stats."""
    payload = {"request": request, "draft_task_spec": draft, "dataset": dataset}
    return [{"role": "system", "content": PARSE_SYSTEM + "\n" + _schema_text(schema)},
            {"role": "user", "content": _dump(payload)}]


def propose_messages(payload: dict[str, Any], recipe_model: type[BaseModel],
                     schema: type[BaseModel]) -> list[dict[str, str]]:
    """Messages asking for the next proposal (``schema``) from a privacy payload."""
    system = PROPOSE_SYSTEM.format(locked=", ".join(LOCKED_FIELDS), hooks=_hooks_text())
    body = dict(payload, editable_fields=_editable(recipe_fields(recipe_model)))
    return [{"role": "system", "content": system + "\n" + _schema_text(schema)},
            {"role": "user", "content": _dump(body)}]


def repair_messages(payload: dict[str, Any], traceback: str, code: dict[str, str],
                    schema: type[BaseModel]) -> list[dict[str, str]]:
    """Messages asking for a fix (``schema``) given the redacted traceback and the failing hook code."""
    system = REPAIR_SYSTEM.format(locked=", ".join(LOCKED_FIELDS), hooks=_hooks_text())
    body = dict(payload, failing_custom_code=code, traceback=traceback)
    return [{"role": "system", "content": system + "\n" + _schema_text(schema)},
            {"role": "user", "content": _dump(body)}]
