"""A local OpenAI-compatible chat-completions server with scripted replies, for tests.

It listens on 127.0.0.1 (a free port), serves ``POST /v1/chat/completions`` in the OpenAI format (with
``usage``), and answers each request with the next scripted :class:`Reply`: a JSON content, raw text
(e.g. invalid JSON), an HTTP error status (429, 500), or any of those after a delay. Every request body is
recorded in :attr:`FakeLLMServer.requests` so tests can inspect exactly what left the process.

Reach it through litellm's real code path::

    with FakeLLMServer() as server:
        server.push_json({"answer": 42})
        litellm.completion(model="openai/fake-model", api_base=server.api_base, messages=[...])

An empty queue answers 500 ("no scripted reply"), so a test that sends more requests than it scripted fails
loudly instead of hanging.
"""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

__all__ = ["Reply", "FakeLLMServer"]


@dataclass
class Reply:
    """One scripted answer.

    Args:
        content: the assistant message content (already a string; JSON or not).
        status: HTTP status; anything but 200 returns an OpenAI-style error body.
        delay_s: seconds to wait before answering (a slow server).
        prompt_tokens: reported in ``usage``.
        completion_tokens: reported in ``usage``.
    """

    content: str = ""
    status: int = 200
    delay_s: float = 0.0
    prompt_tokens: int = 100
    completion_tokens: int = 20


class _Handler(BaseHTTPRequestHandler):
    server: _Server  # type: ignore[assignment]

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - silence stderr logging
        return

    def do_POST(self) -> None:  # noqa: N802 - http.server naming
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length).decode("utf-8") if length else ""
        try:
            body = json.loads(raw) if raw else {}
        except json.JSONDecodeError:
            body = {"_unparsed": raw}
        owner = self.server.owner
        owner._record(self.path, body, dict(self.headers))
        if not self.path.rstrip("/").endswith("/chat/completions"):
            self._send(404, {"error": {"message": f"unknown path {self.path}", "type": "not_found"}})
            return
        reply = owner._next_reply()
        if reply.delay_s:
            time.sleep(reply.delay_s)
        if reply.status != 200:
            kind = "rate_limit_error" if reply.status == 429 else "server_error"
            self._send(reply.status, {"error": {"message": reply.content or f"scripted {reply.status}",
                                                "type": kind, "code": str(reply.status)}})
            return
        self._send(200, owner._completion(body, reply))

    def _send(self, status: int, payload: dict[str, Any]) -> None:
        data = json.dumps(payload).encode("utf-8")
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):  # the client timed out and left
            pass


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    owner: FakeLLMServer


class FakeLLMServer:
    """Threaded fake of an OpenAI-compatible endpoint. Use as a context manager or call start/stop."""

    def __init__(self, model: str = "fake-model") -> None:
        self.model = model
        self.requests: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []
        self.paths: list[str] = []
        self._replies: deque[Reply] = deque()
        self._lock = threading.Lock()
        self._httpd: _Server | None = None
        self._thread: threading.Thread | None = None
        self._counter = 0

    # --- scripting ---------------------------------------------------------------------------------
    def push(self, reply: Reply) -> FakeLLMServer:
        with self._lock:
            self._replies.append(reply)
        return self

    def push_json(self, obj: Any, **kwargs: Any) -> FakeLLMServer:
        """Queue a reply whose content is ``json.dumps(obj)``."""
        return self.push(Reply(content=json.dumps(obj), **kwargs))

    def push_text(self, text: str, **kwargs: Any) -> FakeLLMServer:
        """Queue a reply with raw content (e.g. ``"this is not json"``)."""
        return self.push(Reply(content=text, **kwargs))

    def push_status(self, status: int, message: str = "") -> FakeLLMServer:
        """Queue an HTTP error (429 rate limit, 500 server error...)."""
        return self.push(Reply(content=message, status=status))

    def push_slow(self, delay_s: float, obj: Any) -> FakeLLMServer:
        """Queue a JSON reply sent only after ``delay_s`` seconds."""
        return self.push(Reply(content=json.dumps(obj), delay_s=delay_s))

    @property
    def pending(self) -> int:
        with self._lock:
            return len(self._replies)

    # --- inspection --------------------------------------------------------------------------------
    def request_texts(self) -> list[str]:
        """Every recorded request body as its JSON text."""
        with self._lock:
            return [json.dumps(b) for b in self.requests]

    def last_user_message(self, index: int = -1) -> str:
        """Concatenated message contents of request ``index``."""
        with self._lock:
            body = self.requests[index]
        return "\n".join(str(m.get("content", "")) for m in body.get("messages", []))

    # --- lifecycle ---------------------------------------------------------------------------------
    @property
    def port(self) -> int:
        assert self._httpd is not None, "server not started"
        return self._httpd.server_address[1]

    @property
    def api_base(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def start(self) -> FakeLLMServer:
        self._httpd = _Server(("127.0.0.1", 0), _Handler)
        self._httpd.owner = self
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="fake-llm", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None

    def __enter__(self) -> FakeLLMServer:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    # --- internals ---------------------------------------------------------------------------------
    def _record(self, path: str, body: dict[str, Any], headers: dict[str, str]) -> None:
        with self._lock:
            self.paths.append(path)
            self.requests.append(body)
            self.headers.append(headers)

    def _next_reply(self) -> Reply:
        with self._lock:
            if self._replies:
                return self._replies.popleft()
        return Reply(content="no scripted reply left", status=500)

    def _completion(self, body: dict[str, Any], reply: Reply) -> dict[str, Any]:
        with self._lock:
            self._counter += 1
            n = self._counter
        return {
            "id": f"chatcmpl-fake-{n}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body.get("model", self.model),
            "choices": [{"index": 0, "finish_reason": "stop",
                         "message": {"role": "assistant", "content": reply.content}}],
            "usage": {"prompt_tokens": reply.prompt_tokens, "completion_tokens": reply.completion_tokens,
                      "total_tokens": reply.prompt_tokens + reply.completion_tokens},
        }
