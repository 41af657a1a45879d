"""What one session event costs the server: stamped, validated (pydantic), appended to the session's
``server_events.jsonl`` and emitted on jupyter_server's event bus (jupyter_events validates it against the
registered schema and hands it to a subscriber, as a browser's websocket would be).

Prints milliseconds per event for a small one (``epoch``) and a large one (``proposal``, a whole recipe), and
the replay of 1000 kept events. Target: <= 20 ms per event (the event loop is not held up noticeably at a few
events a second).

Run: ``python benchmarks/server_events.py``
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from pathlib import Path

from clinagent_lab.recipe import Recipe
from clinagent_lab.records import Proposal
from clinagent_lab.server.events import SCHEMA_ID, SessionEvents


async def main() -> None:
    folder = Path(tempfile.mkdtemp())
    events = SessionEvents(folder=lambda sid: folder)
    received: list[dict] = []

    async def subscriber(logger, schema_id, data) -> None:  # what the websocket handler does, minus the socket
        received.append(data)

    events.logger.add_listener(schema_id=SCHEMA_ID, listener=subscriber)
    proposal = Proposal(recipe=Recipe(task_type="binary_classification", classes=["no", "yes"]),
                        rationale="lower the learning rate").model_dump(mode="json")
    worst = 0.0
    for kind, payload in (("epoch", {"epoch": 1, "iteration": 2, "metrics": {"val_auroc": 0.8, "val_loss": 0.4}}),
                          ("proposal", {"proposal": proposal})):
        n = 300
        start = time.perf_counter()
        for _ in range(n):
            events.publish({"type": kind, "session": "s", **payload})
        per = (time.perf_counter() - start) / n * 1000
        worst = max(worst, per)
        print(f"publish {kind:<9}: {per:6.2f} ms per event")
    await asyncio.sleep(0.1)
    start = time.perf_counter()
    replayed = SessionEvents(folder=lambda sid: folder).replay("s", after=0)
    print(f"replay after a restart: {len(replayed)} events in {(time.perf_counter() - start) * 1000:.1f} ms "
          f"(subscriber got {len(received)})")
    print(f"worst: {worst:.2f} ms per event (target <= 20 ms)")
    if worst > 20:
        raise SystemExit(1)


if __name__ == "__main__":
    asyncio.run(main())
