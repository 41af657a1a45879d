"""The server's newer levers against the stand-in engine of ``test_server_handlers``: rounds of candidates
approved as one, pretrained weights checked at session creation, the hardware traitlets, and jobs that outlived
the last server collected at start-up without a click."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest

from clinagent_lab.agent.loop import Step
from clinagent_lab.errors import ClinagentError
from clinagent_lab.execution import LocalBackend
from clinagent_lab.execution.base import (ExecutionBackend, JobDetached, JobHandle, JobRecord, JobStatus, NotebookJob,
                                          write_record)
from clinagent_lab.fileio import now_iso
from clinagent_lab.recipe import Recipe, apply_patch
from clinagent_lab.records import Iteration, Proposal, Session
from clinagent_lab.server.manager import SessionManager
from clinagent_lab.spec import TaskSpec
from tests.test_server_handlers import StandInEngine, call, data_dir, jp_server_config, manager, new_session  # noqa: F401

pytest_plugins = ["pytest_jupyter.jupyter_server"]


class RoundEngine(StandInEngine):
    """Two candidates per round after the baseline, kept in the session like the real engine does."""

    parallel = 2

    def propose_round(self) -> list[Proposal]:
        first = self.propose()
        if first is None or first.idea == "baseline" or self.parallel == 1:
            return [first] if first else []
        if not self.session.candidates:
            lr = first.recipe.optim.lr
            self.session.candidates = [Proposal(recipe=apply_patch(first.recipe, {"optim.lr": lr / 5}),
                                                rationale="a fifth of the learning rate", idea="lowest_lr")]
            self.session.save()
        return [first, *self.session.candidates]

    def set_parallel(self, k: int) -> int:
        self.parallel, self.session.candidates = k, []
        self.session.save()
        return k

    def round_step(self, on_event: Any = None) -> Step:
        todo = self.propose_round()
        self.session.candidates = []
        number = 1 + max((it.round or 0 for it in self.session.iterations), default=0)
        its = [self.run_iteration(p, on_event) for p in todo]
        for it in its:
            it.round = number
        self.session.save()
        nxt = self.propose_round()
        return Step(its[-1], self.should_stop(), nxt[0] if nxt else None)


@pytest.fixture
def rounds(manager):
    manager._factory = RoundEngine
    return manager


async def test_a_round_is_shown_approved_and_run_as_one(jp_fetch, rounds):
    sid = await new_session(jp_fetch)
    await call(jp_fetch, "POST", "sessions", sid, "start")  # the baseline, alone
    await rounds.wait_idle(timeout=10)
    code, answer = await call(jp_fetch, "GET", "sessions", sid, "proposal")
    assert code == 200 and [p["idea"] for p in [answer["proposal"], *answer["candidates"]]] == ["lower_lr", "lowest_lr"]
    code, _ = await call(jp_fetch, "POST", "sessions", sid, "proposal", body={"action": "approve"})
    assert code == 202
    await rounds.wait_idle(timeout=10)
    code, got = await call(jp_fetch, "GET", "sessions", sid)
    its = got["session"]["iterations"]
    assert [(it["idea"], it["round"]) for it in its] == [("baseline", 1), ("lower_lr", 2), ("lowest_lr", 2)]
    assert got["session"]["candidates"] == [] and got["runtime"]["running"] is None  # waits for the next approval


async def test_candidates_per_round_change_between_rounds(jp_fetch, rounds):
    sid = await new_session(jp_fetch)
    await call(jp_fetch, "POST", "sessions", sid, "start")
    await rounds.wait_idle(timeout=10)
    code, answer = await call(jp_fetch, "GET", "sessions", sid, "proposal")
    assert len(answer["candidates"]) == 1
    code, answer = await call(jp_fetch, "POST", "sessions", sid, "parallel", body={"parallel": 1})
    assert code == 200 and answer["parallel"] == 1 and answer["candidates"] == []
    assert answer["proposal"]["idea"] == "lower_lr"
    code, answer = await call(jp_fetch, "POST", "sessions", sid, "parallel", body={"parallel": 0})
    assert code == 400 and answer["field"] == "parallel"


async def test_rejecting_a_round_drops_every_candidate(tmp_path: Path):
    from clinagent_lab.agent.engine import Engine
    from clinagent_lab.data.synth import generate

    data = generate("chest_drain", tmp_path / "data", n=40, image_size=16)
    engine = Engine.create("flag a chest drain on chest x-rays", data, tmp_path / "s",
                           execution={"parallel": 2}, recipe_overrides={"data.image_size": 16})
    baseline = engine.propose()
    engine.session.iterations.append(Iteration(index=1, status="ok", recipe=baseline.recipe, rationale="b",
                                               idea="baseline", decision="baseline", selection_value=0.7))
    engine.session.best_iteration, engine.session.proposal = 1, None
    round_ = engine.propose_round()
    assert len(round_) == 2 and len({p.idea for p in round_}) == 2
    assert Session.load(tmp_path / "s").candidates == round_[1:]  # kept: approved as shown
    assert engine.propose_round() == round_
    engine.reject_proposal()
    assert engine.session.candidates == [] and set(engine.session.tried_ideas) >= {p.idea for p in round_}
    engine.set_parallel(3)  # from the next round on, and recorded for a reopened session
    assert engine.parallel == 3 and Session.load(tmp_path / "s").execution["parallel"] == 3
    with pytest.raises(ClinagentError, match="parallel"):
        engine.set_parallel(0)


# --- pretrained weights --------------------------------------------------------------------------------
@pytest.fixture
def hub(tmp_path: Path, monkeypatch) -> Path:
    snapshot = tmp_path / "hub" / "models--timm--resnet18.a1_in1k" / "snapshots" / "0123"
    snapshot.mkdir(parents=True)
    (snapshot / "model.safetensors").write_bytes(b"\0" * 2048)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    return snapshot


async def test_weights_lists_the_local_cache(jp_fetch, manager, hub):
    code, answer = await call(jp_fetch, "GET", "weights")
    assert code == 200 and answer["cache"] == str(hub.parents[2])
    assert [(w["name"], w["bytes"]) for w in answer["weights"]] == [("resnet18.a1_in1k", 2048)]
    assert "Hugging Face" in answer["weights"][0]["source"]


async def test_pretrained_is_checked_and_recorded_when_a_session_is_made(jp_fetch, manager, jp_root_dir):
    body = {"request": "detect drains in images", "data_path": "data"}
    code, answer = await call(jp_fetch, "POST", "sessions", body={**body, "pretrained": "weights/missing.pt"})
    assert code == 400 and answer["error"] == "RecipeError" and answer["where"] == "field 'pretrained'"
    assert "not found" in answer["what"] and "GET /clinagent/api/weights" in answer["fix"]
    code, answer = await call(jp_fetch, "POST", "sessions", body={**body, "pretrained": "../elsewhere.pt"})
    assert code == 403 and answer["where"] == "field 'pretrained'"
    (jp_root_dir / "weights").mkdir()
    (jp_root_dir / "weights" / "chest.pt").write_bytes(b"weights")
    code, answer = await call(jp_fetch, "POST", "sessions", body={**body, "pretrained": "weights/chest.pt"})
    assert code == 201, answer
    fixed = answer["session"]["recipe_overrides"]
    assert fixed["model.pretrained"] == str(jp_root_dir / "weights" / "chest.pt")
    assert len(fixed["model.pretrained_sha256"]) == 64


async def test_an_unknown_pretrained_name_is_400(jp_fetch, manager, hub):
    code, answer = await call(jp_fetch, "POST", "sessions", body={"request": "detect drains in images",
                                                                  "data_path": "data", "pretrained": "resnet18.nope"})
    assert code == 400 and answer["where"] == "field 'pretrained'" and "unknown pretrained" in answer["what"]


# --- the hardware traitlets ----------------------------------------------------------------------------
def test_devices_and_accelerator_are_checked_against_the_machine():
    from clinagent_lab.errors import RecipeError
    from clinagent_lab.server.app import ClinagentApp

    assert ClinagentApp().hardware_overrides() == {}  # not set: nothing checked, torch not imported
    assert ClinagentApp(accelerator="cpu", devices=1).hardware_overrides() == {"training.accelerator": "cpu",
                                                                               "training.devices": 1}
    with pytest.raises(RecipeError) as err:
        ClinagentApp(accelerator="cpu", devices=4096).hardware_overrides()
    assert "ClinagentApp.devices=4096" in err.value.where and "ClinagentApp.devices" in err.value.fix


# --- jobs that outlived the server ---------------------------------------------------------------------
class ResumingEngine(StandInEngine):
    """Reopened with an iteration whose cluster job still runs; ``resume`` collects it (never submits)."""

    submitted: list[int] = []

    @classmethod
    def open(cls, out_dir: Any) -> ResumingEngine:
        eng = cls(Session.load(out_dir))
        eng._resumable = [it for it in eng.session.iterations if it.status == "running"]
        return eng

    def run_iteration(self, proposal: Proposal | None = None, on_event: Any = None) -> Iteration:
        ResumingEngine.submitted.append(len(self.session.iterations) + 1)
        return super().run_iteration(proposal, on_event)

    def resume(self, on_event: Any = None) -> list[Iteration]:
        done = []
        for it in self._resumable:
            it.status, it.decision, it.selection_value, it.finished_at = "ok", "baseline", 0.7, now_iso()
            self.session.best_iteration = it.index
            on_event({"type": "iteration_finished", "iteration": it.index, "status": "ok", "decision": "baseline"})
            done.append(it)
        self._resumable = []
        self.session.save()
        return done


def _left_with_a_cluster_job(root: Path) -> None:
    out = root / ".clinagent" / "sessions" / "s-cluster"
    run = out / "iterations" / "iter_01"
    run.mkdir(parents=True)
    recipe = Recipe(task_type="binary_classification", classes=["no", "yes"])
    Session(id="s-cluster", request="detect drains", data_path=str(root), out_dir=str(out), spec=TaskSpec(),
            status="running", execution={"backend": "slurm"},
            iterations=[Iteration(index=1, recipe=recipe, rationale="baseline", idea="baseline", status="running",
                                  started_at=now_iso(), output_dir=str(run), job_id="4242")]).save()
    job = NotebookJob(input=str(run / "input.ipynb"), output=str(run / "iteration.ipynb"), cwd=str(run),
                      events_path=str(run / "events.jsonl"), timeout_s=60, kernel_name="python3")
    write_record(JobRecord(backend="slurm", token="t0", job_id="4242", state="running", job=job))


async def test_the_server_collects_jobs_that_outlived_it_without_a_click(jp_root_dir, jp_serverapp):
    _left_with_a_cluster_job(jp_root_dir)
    ResumingEngine.submitted = []
    mgr = SessionManager(jp_root_dir / ".clinagent" / "sessions", jp_root_dir, engine_factory=ResumingEngine,
                         event_logger=jp_serverapp.event_logger)
    mgr.recover()
    assert mgr.reattached == ["s-cluster"] and mgr.load("s-cluster").iterations[0].status == "running"
    await mgr.collect_reattached()
    session = mgr.load("s-cluster")
    assert session.iterations[0].status == "ok" and session.best_iteration == 1
    assert ResumingEngine.submitted == []  # collected by its job id, not submitted again
    assert session.proposal is not None and session.proposal.idea == "lower_lr"  # the loop went on: next proposal
    types = [e["type"] for e in mgr.events.replay("s-cluster")]
    assert types == ["state", "iteration_finished", "proposal", "state"]
    await mgr.shutdown()


class ClusterLike(ExecutionBackend):
    """A backend whose jobs run elsewhere, forever."""

    name, outlives_process, poll_s = "cluster-like", True, 0.01
    cancelled = False

    def submit(self, job: NotebookJob) -> JobHandle:
        return JobHandle(JobRecord(backend=self.name, token="t", job_id="7", state="running", job=job))

    def poll(self, handle: JobHandle) -> JobStatus:
        return JobStatus("running")

    def cancel(self, handle: JobHandle) -> bool:
        self.cancelled = True
        return True

    def reattach(self, folder: Any) -> JobHandle | None:
        return None


def test_a_server_going_away_detaches_from_cluster_jobs_without_cancelling_them(tmp_path: Path):
    backend = ClusterLike()
    job = NotebookJob(input="in.ipynb", output=str(tmp_path / "out.ipynb"), cwd=str(tmp_path),
                      events_path=str(tmp_path / "events.jsonl"), timeout_s=60, kernel_name="python3")
    raised: list[BaseException] = []

    def wait() -> None:
        try:
            backend.wait(backend.submit(job))
        except JobDetached as exc:
            raised.append(exc)

    waiter = threading.Thread(target=wait)
    waiter.start()
    assert backend.detach() and not LocalBackend().detach()  # a local job ends with its process: it is stopped
    waiter.join(5)
    assert not waiter.is_alive() and raised and not backend.cancelled
