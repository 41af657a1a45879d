"""How much the clinagent server extension adds to a Jupyter server's start.

Prints (1) the import time of ``clinagent_lab.server`` plus its application class, measured in a fresh
interpreter after jupyter_server itself is imported (its cost is the server's, not ours), (2) the time the
extension's start-up work takes (manager + listing sessions on disk, with 20 sessions present), and whether
torch / litellm / lightning were imported. Target: (1) + (2) <= 0.3 s.

Run: ``python benchmarks/server_import.py``
"""

from __future__ import annotations

import json
import subprocess
import sys

PROBE = r"""
import json, sys, tempfile, time
from pathlib import Path
import jupyter_server.serverapp  # the server's own cost, excluded
t0 = time.perf_counter()
import clinagent_lab.server as s
app_cls = s._jupyter_server_extension_points()[0]["app"]
t1 = time.perf_counter()
from clinagent_lab.records import Iteration, Session
from clinagent_lab.recipe import Recipe
from clinagent_lab.server.manager import SessionManager
from clinagent_lab.spec import TaskSpec
root = Path(tempfile.mkdtemp())
recipe = Recipe(task_type="binary_classification", classes=["no", "yes"])
for i in range(20):
    out = root / ".clinagent" / "sessions" / f"s{i:02d}"
    Session(id=f"s{i:02d}", request="detect drains", data_path=str(root), out_dir=str(out), spec=TaskSpec(),
            iterations=[Iteration(index=j + 1, recipe=recipe, rationale="r", status="ok")
                        for j in range(4)]).save()
t2 = time.perf_counter()
manager = SessionManager(root / ".clinagent" / "sessions", root)
sessions = manager.recover()
t3 = time.perf_counter()
heavy = [m for m in ("torch", "litellm", "lightning", "torchvision") if m in sys.modules]
print(json.dumps({"import_s": t1 - t0, "startup_s": t3 - t2, "sessions": len(sessions), "heavy": heavy}))
"""


def main() -> None:
    runs = [json.loads(subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True,
                                      check=True).stdout) for _ in range(3)]
    best = min(runs, key=lambda r: r["import_s"] + r["startup_s"])
    total = best["import_s"] + best["startup_s"]
    print(f"import clinagent_lab.server + ClinagentApp : {best['import_s'] * 1000:7.1f} ms (best of 3)")
    print(f"extension start-up ({best['sessions']} sessions on disk) : {best['startup_s'] * 1000:7.1f} ms")
    print(f"added to server start                    : {total * 1000:7.1f} ms (target <= 300 ms)")
    print(f"heavy modules imported                   : {best['heavy'] or 'none'}")
    if best["heavy"] or total > 0.3:
        sys.exit(1)


if __name__ == "__main__":
    main()
