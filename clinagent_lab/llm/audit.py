"""The LLM audit trail: one record per call, successful or not, without secrets.

A record is a plain dict (it goes into ``Session.audit`` through :func:`session_audit`, or a JSON-lines file
through :class:`JsonlAudit`)::

    {"model", "purpose", "attempt", "prompt" | "prompt_sha256", "response" | "response_sha256",
     "prompt_tokens", "completion_tokens", "cost_usd", "latency_s", "ok", "error"}

API keys never appear: they come from provider environment variables and are never passed by this package,
and every text field is scrubbed with :func:`clinagent_lab.llm.redact.scrub_secrets` before it is written.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .redact import scrub_secrets

if TYPE_CHECKING:  # pragma: no cover
    from ..records import Session

__all__ = ["AuditSink", "call_record", "sha256", "session_audit", "JsonlAudit", "MemoryAudit", "AUDIT_KIND"]

AuditSink = Callable[[dict[str, Any]], None]
AUDIT_KIND = "llm_call"


def sha256(text: str) -> str:
    """Hex sha256 of ``text`` (UTF-8)."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True, ensure_ascii=False)


def call_record(*, model: str, purpose: str, attempt: int, messages: Any, response: str | None,
                prompt_tokens: int = 0, completion_tokens: int = 0, cost_usd: float = 0.0,
                latency_s: float = 0.0, ok: bool, error: str | None = None,
                store_prompts: bool = True) -> dict[str, Any]:
    """Build one audit record; prompts/responses are stored scrubbed, or only as their sha256."""
    prompt = scrub_secrets(_text(messages))
    record: dict[str, Any] = {"model": model, "purpose": purpose, "attempt": attempt}
    if store_prompts:
        record["prompt"] = prompt
        record["response"] = None if response is None else scrub_secrets(response)
    else:
        record["prompt_sha256"] = sha256(prompt)
        record["response_sha256"] = None if response is None else sha256(scrub_secrets(response))
    record.update(prompt_tokens=int(prompt_tokens or 0), completion_tokens=int(completion_tokens or 0),
                  cost_usd=float(cost_usd or 0.0), latency_s=round(float(latency_s), 4), ok=bool(ok),
                  error=None if error is None else scrub_secrets(str(error))[:2000])
    return record


def session_audit(session: Session, kind: str = AUDIT_KIND) -> AuditSink:
    """An audit sink that appends each record to ``session.audit`` via ``session.log(kind, **record)``."""

    def _sink(record: dict[str, Any]) -> None:
        session.log(kind, **record)

    return _sink


class JsonlAudit:
    """An audit sink appending one JSON line per record to ``path`` (thread-safe)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()

    def __call__(self, record: dict[str, Any]) -> None:
        line = json.dumps(record, ensure_ascii=False)
        with self._lock:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self.path.open("a", encoding="utf-8") as fh:
                fh.write(line + "\n")


class MemoryAudit(list):
    """An audit sink that keeps records in memory (a list); handy in notebooks and tests."""

    def __call__(self, record: dict[str, Any]) -> None:
        self.append(record)
