"""Annotation sinks: the session file (through the engine) and the server (through the browser bridge)."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from clinagent_lab.records import Annotation, Session
from clinagent_lab.errors import SessionError
from clinagent_lab.widgets.annotate import (
    ASSETS,
    AnnotationSink,
    ServerSink,
    SessionFileSink,
    annotations_path,
    describe,
)

from .widgets_fixtures import binary_recipe, binary_spec, make_session

BOUND = Annotation(kind="group_fpr_bound", value={"confounder": "chest_drain", "group": "1", "max_fpr": 0.1},
                   iteration=1, text="no false alarms on drains")


@pytest.fixture
def session_dir(tmp_path: Path) -> Path:
    return Path(make_session(tmp_path, binary_recipe(), binary_spec()).out_dir)


def test_session_file_sink_writes_into_session_json(session_dir):
    sink = SessionFileSink(session_dir)
    assert isinstance(sink, AnnotationSink)
    got = []
    receipt = sink.submit(BOUND, on_done=got.append)
    assert got == [receipt] and receipt.ok and receipt.via == "session file"
    assert "session.json" in receipt.message and "chest_drain=1 at most 10%" in receipt.message
    raw = json.loads((session_dir / "session.json").read_text())
    assert raw["annotations"][0]["value"] == {"confounder": "chest_drain", "group": "1", "max_fpr": 0.1}
    session = Session.load(session_dir)
    assert session.annotations == [BOUND]
    assert session.iteration(1).annotations == [0]
    assert any(e.kind == "annotation" for e in session.audit)
    note = Annotation(kind="note", text="check the lateral views")
    assert sink.submit(note).ok
    assert [a.kind for a in Session.load(session_dir).annotations] == ["group_fpr_bound", "note"]


def test_session_file_sink_reports_instead_of_raising(session_dir, tmp_path):
    bad = Annotation(kind="note", text="x", iteration=7)
    receipt = SessionFileSink(session_dir).submit(bad)
    assert not receipt.ok and "iteration 7 does not exist" in receipt.message
    missing = SessionFileSink(tmp_path / "nowhere").submit(BOUND)
    assert not missing.ok and "no session found" in missing.message
    assert Session.load(session_dir).annotations == []


def test_session_file_sink_leaves_a_running_session_alone(tmp_path):
    out = Path(make_session(tmp_path, binary_recipe(), binary_spec(), status="running").out_dir)
    before = (out / "session.json").read_text()
    receipt = SessionFileSink(out).submit(BOUND)
    assert not receipt.ok and "running in another process" in receipt.message
    assert (out / "session.json").read_text() == before


def test_server_sink_without_a_browser_falls_back_to_the_session_file(session_dir):
    sink = ServerSink("abc123", fallback=SessionFileSink(session_dir))
    assert sink.path == "clinagent/api/sessions/abc123/annotations" and not sink.widget.frontend
    receipt = sink.submit(BOUND)
    assert receipt.ok and receipt.via == "session file" and "no browser" in receipt.message
    assert Session.load(session_dir).annotations == [BOUND]
    assert sink.widget.message == receipt.message and sink.widget.ok
    lonely = ServerSink("abc123").submit(BOUND)
    assert not lonely.ok and "Not saved" in lonely.message


def _sent(sink: ServerSink, monkeypatch) -> list[dict]:
    sent: list[dict] = []
    monkeypatch.setattr(sink.widget, "send", lambda content, buffers=None: sent.append(content))
    sink.widget.frontend = True  # what the browser sets when it renders the bridge
    return sent


def test_server_sink_posts_through_the_browser_and_confirms(session_dir, monkeypatch):
    sink = ServerSink("abc123", fallback=SessionFileSink(session_dir))
    sent = _sent(sink, monkeypatch)
    got = []
    assert sink.submit(BOUND, on_done=got.append) is None  # pending until the browser answers
    [msg] = sent
    assert msg["type"] == "post" and msg["path"] == "clinagent/api/sessions/abc123/annotations"
    assert Annotation.model_validate(msg["body"]) == BOUND  # the handler validates the body as an Annotation
    assert msg["id"] in sink.pending and "Sending" in sink.widget.message
    sink.widget._handle_custom_msg({"type": "result", "id": msg["id"], "ok": True, "status": 201,
                                    "body": msg["body"]}, [])
    [receipt] = got
    assert receipt.ok and receipt.via == "server" and receipt.detail["status"] == 201
    assert "Sent to session abc123" in sink.widget.message and sink.pending == {}
    assert Session.load(session_dir).annotations == []  # the server, not the file, recorded it


def test_server_sink_reports_a_refusal_and_falls_back_on_404(session_dir, monkeypatch):
    sink = ServerSink("abc123", fallback=SessionFileSink(session_dir))
    sent = _sent(sink, monkeypatch)
    got = []
    sink.submit(BOUND, on_done=got.append)
    busy = {"error": "BusyError", "message": "cannot add an annotation while session 'abc123' is running."}
    sink.widget._handle_custom_msg({"type": "result", "id": sent[0]["id"], "ok": False, "status": 409,
                                    "body": busy}, [])
    assert not got[0].ok and "while session 'abc123' is running" in got[0].message and not sink.widget.ok
    assert Session.load(session_dir).annotations == []
    sink.submit(BOUND, on_done=got.append)
    sink.widget._handle_custom_msg({"type": "result", "id": sent[1]["id"], "ok": False, "status": 404,
                                    "body": {}}, [])
    assert got[1].ok and got[1].via == "session file"
    assert Session.load(session_dir).annotations == [BOUND]
    sink.widget._handle_custom_msg({"type": "result", "id": 999, "ok": True, "status": 201}, [])  # unknown id
    assert len(got) == 2


def test_session_ids_are_checked():
    assert annotations_path("a-b_1") == "clinagent/api/sessions/a-b_1/annotations"
    with pytest.raises(SessionError, match="not valid"):
        ServerSink("../../api/contents")


@pytest.mark.parametrize("annotation, text", [
    (Annotation(kind="operating_point", value={"sensitivity": 0.9}), "at least sensitivity 90%"),
    (Annotation(kind="operating_point", value={"threshold": 0.25, "class": "mel"}), "operate at threshold 0.250 for mel"),
    (Annotation(kind="class_priority", value={"class": "mel", "weight": 3}), "class mel weighted x3"),
    (Annotation(kind="note", text="hello"), "note: hello"),
])
def test_describe(annotation, text):
    assert describe(annotation) == text


NODE = shutil.which("node")

_JS_CHECKS = r"""
import * as b from "./bridge.mjs";
const assert = (cond, what) => { if (!cond) { console.error("FAILED: " + what); process.exit(1); } };
const doc = {
  cookie: "other=1; _xsrf=2%7Cabc%3D%3D%7C9; theme=dark",
  body: { dataset: { baseUrl: "/fallback/" } },
  getElementById: (id) => id === "jupyter-config-data"
    ? { textContent: JSON.stringify({ baseUrl: "/user/ana/", token: "tok" }) } : null,
};
assert(b.xsrfFromCookie(doc.cookie) === "2|abc==|9", "xsrf cookie decoded");
assert(b.xsrfFromCookie("") === "", "no cookie");
assert(b.baseUrl(doc) === "/user/ana/", "base url from page config");
assert(b.baseUrl({ body: { dataset: { baseUrl: "/lab" } }, getElementById: () => null }) === "/lab/", "body dataset");
assert(b.baseUrl({ body: { dataset: {} }, getElementById: () => null }) === "/", "default /");
let refused = false;
try { b.buildRequest({ base: "/", path: "api/contents/x", body: {} }); } catch (e) { refused = true; }
assert(refused, "only clinagent/api paths");
const calls = [];
const fetchImpl = async (url, init) => { calls.push({ url, init });
  return { ok: true, status: 201, json: async () => ({ kind: "note" }) }; };
const res = await b.postAnnotation({ path: "clinagent/api/sessions/s1/annotations", body: { kind: "note", text: "x" },
                                     doc, fetchImpl });
assert(res.ok && res.status === 201 && res.body.kind === "note", "result passed back");
const [call] = calls;
assert(call.url === "/user/ana/clinagent/api/sessions/s1/annotations", "url " + call.url);
assert(call.init.method === "POST" && call.init.credentials === "same-origin", "method and credentials");
assert(call.init.headers["X-XSRFToken"] === "2|abc==|9", "xsrf header");
assert(call.init.headers["Authorization"] === "token tok", "token header");
assert(JSON.parse(call.init.body).text === "x", "json body");
const down = await b.postAnnotation({ path: "clinagent/api/sessions/s1/annotations", body: {}, doc,
                                      fetchImpl: async () => { throw new Error("offline"); } });
assert(!down.ok && down.status === 0 && down.body.message.includes("offline"), "network error reported");
const bad = await b.postAnnotation({ path: "clinagent/api/sessions/s1/annotations", body: {}, doc,
  fetchImpl: async () => ({ ok: false, status: 409, json: async () => ({ message: "busy" }) }) });
assert(!bad.ok && bad.status === 409 && bad.body.message === "busy", "refusal passed back");
console.log("ok");
"""


@pytest.mark.skipif(NODE is None, reason="needs node to run the bridge's JavaScript")
def test_bridge_javascript_posts_with_xsrf_and_base_url(tmp_path):
    shutil.copy(ASSETS / "bridge.js", tmp_path / "bridge.mjs")
    (tmp_path / "check.mjs").write_text(_JS_CHECKS)
    out = subprocess.run([NODE, "check.mjs"], cwd=tmp_path, capture_output=True, text=True, timeout=60,
                         check=False)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"


@pytest.mark.skipif(NODE is None, reason="needs node to check the JavaScript")
@pytest.mark.parametrize("name", ["bridge.js", "roc_plot.js"])
def test_assets_are_valid_modules(tmp_path, name):
    shutil.copy(ASSETS / name, tmp_path / "m.mjs")
    out = subprocess.run([NODE, "--check", "m.mjs"], cwd=tmp_path, capture_output=True, text=True, timeout=60,
                         check=False)
    assert out.returncode == 0, out.stderr
