"""Session records (Session, Iteration, Proposal, Annotation, FinalTest), persisted atomically as
``<out>/session.json``."""

from __future__ import annotations

import json
from pathlib import Path
from collections.abc import Collection
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from .data.base import DatasetFingerprint
from .errors import SessionError
from .fileio import atomic_write_text, now_iso
from .recipe import Recipe
from .spec import TaskSpec

__all__ = [
    "Annotation",
    "AuditEvent",
    "Iteration",
    "Proposal",
    "FinalTest",
    "Session",
    "SESSION_FILE",
    "SCHEMA_VERSION",
]

SESSION_FILE = "session.json"
SCHEMA_VERSION = 1
IterationStatus = Literal["pending", "running", "ok", "crash", "timeout", "interrupted", "stopped"]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Annotation(_Model):
    """A clinician's note on a plot, turned into structure the refiner acts on.

    ``kind``: ``operating_point`` (value = {"sensitivity": 0.9} or {"specificity": 0.8} or {"threshold": t}),
    ``group_fpr_bound`` (value = {"confounder": "chest_drain", "group": "1", "max_fpr": 0.1}),
    ``class_priority`` (value = {"class": "MEL", "weight": 2.0}), or ``note`` (free text only).
    """

    kind: Literal["operating_point", "group_fpr_bound", "class_priority", "note"]
    text: str = ""
    value: dict[str, Any] = Field(default_factory=dict)
    iteration: int | None = None
    created_at: str = Field(default_factory=now_iso)
    applied_in: int | None = Field(default=None, description="iteration that acted on it")


class AuditEvent(_Model):
    at: str = Field(default_factory=now_iso)
    kind: str
    detail: dict[str, Any] = Field(default_factory=dict)


class Iteration(_Model):
    index: int
    status: IterationStatus = "pending"
    recipe: Recipe
    rationale: str
    idea: str = ""
    notebook: str | None = None
    output_dir: str | None = None
    started_at: str | None = None
    finished_at: str | None = None
    wall_s: float | None = None
    val_metrics: dict[str, Any] = Field(default_factory=dict)
    selection_value: float | None = None
    decision: Literal["kept", "discarded", "baseline", "failed", "pending"] = "pending"
    decision_reason: str = ""
    error: dict[str, Any] | None = Field(default=None, description="ename, evalue, cell index for crashes")
    annotations: list[int] = Field(default_factory=list, description="indices into Session.annotations")
    checkpoint: str | None = None
    curve: list[float] = Field(default_factory=list, description="monitored validation metric per epoch")
    code_attempts: int = Field(default=0, description="repairs tried for this iteration's custom code")
    warm_kernel: bool = Field(default=False, description="ran in a kernel started (and warmed) ahead of time")
    round: int | None = Field(default=None, description="the round of candidates run together (--parallel)")
    job_id: str | None = Field(default=None, description="the backend's job id (a cluster job's, for sacct)")


class Proposal(_Model):
    """The next Recipe the refiner suggests, waiting for approval (or auto-continue)."""

    recipe: Recipe
    rationale: str
    idea: str = ""
    changes: dict[str, list[Any]] = Field(default_factory=dict, description="dotted field -> [old, new]")
    proposed_by: str = "offline"
    created_at: str = Field(default_factory=now_iso)


class FinalTest(_Model):
    iteration: int
    metrics: dict[str, Any]
    evaluated_at: str
    n_samples: int
    predictions: str


class Session(_Model):
    schema_version: int = SCHEMA_VERSION
    id: str
    created_at: str = Field(default_factory=now_iso)
    request: str
    data_path: str
    out_dir: str
    seed: int = 0
    model_name: str = "offline"
    spec: TaskSpec
    fingerprint: DatasetFingerprint | None = None
    iterations: list[Iteration] = Field(default_factory=list)
    best_iteration: int | None = None
    final_test: FinalTest | None = None
    test_reads: int = Field(default=0, description="how many times the test split was read (must be <= 1)")
    annotations: list[Annotation] = Field(default_factory=list)
    proposal: Proposal | None = None
    candidates: list[Proposal] = Field(default_factory=list, description="the other candidates of the next "
                                       "round (--parallel K: up to K - 1), approved together with `proposal`")
    tried_ideas: list[str] = Field(default_factory=list)
    data_format: str | None = None
    format_options: dict[str, Any] = Field(default_factory=dict)
    llm_options: dict[str, Any] = Field(default_factory=dict, description="api_base and budgets for the LLM "
                                        "(never keys: those stay in the provider's environment variables)")
    recipe_overrides: dict[str, Any] = Field(default_factory=dict, description="dotted Recipe fields fixed by "
                                             "the user for the baseline (e.g. training.max_epochs)")
    status: Literal["created", "running", "stopped", "finished", "failed"] = "created"
    stop_reason: str = ""
    auto_continue: bool | None = Field(default=None, description="run each next proposal without waiting for "
                                       "approval, as last switched for this session (None: the server's default)")
    execution: dict[str, Any] = Field(default_factory=dict, description="where the notebooks run "
                                      "(execution.ExecutionConfig), so a reopened session or a rerun goes there too")
    audit: list[AuditEvent] = Field(default_factory=list)

    # --- persistence -------------------------------------------------------------------------------
    @property
    def path(self) -> Path:
        return Path(self.out_dir) / SESSION_FILE

    def save(self) -> Path:
        atomic_write_text(self.path, self.model_dump_json(indent=2))
        return self.path

    @classmethod
    def load(cls, out_dir: str | Path) -> Session:
        out = Path(out_dir)
        path = out / SESSION_FILE if out.is_dir() or not out.suffix else out
        if not path.exists():
            raise SessionError(f"no session found: {path} does not exist",
                               fix="pass the folder that `clinagent run` wrote (it holds session.json)")
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise SessionError(f"session file is not valid JSON ({exc.msg})", where=f"{path}:{exc.lineno}",
                               fix="restore it from a backup or rerun the session") from exc
        version = raw.get("schema_version")
        if version != SCHEMA_VERSION:
            raise SessionError(f"session schema version {version!r} is not supported (expected {SCHEMA_VERSION})",
                               where=str(path), fix="rerun the session with this version of clinagent-lab")
        try:
            session = cls.model_validate(raw)
        except ValidationError as exc:
            first = exc.errors()[0]
            field = ".".join(str(p) for p in first["loc"])
            raise SessionError(f"session file is incomplete or invalid: {first['msg']}",
                               where=f"{path}, field '{field}'",
                               fix="rerun the session; the file was not written by this version") from exc
        session.out_dir = str(out if path.parent == out or out.is_dir() else path.parent)
        return session

    # --- helpers -----------------------------------------------------------------------------------
    def log(self, kind: str, **detail: Any) -> None:
        self.audit.append(AuditEvent(kind=kind, detail=detail))

    def annotate(self, annotation: Annotation) -> Annotation:
        """Add a clinician's annotation (linked to its iteration, if any); the pending proposal is dropped so
        that the next one sees it. The caller saves."""
        if annotation.iteration is not None:
            self.iteration(annotation.iteration)  # raises when there is no such iteration
        self.annotations.append(annotation)
        if annotation.iteration is not None:
            self.iteration(annotation.iteration).annotations.append(len(self.annotations) - 1)
        self.proposal, self.candidates = None, []
        self.log("annotation", annotation_kind=annotation.kind, value=annotation.value)
        return annotation

    def mark_interrupted(self, why: str, stop_reason: str = "interrupted", keep: Collection[int] = ()) -> bool:
        """After the process driving this session died: iterations left running are ``interrupted`` (failed,
        with ``why``) and a running session is ``stopped``; those in ``keep`` (jobs still running on a cluster,
        to be reattached) are left as they are. Returns whether anything changed (then save)."""
        stale = [it for it in self.iterations if it.index not in keep
                 and it.status in ("running", "pending") and it.started_at and not it.finished_at]
        if keep and not stale:
            return False
        if not stale and self.status != "running":
            return False
        for it in stale:
            it.status, it.decision, it.decision_reason = "interrupted", "failed", why
        self.status = "stopped"
        self.stop_reason = stop_reason
        self.log("interrupted", iterations=[it.index for it in stale], reason=why)
        return True

    def best(self) -> Iteration | None:
        if self.best_iteration is None:
            return None
        return next((it for it in self.iterations if it.index == self.best_iteration), None)

    def iteration(self, index: int) -> Iteration:
        for it in self.iterations:
            if it.index == index:
                return it
        raise SessionError(f"iteration {index} does not exist in session {self.id}",
                           fix=f"use one of {[it.index for it in self.iterations]}")
