"""Server extension handlers against a controllable engine: auth, body validation, paths, 404/409, the loop.

The engine here is a small stand-in with the real engine's interface that writes real Session files and
real executed-notebook files, and whose ``run_iteration`` can be held open (to test 409 and stop).
The real engine on synthetic data is exercised in ``test_server_engine.py``.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import nbformat
import pytest
from tornado.httpclient import HTTPClientError

from clinagent_lab.events import EVENT_VERSION
from clinagent_lab.records import Annotation, FinalTest, Iteration, Proposal, Session
from clinagent_lab.fileio import now_iso
from clinagent_lab.errors import ClinagentError, IntentError, SessionError
from clinagent_lab.recipe import Recipe, apply_patch, recipe_diff
from clinagent_lab.server.events import EVENTS_FILE, SCHEMA_ID, SessionEvents, session_event_schema
from clinagent_lab.server.manager import SessionManager, iteration_cells, resolve_data_path
from clinagent_lab.spec import TaskSpec

pytest_plugins = ["pytest_jupyter.jupyter_server"]

API = "clinagent/api"


# --- a stand-in engine with the real interface ---------------------------------------------------------
class FinishedTwice(SessionError):
    http_status = 409


class StandInEngine:
    gate: threading.Event | None = None  # when set, run_iteration waits for it (or for stop())
    max_iterations = 3

    def __init__(self, session: Session) -> None:
        self.session = session
        self._stop = threading.Event()

    @classmethod
    def interpret(cls, request: str, data_path: Any = None) -> TaskSpec:
        if "image" not in request and "detect" not in request:
            raise IntentError("the request does not describe an imaging task", where="field 'request'",
                              fix="say what to detect or classify")
        return TaskSpec(request=request, objective=request, modality="chest_xray",
                        target_classes=["drain"], assumptions=["primary metric AUROC (not stated)"],
                        questions=[] if data_path else ["Is a missed drain costlier than a false alarm?"])

    @classmethod
    def create(cls, request: str, data_path: Any, out_dir: Any, *, model: str = "offline", seed: int = 0,
               max_iterations: int | None = None, iteration_minutes: float | None = None,
               spec: TaskSpec | None = None, data_format: str | None = None,
               recipe_overrides: dict[str, Any] | None = None) -> StandInEngine:
        spec = spec or cls.interpret(request, data_path)
        if max_iterations:
            spec.budget.max_iterations = max_iterations
        session = Session(id=Path(out_dir).name, request=request, data_path=str(data_path),
                          out_dir=str(out_dir), spec=spec, model_name=model, seed=seed,
                          recipe_overrides=dict(recipe_overrides or {}))
        session.save()
        return cls(session)

    @classmethod
    def open(cls, out_dir: Any) -> StandInEngine:
        return cls(Session.load(out_dir))

    def update_spec(self, spec: TaskSpec) -> None:
        if self.session.iterations:
            raise SessionError("the spec is fixed once an iteration ran", fix="start a new session")
        self.session.spec = spec
        self.session.save()

    def propose(self) -> Proposal | None:
        if self.session.proposal is not None:
            return self.session.proposal
        base = Recipe(task_type="binary_classification", classes=["no", "drain"])
        best = self.session.best()
        if best is None:
            proposal = Proposal(recipe=base, rationale="baseline from the fingerprint", idea="baseline")
        elif "lower_lr" in self.session.tried_ideas:
            return None
        else:
            lr = best.recipe.optim.lr
            proposal = Proposal(recipe=apply_patch(best.recipe, {"optim.lr": lr / 2}),
                                rationale="halve the learning rate", idea="lower_lr",
                                changes={"optim.lr": [lr, lr / 2]})
        self.session.proposal = proposal
        self.session.save()
        return proposal

    def edit_proposal(self, changes: dict[str, Any]) -> Proposal:
        proposal = self.propose()
        edited = apply_patch(proposal.recipe, changes)
        base = self.session.best().recipe
        proposal = proposal.model_copy(update={
            "recipe": edited, "rationale": proposal.rationale + " (edited by the clinician)",
            "changes": {k: [a, b] for k, (a, b) in recipe_diff(base, edited).items()}})
        self.session.proposal = proposal
        self.session.save()
        return proposal

    def reject_proposal(self) -> None:
        self.session.tried_ideas.append(self.session.proposal.idea)
        self.session.proposal = None
        self.session.save()

    def should_stop(self) -> str | None:
        if len(self.session.iterations) >= self.session.spec.budget.max_iterations:
            return f"iteration budget reached ({self.session.spec.budget.max_iterations})"
        return None

    def run_iteration(self, proposal: Proposal | None = None, on_event: Any = None) -> Iteration:
        proposal = proposal or self.propose()
        if proposal is None:
            return None
        index = len(self.session.iterations) + 1
        emit = on_event or (lambda e: None)
        it = Iteration(index=index, recipe=proposal.recipe, rationale=proposal.rationale, idea=proposal.idea,
                       status="running", started_at=now_iso())
        self.session.iterations.append(it)
        self.session.proposal = None
        if proposal.idea != "baseline":
            self.session.tried_ideas.append(proposal.idea)
        self.session.status = "running"
        self.session.save()
        emit({"v": EVENT_VERSION, "type": "iteration_started", "session": self.session.id, "iteration": index})
        if self.gate is not None:
            while not self.gate.wait(0.02) and not self._stop.is_set():
                pass
        if self._stop.is_set():
            self._stop.clear()
            it.status, it.decision = "stopped", "failed"
            self.session.status = "stopped"
            self.session.save()
            return it
        value = round(0.65 + 0.05 * index, 4)
        emit({"v": EVENT_VERSION, "type": "epoch", "session": self.session.id, "iteration": index, "epoch": 1,
              "max_epochs": 1, "metrics": {"val_auroc": value}})
        out = Path(self.session.out_dir) / "iterations" / f"iter_{index:02d}"
        out.mkdir(parents=True, exist_ok=True)
        nb = nbformat.v4.new_notebook()
        nb.cells = [nbformat.v4.new_code_cell("lr = 0.001", metadata={"tags": ["clinagent", "parameters"]}),
                    nbformat.v4.new_code_cell("print('not ours')"),
                    nbformat.v4.new_code_cell("print(auroc)", metadata={"tags": ["clinagent", "frozen"],
                                                                         "papermill": {"duration": 1}})]
        nb.cells[2].outputs = [nbformat.v4.new_output("stream", name="stdout", text=f"{value}\n")]
        nb.cells[2].execution_count = 3
        nbformat.write(nb, out / "iteration.ipynb")
        it.notebook = str(out / "iteration.ipynb")
        it.status, it.val_metrics, it.selection_value = "ok", {"auroc": value}, value
        best = self.session.best()
        better = best is not None and value > best.selection_value
        it.decision = "baseline" if best is None else ("kept" if better else "discarded")
        if it.decision != "discarded":
            self.session.best_iteration = index
        it.finished_at = now_iso()
        self.session.status = "created"
        self.session.save()
        emit({"v": EVENT_VERSION, "type": "iteration_finished", "session": self.session.id, "iteration": index,
              "status": "ok", "decision": it.decision, "value": value})
        return it

    def stop(self) -> None:
        self._stop.set()

    def annotate(self, annotation: Annotation) -> Annotation:
        self.session.annotations.append(annotation)
        self.session.save()
        return annotation

    def finish(self) -> FinalTest:
        if self.session.final_test is not None:
            raise FinishedTwice("the test split was already evaluated", fix="read the report")
        best = self.session.best()
        if best is None:
            raise SessionError("no iteration succeeded yet", fix="run an iteration first")
        self.session.test_reads += 1
        self.session.final_test = FinalTest(iteration=best.index, metrics={"auroc": 0.71},
                                            evaluated_at=now_iso(),
                                            n_samples=12, predictions="test_predictions.csv")
        self.session.status = "finished"
        self.session.save()
        return self.session.final_test

    def export_report(self, path: Any = None) -> Path:
        out = Path(path or Path(self.session.out_dir) / "report.html")
        out.write_text("<html><body>report</body></html>", encoding="utf-8")
        return out


# --- fixtures ------------------------------------------------------------------------------------------
@pytest.fixture
def jp_server_config():
    return {"ServerApp": {"jpserver_extensions": {"clinagent_lab.server": True}}}


@pytest.fixture
def data_dir(jp_root_dir: Path) -> Path:
    path = jp_root_dir / "data"
    path.mkdir()
    (path / "labels.csv").write_text("image,label\na.png,0\n", encoding="utf-8")
    return path


@pytest.fixture
def manager(jp_serverapp, jp_root_dir: Path, data_dir: Path):
    StandInEngine.gate = None
    mgr = SessionManager(jp_root_dir / ".clinagent" / "sessions", jp_root_dir, engine_factory=StandInEngine,
                         event_logger=jp_serverapp.event_logger)
    jp_serverapp.web_app.settings["clinagent_manager"] = mgr
    yield mgr
    if StandInEngine.gate is not None:
        StandInEngine.gate.set()
    StandInEngine.gate = None


async def call(jp_fetch, method: str, *parts: str, body: Any = None, raw: str | None = None, **kw: Any):
    kwargs: dict[str, Any] = {"method": method, "raise_error": False}
    if method == "POST":
        kwargs["body"] = raw if raw is not None else json.dumps(body if body is not None else {})
    response = await jp_fetch(API, *parts, **kwargs, **kw)
    return response.code, json.loads(response.body or b"null")


async def new_session(jp_fetch) -> str:
    code, body = await call(jp_fetch, "POST", "sessions", body={"request": "detect drains in images",
                                                                "data_path": "data"})
    assert code == 201, body
    return body["session"]["id"]


SESSION_ROUTES = [("GET", ""), ("POST", "spec"), ("POST", "start"), ("POST", "stop"), ("GET", "proposal"),
                  ("POST", "proposal"), ("POST", "annotations"), ("POST", "finish"), ("POST", "export"),
                  ("GET", "iterations/0/cells"), ("GET", "events"), ("POST", "auto-continue"), ("POST", "parallel")]


# --- authentication ------------------------------------------------------------------------------------
@pytest.mark.parametrize("method,route", [("POST", "interpret"), ("GET", "sessions"), ("POST", "sessions")]
                         + [(m, f"sessions/abc/{r}".rstrip("/")) for m, r in SESSION_ROUTES])
async def test_unauthenticated_is_403(jp_fetch, manager, method, route):
    kwargs = {"body": "{}"} if method == "POST" else {}
    with pytest.raises(HTTPClientError) as err:
        await jp_fetch(API, *route.split("/"), method=method, headers={"Authorization": ""}, **kwargs)
    assert err.value.code == 403


# --- body validation -----------------------------------------------------------------------------------
@pytest.mark.parametrize("route,body,field", [
    ("interpret", {}, "request"),
    ("interpret", {"request": ""}, "request"),
    ("interpret", {"request": "detect", "extra": 1}, "extra"),
    ("sessions", {"request": "detect drains"}, "data_path"),
    ("sessions", {"request": "x", "data_path": "data", "max_iterations": 0}, "max_iterations"),
    ("sessions", {"request": "x", "data_path": "data", "spec": {"primary_metric": {"name": "accuracy"}}},
     "spec.primary_metric.name"),
])
async def test_bad_body_is_400_naming_the_field(jp_fetch, manager, route, body, field):
    code, answer = await call(jp_fetch, "POST", route, body=body)
    assert code == 400
    assert answer["field"] == field
    assert f"'{field}'" in answer["message"]


async def test_invalid_json_is_400(jp_fetch, manager):
    code, answer = await call(jp_fetch, "POST", "interpret", raw="{not json")
    assert code == 400 and "not valid JSON" in answer["what"]
    code, answer = await call(jp_fetch, "POST", "interpret", raw="[1, 2]")
    assert code == 400 and "JSON object" in answer["what"]


@pytest.mark.parametrize("route,body,field", [
    ("spec", {"spec": {"task_type": "segmentation"}}, "spec.task_type"),
    ("start", {"auto_continue": "perhaps"}, "auto_continue"),
    ("proposal", {"action": "maybe"}, "action"),
    ("proposal", {"action": "edit"}, "changes"),
    ("annotations", {"kind": "scribble"}, "kind"),
    ("annotations", {"kind": "note", "colour": "red"}, "colour"),
])
async def test_bad_session_body_is_400(jp_fetch, manager, route, body, field):
    sid = await new_session(jp_fetch)
    code, answer = await call(jp_fetch, "POST", "sessions", sid, route, body=body)
    assert code == 400, answer
    assert answer["field"] == field


# --- data paths ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("data_path", ["../", "/etc", "data/../../.."])
@pytest.mark.parametrize("route", ["interpret", "sessions"])
async def test_data_path_outside_root_is_403(jp_fetch, manager, route, data_path):
    code, answer = await call(jp_fetch, "POST", route, body={"request": "detect drains in images",
                                                             "data_path": data_path})
    assert code == 403
    assert answer["error"] == "PathOutsideRootError" and answer["where"] == "field 'data_path'"


async def test_missing_data_path_is_400_with_message(jp_fetch, manager):
    code, answer = await call(jp_fetch, "POST", "sessions", body={"request": "detect drains in images",
                                                                  "data_path": "nope/here"})
    assert code == 400
    assert answer["error"] == "DataFormatError" and "'nope/here' does not exist" in answer["message"]


def test_resolve_data_path(tmp_path: Path):
    (tmp_path / "d").mkdir()
    assert resolve_data_path(tmp_path, "d") == (tmp_path / "d").resolve()
    assert resolve_data_path(tmp_path, str(tmp_path / "d")) == (tmp_path / "d").resolve()
    (tmp_path / "link").symlink_to("/")
    with pytest.raises(Exception, match="outside"):
        resolve_data_path(tmp_path, "link/etc")


# --- unknown sessions, engine errors ----------------------------------------------------------------------
@pytest.mark.parametrize("method,route", SESSION_ROUTES)
async def test_unknown_session_is_404(jp_fetch, manager, method, route):
    body = {"action": "reject"} if route == "proposal" else {"kind": "note"} if route == "annotations" else {}
    if route == "spec":
        body = {"spec": {}}
    parts = ["sessions", "nosuch"] + ([*route.split("/")] if route else [])
    code, answer = await call(jp_fetch, method, *parts, body=body)
    assert code == 404, answer
    assert answer["error"] == "UnknownSessionError"


async def test_engine_error_keeps_its_status_and_fields(jp_fetch, manager):
    code, answer = await call(jp_fetch, "POST", "interpret", body={"request": "bake a cake"})
    assert code == 400
    assert answer == {"error": "IntentError", "what": "the request does not describe an imaging task",
                      "where": "field 'request'", "fix": "say what to detect or classify",
                      "message": "the request does not describe an imaging task. Where: field 'request'. "
                                 "What to do: say what to detect or classify."}


# --- the loop ------------------------------------------------------------------------------------------
async def wait_idle(manager: SessionManager) -> None:
    await manager.wait_idle(timeout=10)


async def wait_iteration_started(jp_fetch, sid: str, timeout: float = 10) -> None:
    """Until the running job has appended its iteration (proposing runs in a thread first)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while asyncio.get_running_loop().time() < deadline:
        _, answer = await call(jp_fetch, "GET", "sessions", sid)
        if answer["session"]["iterations"]:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"session {sid} started no iteration within {timeout} s")


async def test_second_start_is_409_and_stop_ends_it(jp_fetch, manager):
    StandInEngine.gate = threading.Event()
    sid = await new_session(jp_fetch)
    other = await new_session(jp_fetch)
    code, answer = await call(jp_fetch, "POST", "sessions", sid, "start")
    assert code == 202 and answer["running"]["session"] == sid
    for target in (sid, other):
        code, answer = await call(jp_fetch, "POST", "sessions", target, "start")
        assert code == 409, answer
        assert answer["error"] == "BusyError" and f"session '{sid}'" in answer["what"]
    code, answer = await call(jp_fetch, "POST", "sessions", sid, "spec",
                              body={"spec": TaskSpec().model_dump()})
    assert code == 409
    code, answer = await call(jp_fetch, "POST", "sessions", other, "stop")
    assert code == 409 and "nothing is running" in answer["what"]
    await wait_iteration_started(jp_fetch, sid)
    code, answer = await call(jp_fetch, "POST", "sessions", sid, "stop")
    assert code == 200 and answer["stopping"]["session"] == sid
    await wait_idle(manager)
    code, answer = await call(jp_fetch, "GET", "sessions", sid)
    assert answer["session"]["iterations"][0]["status"] == "stopped"
    assert answer["runtime"]["running"] is None
    StandInEngine.gate = None
    code, answer = await call(jp_fetch, "POST", "sessions", other, "start")
    assert code == 202
    await wait_idle(manager)


async def test_full_flow_interpret_to_export(jp_fetch, manager, jp_root_dir):
    code, spec = await call(jp_fetch, "POST", "interpret", body={"request": "detect drains in images"})
    assert code == 200 and spec["questions"] and spec["assumptions"] == ["primary metric AUROC (not stated)"]
    spec["budget"]["max_iterations"] = 3
    code, created = await call(jp_fetch, "POST", "sessions", body={"request": "detect drains in images",
                                                                   "data_path": "data", "spec": spec})
    sid = created["session"]["id"]
    assert code == 201 and created["session"]["data_path"] == str(jp_root_dir / "data")
    assert (jp_root_dir / ".clinagent" / "sessions" / sid / "session.json").exists()

    edited = dict(spec, objective="find chest drains")
    code, answer = await call(jp_fetch, "POST", "sessions", sid, "spec", body={"spec": edited})
    assert code == 200 and answer["session"]["spec"]["objective"] == "find chest drains"

    code, listing = await call(jp_fetch, "GET", "sessions")
    assert [s["id"] for s in listing["sessions"]] == [sid]

    code, _ = await call(jp_fetch, "POST", "sessions", sid, "start")
    assert code == 202
    await wait_idle(manager)
    code, got = await call(jp_fetch, "GET", "sessions", sid)
    assert [it["status"] for it in got["session"]["iterations"]] == ["ok"]
    proposal = got["session"]["proposal"]
    assert proposal["idea"] == "lower_lr" and proposal["changes"] == {"optim.lr": [0.001, 0.0005]}

    code, events = await call(jp_fetch, "GET", "sessions", sid, "events")
    assert events["schema_id"] == SCHEMA_ID and events["last_seq"] == 7
    types = [e["type"] for e in events["events"]]
    assert types == ["log", "state", "iteration_started", "epoch", "iteration_finished", "proposal", "state"]
    assert [e["seq"] for e in events["events"]] == list(range(1, 8))
    assert all(e["v"] == EVENT_VERSION and e["session"] == sid for e in events["events"])
    code, later = await call(jp_fetch, "GET", "sessions", sid, "events", params={"after": "5"})
    assert [e["seq"] for e in later["events"]] == [6, 7]

    code, cells = await call(jp_fetch, "GET", "sessions", sid, "iterations", "1", "cells")
    assert code == 200
    assert [c["cell_type"] for c in cells["cells"]] == ["markdown", "code", "code"]
    assert "baseline from the fingerprint" in cells["cells"][0]["source"]
    assert cells["cells"][2]["outputs"][0]["text"] == "0.7\n" and cells["cells"][2]["execution_count"] == 3
    assert all({"clinagent", "clinagent-iter-01"} <= set(c["metadata"]["tags"]) for c in cells["cells"])
    assert "papermill" not in cells["cells"][2]["metadata"]
    code, answer = await call(jp_fetch, "GET", "sessions", sid, "iterations", "7", "cells")
    assert code == 400 and "iteration 7 does not exist" in answer["what"]

    code, answer = await call(jp_fetch, "POST", "sessions", sid, "proposal",
                              body={"action": "edit", "changes": {"optim.lr": 0.0002}})
    assert code == 200 and answer["proposal"]["changes"] == {"optim.lr": [0.001, 0.0002]}
    assert answer["proposal"]["recipe"]["optim"]["lr"] == 0.0002
    code, answer = await call(jp_fetch, "POST", "sessions", sid, "proposal",
                              body={"action": "edit", "changes": {"optim.lr": -1}})
    assert code == 400 and answer["error"] == "RecipeError" and answer["where"] == "field 'optim.lr'"
    code, answer = await call(jp_fetch, "POST", "sessions", sid, "proposal", body={"action": "approve"})
    assert code == 202
    await wait_idle(manager)
    code, got = await call(jp_fetch, "GET", "sessions", sid)
    second = got["session"]["iterations"][1]
    assert second["recipe"]["optim"]["lr"] == 0.0002 and second["decision"] == "kept"
    assert second["rationale"] == "halve the learning rate (edited by the clinician)"

    code, answer = await call(jp_fetch, "POST", "sessions", sid, "proposal", body={"action": "reject"})
    assert code == 409 and "no proposal to reject" in answer["what"]

    code, answer = await call(jp_fetch, "POST", "sessions", sid, "annotations",
                              body={"kind": "operating_point", "value": {"sensitivity": 0.9}, "iteration": 2})
    assert code == 201 and answer["value"] == {"sensitivity": 0.9}

    code, final = await call(jp_fetch, "POST", "sessions", sid, "finish")
    assert code == 200 and final["iteration"] == 2
    code, again = await call(jp_fetch, "POST", "sessions", sid, "finish")
    assert code == 409 and again["error"] == "BusyError" and "already evaluated" in again["what"]

    code, exported = await call(jp_fetch, "POST", "sessions", sid, "export")
    assert code == 200
    assert exported["relative"] == f".clinagent/sessions/{sid}/report.html"
    assert exported["url"] == f"files/.clinagent/sessions/{sid}/report.html"


async def test_auto_continue_runs_until_budget(jp_fetch, manager):
    sid = await new_session(jp_fetch)  # budget: the spec's default of 4, made 2 here
    eng = await manager.engine(sid)
    eng.session.spec.budget.max_iterations = 2
    eng.session.save()
    code, _ = await call(jp_fetch, "POST", "sessions", sid, "start", body={"auto_continue": True})
    assert code == 202
    await wait_idle(manager)
    code, got = await call(jp_fetch, "GET", "sessions", sid)
    assert len(got["session"]["iterations"]) == 2 and got["runtime"]["running"] is None
    code, events = await call(jp_fetch, "GET", "sessions", sid, "events")
    assert [e["type"] for e in events["events"]].count("loop_finished") == 1
    code, answer = await call(jp_fetch, "POST", "sessions", sid, "proposal", body={"action": "approve"})
    assert code == 409 and "no proposal" in answer["what"]


async def test_auto_continue_switched_during_a_run_goes_on_and_is_kept_with_the_session(jp_fetch, manager):
    StandInEngine.gate = threading.Event()
    sid, other = await new_session(jp_fetch), await new_session(jp_fetch)
    eng = await manager.engine(sid)
    eng.session.spec.budget.max_iterations = 2
    eng.session.save()
    code, _ = await call(jp_fetch, "POST", "sessions", sid, "start", body={"auto_continue": False})
    assert code == 202
    await wait_iteration_started(jp_fetch, sid)
    code, answer = await call(jp_fetch, "POST", "sessions", sid, "auto-continue", body={"auto_continue": True})
    assert code == 200 and answer == {"auto_continue": True}
    StandInEngine.gate.set()  # the iteration finishes (and saves the session) after the switch
    await wait_idle(manager)
    code, got = await call(jp_fetch, "GET", "sessions", sid)
    assert len(got["session"]["iterations"]) == 2  # the loop went on without an approval
    assert got["runtime"]["auto_continue"] is True and got["session"]["auto_continue"] is True
    assert Session.load(eng.session.out_dir).auto_continue is True  # on disk, not lost to the iteration's saves
    code, got = await call(jp_fetch, "GET", "sessions", other)
    assert got["runtime"]["auto_continue"] is False and got["session"]["auto_continue"] is None  # per session


async def test_reject_drops_the_proposal(jp_fetch, manager):
    sid = await new_session(jp_fetch)
    code, answer = await call(jp_fetch, "GET", "sessions", sid, "proposal")
    assert code == 200 and answer["proposal"]["idea"] == "baseline"
    await call(jp_fetch, "POST", "sessions", sid, "start")
    await wait_idle(manager)
    code, answer = await call(jp_fetch, "POST", "sessions", sid, "proposal", body={"action": "reject"})
    assert code == 200 and answer["proposal"] is None and answer["rejected"]["idea"] == "lower_lr"
    code, answer = await call(jp_fetch, "GET", "sessions", sid, "proposal")
    assert answer["proposal"] is None
    code, got = await call(jp_fetch, "GET", "sessions", sid)
    assert got["session"]["tried_ideas"] == ["lower_lr"] and got["session"]["proposal"] is None


async def test_events_reach_the_jupyter_event_bus_websocket(jp_fetch, jp_ws_fetch, manager):
    ws = await jp_ws_fetch("api", "events", "subscribe")  # subscribed before the server's first event
    sid = await new_session(jp_fetch)
    manager.emit(sid, "epoch", epoch=3, iteration=1)
    first = json.loads(await asyncio.wait_for(ws.read_message(), 5))
    got = json.loads(await asyncio.wait_for(ws.read_message(), 5))
    ws.close()
    assert (first["type"], first["seq"]) == ("log", 1)
    assert got["schema_id"] == SCHEMA_ID and (got["type"], got["session"], got["seq"]) == ("epoch", sid, 2)
    # a sidebar that missed it (late, or reconnected) catches up by seq
    code, missed = await call(jp_fetch, "GET", "sessions", sid, "events", params={"after": "1"})
    assert code == 200 and missed["events"] == [{k: v for k, v in got.items() if k != "schema_id"}]
    code, answer = await call(jp_fetch, "GET", "sessions", sid, "events", params={"after": "x"})
    assert code == 400 and answer["where"] == "query 'after'"


# --- start-up recovery ---------------------------------------------------------------------------------
def _session_left_running(root: Path) -> Path:
    out = root / ".clinagent" / "sessions" / "s-old"
    recipe = Recipe(task_type="binary_classification", classes=["no", "yes"])
    running = Iteration(index=1, recipe=recipe, rationale="baseline", started_at=now_iso(), status="running")
    session = Session(id="s-old", request="detect drains", data_path=str(root), out_dir=str(out),
                      spec=TaskSpec(),
                      status="running", iterations=[running])
    session.save()
    return out


@pytest.fixture
def left_running(jp_root_dir: Path) -> Path:
    return _session_left_running(jp_root_dir)


async def test_server_start_marks_running_iterations_interrupted(left_running, jp_fetch):
    code, listing = await call(jp_fetch, "GET", "sessions")
    assert code == 200 and [(s["id"], s["status"]) for s in listing["sessions"]] == [("s-old", "stopped")]
    code, got = await call(jp_fetch, "GET", "sessions", "s-old")
    it = got["session"]["iterations"][0]
    assert it["status"] == "interrupted" and "start again" in it["decision_reason"]
    assert got["session"]["audit"][-1]["kind"] == "interrupted"


def test_traitlets_configure_the_manager(tmp_path: Path):
    from clinagent_lab.server.app import ClinagentApp

    names = {"sessions_dir", "model", "max_iterations", "iteration_minutes", "auto_continue", "parallel", "devices",
             "accelerator"}
    assert names <= set(ClinagentApp.class_own_traits(config=True))
    assert ClinagentApp.name == "clinagent_lab" and ClinagentApp.model.default_value == "offline"


async def test_traitlets_reach_the_manager(jp_serverapp, jp_root_dir):
    # the fixture's config is ServerApp-only: defaults apply
    mgr = jp_serverapp.web_app.settings["clinagent_manager"]
    assert mgr.sessions_dir == jp_root_dir / ".clinagent" / "sessions"
    assert (mgr.model, mgr.max_iterations, mgr.auto_continue) == ("offline", None, False)


# --- pure helpers --------------------------------------------------------------------------------------
def test_iteration_cells_keep_only_tagged_cells(tmp_path: Path):
    eng = StandInEngine.create("detect drains in images", tmp_path, tmp_path / "s")
    eng.run_iteration()
    cells = iteration_cells(eng.session, 1)["cells"]
    assert [c["source"] for c in cells[1:]] == ["lr = 0.001", "print(auroc)"]
    assert all("id" not in c for c in cells)


def test_iteration_cells_end_with_a_results_cell_when_predictions_exist(tmp_path: Path):
    eng = StandInEngine.create("detect drains in images", tmp_path, tmp_path / "s")
    it = eng.run_iteration()
    folder = Path(it.notebook).parent
    (folder / "val_predictions.csv").write_text("image_id,label,prob_0,prob_1\na,0,0.9,0.1\n")
    cells = iteration_cells(eng.session, 1)["cells"]
    last = cells[-1]
    assert "clinagent-results" in last["metadata"]["tags"] and last["outputs"] == []
    assert last["source"] == ("from clinagent_lab.widgets import show_results\n"
                              f"show_results({str(folder)!r}, session_id={eng.session.id!r})")
    compile(last["source"], "results-cell", "exec")


def test_session_events_are_ordered_kept_and_continue_after_a_restart(tmp_path: Path):
    events = SessionEvents(buffer=2, folder=lambda sid: tmp_path if sid == "a" else None)
    for n in range(3):
        events.publish({"type": "log", "session": "a", "message": str(n)})
    events.publish({"type": "log", "session": "b"})
    assert [e["message"] for e in events.replay("a")] == ["1", "2"] and events.last_seq("b") == 1
    with pytest.raises(ClinagentError, match="malformed"):
        events.publish({"type": "epoch", "session": "a", "epoch": "three"})
    assert len((tmp_path / EVENTS_FILE).read_text().splitlines()) == 3
    again = SessionEvents(folder=lambda sid: tmp_path)  # a new server: seq goes on, the replay survives
    assert [e["seq"] for e in again.replay("a", after=1)] == [2, 3]
    assert again.publish({"type": "log", "session": "a"})["seq"] == 4


def test_the_event_schema_is_a_jupyter_event_schema():
    from jupyter_events.validators import validate_schema

    schema = session_event_schema()
    validate_schema(schema)  # $id, version, properties, no reserved names
    assert schema["$id"] == SCHEMA_ID and schema["version"] == str(EVENT_VERSION)
    assert SCHEMA_ID.endswith(f"/v{EVENT_VERSION}")


def test_importing_the_server_package_is_light():
    code = ("import sys, time; t=time.perf_counter(); import clinagent_lab.server as s; "
            "pts = s._jupyter_server_extension_points(); "
            "bad = [m for m in ('torch', 'litellm', 'lightning') if m in sys.modules]; "
            "assert not bad, bad; print(pts[0]['app'].name)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "clinagent_lab"


# --- the schemas the sidebar is typed from -----------------------------------------------------------
async def test_schema_route_serves_every_noun_and_the_event_union(jp_fetch, manager):
    code, schema = await call(jp_fetch, "GET", "schema")
    assert code == 200
    defs = schema["$defs"]
    assert {"TaskSpec", "Recipe", "Session", "Proposal", "Annotation", "FinalTest", "Event"} <= set(defs)
    task_types = defs["TaskSpec"]["properties"]["task_type"]
    assert set(task_types.get("enum", [])) == {"binary_classification", "multiclass_classification", "detection"}
    events = {ref["$ref"].split("/")[-1] for ref in defs["Event"]["oneOf"]}
    assert {"EpochEvent", "IterationFinished", "StateEvent", "ProposalEvent", "CellEvent"} <= events


async def test_streamed_events_follow_the_event_schema(jp_fetch, manager):
    from clinagent_lab.events import EVENT_VERSION, validate_event

    sid = await new_session(jp_fetch)
    code, _ = await call(jp_fetch, "POST", "sessions", sid, "start")
    assert code == 202
    await manager.wait_idle(timeout=10)
    events = manager.events.replay(sid)
    assert {"state", "iteration_started", "epoch", "iteration_finished"} <= {e["type"] for e in events}
    for event in events:
        assert event["v"] == EVENT_VERSION and validate_event(event)["seq"] == event["seq"]
