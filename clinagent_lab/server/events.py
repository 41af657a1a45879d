"""Session events on Jupyter's event bus: every event goes through jupyter_server's ``event_logger``
(:class:`jupyter_events.EventLogger`) under one registered schema, :data:`SCHEMA_ID`, and reaches the browser
over jupyter_server's ``/api/events/subscribe`` websocket (JupyterLab's ``serviceManager.events``).

Every event is one of :mod:`clinagent_lab.events`, validated and stamped here:
``{"v": 2, "type": ..., "session": id, "seq": n, "at": t, ...}``. ``seq`` grows by one per session.

The one thing that is ours is the catch-up: Jupyter's bus forgets an event once it is sent, so each session's
events are also appended to ``server_events.jsonl`` in its folder and the last :data:`REPLAY_EVENTS` are kept
in memory; ``GET sessions/<id>/events?after=seq`` answers what a late or reconnected sidebar missed, and
``seq`` continues across server restarts.

Example:
    >>> log = SessionEvents(buffer=3)
    >>> for i in range(5):
    ...     _ = log.publish({"type": "log", "session": "s1", "message": str(i)})
    >>> [e["seq"] for e in log.replay("s1", after=2)]
    [3, 4, 5]
    >>> [e["seq"] for e in log.replay("s1", after=0)]  # only the last three are kept without a folder
    [3, 4, 5]
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections import deque
from pathlib import Path
from typing import Any, Callable

from jupyter_events import EventLogger

from ..events import EVENT_TYPES, EVENT_VERSION, event_json_schema, validate_event

__all__ = ["EVENT_VERSION", "EVENT_TYPES", "SCHEMA_ID", "EVENTS_FILE", "REPLAY_EVENTS", "SessionEvents",
           "session_event_schema"]

log = logging.getLogger(__name__)

#: the schema every session event is emitted under (its last segment is :data:`EVENT_VERSION`)
SCHEMA_ID = f"https://events.clinagent-lab.org/session-event/v{EVENT_VERSION}"
#: a session's events, one JSON object per line, in its folder (the replay after a server restart)
EVENTS_FILE = "server_events.jsonl"
#: events per session kept in memory for the replay
REPLAY_EVENTS = 1000

_ENVELOPE = ("v", "type", "time", "session", "iteration", "seq", "at", "budget_s")


def session_event_schema() -> dict[str, Any]:
    """The Jupyter event schema (``$id``, ``version``, ``properties``) of :data:`clinagent_lab.events.Event`:
    the envelope's fields as ``properties`` and the typed union as ``oneOf`` over ``$defs``."""
    union = event_json_schema()
    defs = union["$defs"]
    first = defs[union["oneOf"][0]["$ref"].split("/")[-1]]["properties"]
    envelope = {name: first[name] for name in _ENVELOPE if name != "type"}
    envelope["type"] = {"enum": list(EVENT_TYPES), "description": "the event's kind (selects its fields)"}
    return {"$id": SCHEMA_ID, "version": str(EVENT_VERSION), "title": "clinagent-lab session event",
            "description": "Progress and state of one clinagent-lab session (clinagent_lab.events).",
            "type": "object", "required": ["v", "type", "session", "seq", "at"],
            "properties": envelope, "oneOf": union["oneOf"], "$defs": defs}


class SessionEvents:
    """Stamps, validates, persists and emits each session's events; replays them by ``seq``.

    Call :meth:`publish` on the event loop's thread (jupyter_events starts its listeners as tasks there);
    engine threads go through :meth:`publish_threadsafe`.

    Args:
        logger: the server's ``event_logger`` (a private one when ``None``: tests, the Python API).
        folder: where a session's :data:`EVENTS_FILE` lives (``None``: kept in memory only).
        buffer: events per session kept in memory.
    """

    def __init__(self, logger: EventLogger | None = None, *, folder: Callable[[str], Path | None] | None = None,
                 buffer: int = REPLAY_EVENTS) -> None:
        self.logger = logger if logger is not None else EventLogger()
        if SCHEMA_ID not in self.logger.schemas:  # now: a subscriber listens to the schemas registered when it came
            self.logger.register_event_schema(session_event_schema())
        self._folder = folder or (lambda sid: None)
        self._buffer = buffer
        self._events: dict[str, deque[dict[str, Any]]] = {}
        self._seq: dict[str, int] = {}

    def _file(self, session: str) -> Path | None:
        folder = self._folder(session)
        return Path(folder) / EVENTS_FILE if folder is not None else None

    def _load(self, session: str) -> deque[dict[str, Any]]:
        """The session's buffer, read back from its file the first time (after a restart)."""
        if session not in self._events:
            kept: deque[dict[str, Any]] = deque(maxlen=self._buffer)
            path = self._file(session)
            if path is not None and path.exists():
                for line in path.read_text(encoding="utf-8").splitlines():
                    try:
                        kept.append(json.loads(line))
                    except json.JSONDecodeError:  # a line cut short by a crash: the rest still replays
                        continue
            self._events[session] = kept
            self._seq[session] = kept[-1]["seq"] if kept else 0
        return self._events[session]

    def last_seq(self, session: str) -> int:
        """The ``seq`` of the newest event of ``session`` (0 when there is none)."""
        self._load(session)
        return self._seq[session]

    def publish(self, event: dict[str, Any]) -> dict[str, Any]:
        """Stamp ``event`` (``v``, ``seq``, ``at``), validate it, keep it and emit it on the event bus."""
        session = str(event.get("session", ""))
        kept = self._load(session)
        seq = self._seq[session] + 1
        stamped = validate_event({**event, "session": session, "seq": seq, "at": time.time()})
        self._seq[session] = seq
        kept.append(stamped)
        path = self._file(session)
        if path is not None and path.parent.is_dir():
            with open(path, "a", encoding="utf-8") as fh:
                fh.write(json.dumps(stamped, default=str) + "\n")
        try:
            self.logger.emit(schema_id=SCHEMA_ID, data=stamped)
        except RuntimeError as exc:  # no running event loop: nobody can be subscribed (scripts, tests)
            log.debug("clinagent: event %s not emitted: %s", seq, exc)
        return stamped

    def publish_threadsafe(self, loop: asyncio.AbstractEventLoop, event: dict[str, Any]) -> None:
        """Publish from a worker thread (the engine's ``on_event`` callback)."""
        loop.call_soon_threadsafe(self.publish, dict(event))

    def replay(self, session: str, after: int = 0) -> list[dict[str, Any]]:
        """Kept events of ``session`` with ``seq > after``, oldest first."""
        return [e for e in self._load(session) if e["seq"] > after]
