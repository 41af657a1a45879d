"""Progress events for the sidebar: a per-session ring buffer with replay, fanned out to subscribers.

Every event is one of :mod:`clinagent_lab.events`, validated and stamped here:
``{"v": 2, "type": ..., "session": id, "seq": n, "at": t, ...}``.
``seq`` grows by one per session, so a client that reconnects with the last ``seq`` it saw receives exactly
the events it missed (as long as they are still in the buffer).

Example:
    >>> bus = EventBus(buffer=3)
    >>> for i in range(5):
    ...     _ = bus.publish({"type": "log", "session": "s1", "message": str(i)})
    >>> [e["seq"] for e in bus.replay("s1", after=2)]
    [3, 4, 5]
    >>> [e["seq"] for e in bus.replay("s1", after=0)]  # only the last three are kept
    [3, 4, 5]
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import deque
from typing import Any, AsyncIterator

from ..events import EVENT_TYPES, EVENT_VERSION, validate_event

__all__ = ["EVENT_VERSION", "EVENT_TYPES", "EventBus", "format_sse"]


class EventBus:
    """Per-session ordered event log with a bounded replay buffer and live subscribers.

    Not thread-safe by design: call :meth:`publish` on the event loop's thread (engine threads go through
    :meth:`publish_threadsafe`).

    Args:
        buffer: how many events per session are kept for replay.
    """

    def __init__(self, buffer: int = 500) -> None:
        self._buffer = buffer
        self._events: dict[str, deque[dict[str, Any]]] = {}
        self._seq: dict[str, int] = {}
        self._subscribers: dict[str, set[asyncio.Queue[dict[str, Any] | None]]] = {}

    def last_seq(self, session: str) -> int:
        """The ``seq`` of the newest event of ``session`` (0 when there is none)."""
        return self._seq.get(session, 0)

    def publish(self, event: dict[str, Any]) -> dict[str, Any]:
        """Stamp ``event`` (``v``, ``seq``, ``at``), store it and hand it to every subscriber."""
        session = str(event.get("session", ""))
        seq = self._seq.get(session, 0) + 1
        self._seq[session] = seq
        stamped = validate_event({**event, "session": session, "seq": seq, "at": time.time()})
        self._events.setdefault(session, deque(maxlen=self._buffer)).append(stamped)
        for queue in self._subscribers.get(session, ()):
            queue.put_nowait(stamped)
        return stamped

    def publish_threadsafe(self, loop: asyncio.AbstractEventLoop, event: dict[str, Any]) -> None:
        """Publish from a worker thread (the engine's ``on_event`` callback)."""
        loop.call_soon_threadsafe(self.publish, dict(event))

    def replay(self, session: str, after: int = 0) -> list[dict[str, Any]]:
        """Buffered events of ``session`` with ``seq > after``, oldest first."""
        return [e for e in self._events.get(session, ()) if e["seq"] > after]

    async def follow(self, session: str, after: int = 0) -> AsyncIterator[dict[str, Any]]:
        """Replay what was missed, then yield live events until :meth:`close` is called."""
        queue: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue()
        self._subscribers.setdefault(session, set()).add(queue)
        try:
            last = after
            for event in self.replay(session, after):
                last = event["seq"]
                yield event
            while True:
                event = await queue.get()
                if event is None:
                    return
                if event["seq"] > last:
                    last = event["seq"]
                    yield event
        finally:
            self._subscribers.get(session, set()).discard(queue)

    def close(self) -> None:
        """End every :meth:`follow` (server shutdown)."""
        for queues in self._subscribers.values():
            for queue in queues:
                queue.put_nowait(None)


def format_sse(event: dict[str, Any]) -> str:
    """One server-sent-events frame: ``id``, ``event`` and a one-line JSON ``data`` field.

    Example:
        >>> format_sse({"seq": 3, "type": "epoch", "epoch": 1})
        'id: 3\\nevent: epoch\\ndata: {"seq": 3, "type": "epoch", "epoch": 1}\\n\\n'
    """
    return f"id: {event['seq']}\nevent: {event['type']}\ndata: {json.dumps(event, default=str)}\n\n"
