"""Progress events as JSON lines in the run folder (no heavy imports: the executor and the server read these).

Each line is one event of :mod:`clinagent_lab.events` (``{"v": 2, "type": ..., "time": <unix seconds>, ...}``),
validated when it is written.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..events import EVENT_VERSION, make_event

__all__ = ["EVENT_VERSION", "DEADLINE_ENV", "write_event", "read_events"]

#: environment variable (unix time) the kernel inherits: training stops early enough to evaluate before it
DEADLINE_ENV = "CLINAGENT_DEADLINE"


def write_event(path: str | Path | None, type_: str, **fields: Any) -> None:
    """Append one event line to ``path`` (no-op when ``path`` is empty)."""
    if not path:
        return
    event = make_event(type_, **fields)
    # the fields set, not the envelope's empty defaults: whoever relays the line adds its own (iteration, ...)
    line = {k: v for k, v in event.items() if v is not None}
    with open(path, "a", encoding="utf-8") as fh:
        fh.write(json.dumps(line, default=float) + "\n")


def read_events(path: str | Path, offset: int = 0) -> tuple[list[dict[str, Any]], int]:
    """Read complete event lines from byte ``offset``; return the events and the new offset."""
    p = Path(path)
    if not p.exists():
        return [], offset
    with open(p, "rb") as fh:
        fh.seek(offset)
        chunk = fh.read()
    end = chunk.rfind(b"\n") + 1
    events = []
    for line in chunk[:end].splitlines():
        try:
            events.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return events, offset + end
