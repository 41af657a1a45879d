"""Where a clinician's annotations go: the session file, or the Jupyter server from the browser.

Two sinks implement :class:`AnnotationSink`:

* :class:`SessionFileSink` appends the annotation to ``<session>/session.json`` through
  ``Engine.open(session_dir).annotate(...)``. For headless or offline use (no Jupyter server running the
  session). It refuses a session whose status is ``running``: the process running it owns the file.
* :class:`ServerSink` sends it to ``POST /clinagent/api/sessions/<id>/annotations`` *from the browser*. The
  kernel cannot authenticate to the Jupyter server itself, the page can: a tiny anywidget,
  :class:`AnnotationBridge`, receives the annotation from the kernel and does the ``fetch`` with the
  ``_xsrf`` cookie as ``X-XSRFToken``, ``credentials: "same-origin"`` and the base URL from the page config
  (``/`` by default), then reports the answer back. The server validates the body as an ``Annotation``, so
  the server's engine (which holds the session in memory) records it and the next proposal sees it. When no
  browser shows the bridge (a kernel without a frontend), or the endpoint does not exist (404: the server
  extension is not loaded), the annotation goes to the fallback sink, normally a :class:`SessionFileSink`.

Every submission ends with a :class:`Receipt` (passed to ``on_done``), which the widgets show as a
confirmation line.
"""

from __future__ import annotations

import html
import itertools
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import anywidget
import traitlets

from ..errors import ClinagentError, SessionError
from ..records import SESSION_FILE, Annotation, Session

__all__ = [
    "ASSETS",
    "AnnotationBridge",
    "AnnotationSink",
    "Receipt",
    "ServerSink",
    "SessionFileSink",
    "Submitter",
    "annotations_path",
    "describe",
    "receipt_html",
    "sink_widgets",
]

ASSETS = Path(__file__).with_name("assets")
_SESSION_ID = re.compile(r"^[A-Za-z0-9_.-]+$")

Callback = Callable[["Receipt"], None]


@dataclass(frozen=True)
class Receipt:
    """The outcome of one submission: shown to the clinician as a confirmation (or the reason it failed)."""

    ok: bool
    message: str
    via: str
    annotation: Annotation
    detail: dict[str, Any] = field(default_factory=dict)


@runtime_checkable
class AnnotationSink(Protocol):
    """Something that records annotations. ``submit`` may finish later; ``on_done`` gets the receipt."""

    def submit(self, annotation: Annotation, on_done: Callback | None = None) -> Receipt | None: ...


def describe(annotation: Annotation) -> str:
    """One line saying what an annotation asks for.

    Example:
        >>> describe(Annotation(kind="group_fpr_bound", value={"confounder": "chest_drain", "group": "1",
        ...                                                     "max_fpr": 0.1}))
        'false positives with chest_drain=1 at most 10%'
    """
    v = annotation.value
    if annotation.kind == "operating_point":
        key = next((k for k in ("sensitivity", "specificity", "threshold") if k in v), None)
        where = f" for {v['class']}" if "class" in v else ""
        if key == "threshold":
            return f"operate at threshold {float(v[key]):.3f}{where}"
        return f"at least {key} {float(v[key]):.0%}{where}" if key else "operating point"
    if annotation.kind == "group_fpr_bound":
        return f"false positives with {v.get('confounder')}={v.get('group')} at most {float(v.get('max_fpr')):.0%}"
    if annotation.kind == "class_priority":
        return f"class {v.get('class')} weighted x{float(v.get('weight')):g}"
    return f"note: {annotation.text}"


def receipt_html(receipt: Receipt) -> str:
    """The confirmation line a widget shows for a receipt (HTML-escaped message)."""

    mark, color = ("&#10003;", "var(--jp-success-color1, #2e7d32)") if receipt.ok else \
        ("&#10007;", "var(--jp-error-color1, #c62828)")
    return f'<span style="color:{color}">{mark} {html.escape(receipt.message)}</span>'


def sink_widgets(sink: AnnotationSink | None) -> list[Any]:
    """The sink's own widget (the server bridge), as a list to add to a box; empty for file sinks."""
    widget = getattr(sink, "widget", None)
    return [widget] if widget is not None else []


class Submitter:
    """Mixin for the views: keep every annotation, hand it to the sink, show the receipt in ``status``."""

    annotations: list[Annotation]
    sink: AnnotationSink | None
    status: Any  # an ipywidgets.HTML

    def _submit(self, annotation: Annotation) -> Annotation:
        self.annotations.append(annotation)
        if self.sink is None:
            self.status.value = "Recorded here only (no session to send it to)."
        else:
            self.sink.submit(annotation, on_done=self._show_receipt)
        return annotation

    def _show_receipt(self, receipt: Receipt) -> None:
        self.status.value = receipt_html(receipt)


def _finish(receipt: Receipt, on_done: Callback | None) -> Receipt:
    if on_done is not None:
        on_done(receipt)
    return receipt


# --------------------------------------------------------------------------------------------- session file


class SessionFileSink:
    """Append annotations to a session folder's ``session.json`` (atomically, through the engine).

    Args:
        session_dir: the session folder (holds ``session.json``).
    """

    via = "session file"

    def __init__(self, session_dir: str | Path) -> None:
        self.session_dir = Path(session_dir)

    def __repr__(self) -> str:
        return f"SessionFileSink({str(self.session_dir)!r})"

    def _check_not_running(self) -> None:
        if Session.load(self.session_dir).status == "running":
            raise SessionError("the session is running in another process, which owns its file",
                               where=str(self.session_dir / SESSION_FILE),
                               fix="annotate from the JupyterLab sidebar session (show_results(..., "
                                   "session_id=...)) or once the run has stopped")

    def submit(self, annotation: Annotation, on_done: Callback | None = None) -> Receipt:
        """Record ``annotation`` now; the receipt says where, or why not."""
        try:
            self._check_not_running()
            session = Session.load(self.session_dir)
            session.annotate(annotation)
            session.save()
        except ClinagentError as exc:
            return _finish(Receipt(False, f"Not saved: {exc.message}", self.via, annotation), on_done)
        text = f"Saved to {self.session_dir / SESSION_FILE}: {describe(annotation)}"
        return _finish(Receipt(True, text, self.via, annotation), on_done)


# ------------------------------------------------------------------------------------------ server (browser)


def annotations_path(session_id: str) -> str:
    """The server path (relative to the base URL) that takes a session's annotations."""
    if not _SESSION_ID.match(session_id or ""):
        raise SessionError(f"session id {session_id!r} is not valid", where="argument 'session_id'",
                           fix="use the id shown in the JupyterLab sidebar (letters, digits, '-', '_')")
    return f"clinagent/api/sessions/{session_id}/annotations"


class AnnotationBridge(anywidget.AnyWidget):
    """Browser half of :class:`ServerSink`: posts what the kernel hands it and shows the last confirmation."""

    _esm = ASSETS / "bridge.js"
    _css = ASSETS / "widgets.css"
    message = traitlets.Unicode("").tag(sync=True)
    ok = traitlets.Bool(True).tag(sync=True)
    frontend = traitlets.Bool(False, help="set by the browser when a view renders").tag(sync=True)

    def post(self, request_id: int, path: str, body: dict[str, Any]) -> None:
        self.send({"type": "post", "id": request_id, "path": path, "body": body})


class ServerSink:
    """Send annotations to the Jupyter server's clinagent endpoint through the browser.

    Args:
        session_id: the session's id on the server.
        fallback: where annotations go when no browser shows the bridge or the endpoint is missing
            (typically ``SessionFileSink(session_dir)``); None: report the failure instead.
    """

    via = "server"

    def __init__(self, session_id: str, *, fallback: AnnotationSink | None = None) -> None:
        self.session_id = session_id
        self.path = annotations_path(session_id)
        self.fallback = fallback
        self.widget = AnnotationBridge(message=f"Annotations go to session {session_id} on this Jupyter server.")
        self.pending: dict[int, tuple[Annotation, Callback | None]] = {}
        self._ids = itertools.count(1)
        self.widget.on_msg(self._on_message)

    def __repr__(self) -> str:
        return f"ServerSink({self.session_id!r}, fallback={self.fallback!r})"

    def submit(self, annotation: Annotation, on_done: Callback | None = None) -> Receipt | None:
        """Hand ``annotation`` to the browser (receipt later, through ``on_done``), or to the fallback."""
        if not self.widget.frontend:
            return self._fall_back(annotation, on_done, "no browser is showing this widget")
        request_id = next(self._ids)
        self.pending[request_id] = (annotation, on_done)
        self.widget.post(request_id, self.path, annotation.model_dump(mode="json"))
        self._show(True, f"Sending: {describe(annotation)} ...")
        return None

    def _fall_back(self, annotation: Annotation, on_done: Callback | None, why: str) -> Receipt:
        if self.fallback is None:
            receipt = Receipt(False, f"Not saved: {why}, and there is no session folder to write to", self.via,
                              annotation)
            self._show(False, receipt.message)
            return _finish(receipt, on_done)
        receipt = self.fallback.submit(annotation)
        receipt = Receipt(receipt.ok, f"{receipt.message} ({why})", receipt.via, annotation, receipt.detail)
        self._show(receipt.ok, receipt.message)
        return _finish(receipt, on_done)

    def _on_message(self, _widget: Any, content: dict[str, Any], _buffers: Any) -> None:
        if not isinstance(content, dict) or content.get("type") != "result":
            return
        entry = self.pending.pop(content.get("id"), None)
        if entry is None:
            return
        annotation, on_done = entry
        status = int(content.get("status") or 0)
        body = content.get("body") if isinstance(content.get("body"), dict) else {}
        if status == 404 and self.fallback is not None:  # extension not loaded, or another sessions root
            self._fall_back(annotation, on_done, f"the server does not know session {self.session_id}")
            return
        if content.get("ok"):
            receipt = Receipt(True, f"Sent to session {self.session_id}: {describe(annotation)}", self.via,
                              annotation, {"status": status, "body": body})
        else:
            reason = body.get("message") or body.get("what") or f"HTTP {status}"
            receipt = Receipt(False, f"Not saved by the server: {reason}", self.via, annotation,
                              {"status": status, "body": body})
        self._show(receipt.ok, receipt.message)
        _finish(receipt, on_done)

    def _show(self, ok: bool, message: str) -> None:
        self.widget.ok, self.widget.message = ok, message
