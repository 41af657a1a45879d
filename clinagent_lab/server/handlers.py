"""REST handlers under ``/clinagent/api/``: authenticated, JSON in and out, pydantic-validated bodies.

Errors: a :class:`~clinagent_lab.errors.ClinagentError` answers with its ``http_status`` and ``to_dict()``;
a body that does not validate answers 400 naming the field (``{"error": "ValidationError", "field": ...}``).
"""

from __future__ import annotations

import functools
import json
from typing import Any, Awaitable, Callable, Literal, TypeVar

import tornado.web
from jupyter_server.base.handlers import APIHandler
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ..records import Annotation
from ..errors import ClinagentError
from ..spec import TaskSpec
from .events import SCHEMA_ID
from .manager import SessionManager, to_jsonable
from .api_schema import api_json_schema

__all__ = ["API_PREFIX", "handlers", "InterpretBody", "CreateBody", "AnswerBody", "StartBody", "ProposalBody"]

API_PREFIX = "/clinagent/api"
M = TypeVar("M", bound=BaseModel)


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class InterpretBody(_Body):
    request: str = Field(min_length=1)
    data_path: str | None = None


class CreateBody(_Body):
    request: str = Field(min_length=1)
    data_path: str = Field(min_length=1)
    spec: TaskSpec | None = None
    max_iterations: int | None = Field(default=None, ge=1, le=100)
    iteration_minutes: float | None = Field(default=None, gt=0)
    data_format: str | None = None
    #: pretrained weights: a name from ``GET weights`` (the local cache), a weights file under the root, "none"
    pretrained: str | None = Field(default=None, min_length=1)
    #: candidates per round (``--parallel K``) for this session
    parallel: int | None = Field(default=None, ge=1, le=16)


class SpecBody(_Body):
    spec: TaskSpec


class AnswerBody(_Body):
    spec: TaskSpec
    question_id: str = Field(min_length=1)
    value: str


class StartBody(_Body):
    auto_continue: bool | None = None


class ParallelBody(_Body):
    parallel: int = Field(ge=1, le=16)


class ProposalBody(_Body):
    action: Literal["approve", "reject", "edit"]
    changes: dict[str, Any] | None = None
    auto_continue: bool | None = None


class _BodyError(ClinagentError):
    """A request body that is not JSON or does not match its schema."""


def _validation_error(exc: ValidationError) -> _BodyError:
    first = exc.errors()[0]
    field = ".".join(str(p) for p in first["loc"]) or "(body)"
    err = _BodyError(f"field '{field}': {first['msg']}", where=f"field '{field}'",
                     fix="correct that field and send the request again")
    err.field = field  # type: ignore[attr-defined]
    return err


def api(method: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[None]]:
    """Run a verb, write its JSON result; map ClinagentError to its status and ``to_dict()`` body."""

    @functools.wraps(method)
    async def wrapper(self: ClinagentHandler, *args: Any, **kwargs: Any) -> None:
        try:
            result = await method(self, *args, **kwargs)
        except ClinagentError as exc:
            self.set_status(exc.http_status)
            body = exc.to_dict()
            if hasattr(exc, "field"):
                body["field"] = exc.field
            self.finish(json.dumps(body))
            return
        if not self._finished:
            self.finish(json.dumps(to_jsonable(result)))

    return wrapper


class ClinagentHandler(APIHandler):
    """Base: the manager from the server settings, JSON body parsing."""

    @property
    def manager(self) -> SessionManager:
        return self.settings["clinagent_manager"]

    def body(self, model: type[M]) -> M:
        try:
            raw = json.loads(self.request.body or b"{}")
        except json.JSONDecodeError as exc:
            raise _BodyError(f"the request body is not valid JSON ({exc.msg})",
                             where=f"body, column {exc.colno}",
                             fix="send a JSON object") from exc
        if not isinstance(raw, dict):
            raise _BodyError("the request body must be a JSON object", where="body", fix="send a JSON object")
        try:
            return model.model_validate(raw)
        except ValidationError as exc:
            raise _validation_error(exc) from exc


class SchemaHandler(ClinagentHandler):
    """``GET``: the JSON Schema of every object the API sends or accepts (events included); the sidebar's
    TypeScript types are generated from the same document."""

    @tornado.web.authenticated
    @api
    async def get(self) -> Any:
        return api_json_schema()


class InterpretHandler(ClinagentHandler):
    @tornado.web.authenticated
    @api
    async def post(self) -> Any:
        body = self.body(InterpretBody)
        return await self.manager.interpret(body.request, body.data_path)


class AnswerHandler(ClinagentHandler):
    """``POST {"spec", "question_id", "value"}``: the spec with that question answered (400 on a bad id/value)."""

    @tornado.web.authenticated
    @api
    async def post(self) -> Any:
        body = self.body(AnswerBody)
        answer = getattr(body.spec, "answer", None)
        if answer is None:  # a TaskSpec from before structured questions
            raise _BodyError("this server's TaskSpec has no structured questions to answer",
                             where="field 'question_id'", fix="answer in words and interpret the request again")
        return answer(body.question_id, body.value)


class SessionsHandler(ClinagentHandler):
    @tornado.web.authenticated
    @api
    async def get(self) -> Any:
        return {"sessions": self.manager.list(), "busy": self.manager.runtime("")["busy"]}

    @tornado.web.authenticated
    @api
    async def post(self) -> Any:
        body = self.body(CreateBody)
        self.set_status(201)
        return await self.manager.create(body.request, body.data_path, spec=body.spec,
                                         max_iterations=body.max_iterations,
                                         iteration_minutes=body.iteration_minutes,
                                         data_format=body.data_format, pretrained=body.pretrained,
                                         parallel=body.parallel)


class SessionHandler(ClinagentHandler):
    @tornado.web.authenticated
    @api
    async def get(self, sid: str) -> Any:
        return self.manager.get(sid)


class SpecHandler(ClinagentHandler):
    @tornado.web.authenticated
    @api
    async def post(self, sid: str) -> Any:
        self.manager.load(sid)
        return await self.manager.update_spec(sid, self.body(SpecBody).spec)


class StartHandler(ClinagentHandler):
    @tornado.web.authenticated
    @api
    async def post(self, sid: str) -> Any:
        body = self.body(StartBody)
        self.set_status(202)
        return await self.manager.start(sid, auto_continue=body.auto_continue)


class StopHandler(ClinagentHandler):
    @tornado.web.authenticated
    @api
    async def post(self, sid: str) -> Any:
        return await self.manager.stop(sid)


class AutoContinueHandler(ClinagentHandler):
    """``POST {"auto_continue": bool}``: switch the session's auto-continue (kept in its record) for the loop
    running now and later starts."""

    @tornado.web.authenticated
    @api
    async def post(self, sid: str) -> Any:
        self.manager.load(sid)
        value = self.body(StartBody).auto_continue
        return await self.manager.set_auto_continue(sid, bool(value))


class ParallelHandler(ClinagentHandler):
    """``POST {"parallel": K}``: candidates per round from the next round on (409 while the session runs)."""

    @tornado.web.authenticated
    @api
    async def post(self, sid: str) -> Any:
        self.manager.load(sid)
        return await self.manager.set_parallel(sid, self.body(ParallelBody).parallel)


class ProposalHandler(ClinagentHandler):
    @tornado.web.authenticated
    @api
    async def get(self, sid: str) -> Any:
        return await self.manager.proposal(sid)

    @tornado.web.authenticated
    @api
    async def post(self, sid: str) -> Any:
        body = self.body(ProposalBody)
        if body.action == "edit" and not body.changes:
            raise _validation_error(ValidationError.from_exception_data(
                "ProposalBody", [{"type": "missing", "loc": ("changes",), "input": None}]))
        if body.action == "approve":
            self.set_status(202)
        return await self.manager.act_on_proposal(sid, body.action, body.changes, body.auto_continue)


class AnnotationsHandler(ClinagentHandler):
    @tornado.web.authenticated
    @api
    async def post(self, sid: str) -> Any:
        self.manager.load(sid)
        self.set_status(201)
        return await self.manager.annotate(sid, self.body(Annotation))


class FinishHandler(ClinagentHandler):
    @tornado.web.authenticated
    @api
    async def post(self, sid: str) -> Any:
        return await self.manager.finish(sid)


class ExportHandler(ClinagentHandler):
    @tornado.web.authenticated
    @api
    async def post(self, sid: str) -> Any:
        return await self.manager.export(sid)


class CellsHandler(ClinagentHandler):
    @tornado.web.authenticated
    @api
    async def get(self, sid: str, index: str) -> Any:
        return self.manager.cells(sid, int(index))


class WeightsHandler(ClinagentHandler):
    """``GET``: the pretrained weights cached on this machine (``clinagent weights list``); nothing is fetched."""

    @tornado.web.authenticated
    @api
    async def get(self) -> Any:
        return self.manager.weights()


class EventsHandler(ClinagentHandler):
    """``GET ?after=seq``: the session's events after ``seq`` (catch-up for a late or reconnected sidebar).

    Live events travel on jupyter_server's event bus (``/api/events/subscribe``, schema ``schema_id``)."""

    @tornado.web.authenticated
    @api
    async def get(self, sid: str) -> Any:
        self.manager.load(sid)
        try:
            after = int(self.get_argument("after", "0") or 0)
        except ValueError:
            raise _BodyError("'after' must be an integer (the last seq seen)", where="query 'after'",
                             fix="send ?after=0 for every kept event") from None
        return {"schema_id": SCHEMA_ID, "events": self.manager.events.replay(sid, after),
                "last_seq": self.manager.events.last_seq(sid)}


def handlers(base: str = API_PREFIX) -> list[tuple[str, type[ClinagentHandler]]]:
    """Route table; ``<id>`` is one path segment, ``<n>`` an integer."""
    sid = r"(?P<sid>[^/]+)"
    return [
        (rf"{base}/schema", SchemaHandler),
        (rf"{base}/interpret", InterpretHandler),
        (rf"{base}/spec/answer", AnswerHandler),
        (rf"{base}/weights", WeightsHandler),
        (rf"{base}/sessions", SessionsHandler),
        (rf"{base}/sessions/{sid}", SessionHandler),
        (rf"{base}/sessions/{sid}/spec", SpecHandler),
        (rf"{base}/sessions/{sid}/start", StartHandler),
        (rf"{base}/sessions/{sid}/stop", StopHandler),
        (rf"{base}/sessions/{sid}/auto-continue", AutoContinueHandler),
        (rf"{base}/sessions/{sid}/parallel", ParallelHandler),
        (rf"{base}/sessions/{sid}/proposal", ProposalHandler),
        (rf"{base}/sessions/{sid}/annotations", AnnotationsHandler),
        (rf"{base}/sessions/{sid}/finish", FinishHandler),
        (rf"{base}/sessions/{sid}/export", ExportHandler),
        (rf"{base}/sessions/{sid}/iterations/(?P<index>[0-9]+)/cells", CellsHandler),
        (rf"{base}/sessions/{sid}/events", EventsHandler),
    ]
