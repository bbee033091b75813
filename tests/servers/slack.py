"""A local Slack incoming-webhook receiver over real HTTP: scripted answers per path, recorded payloads."""

from __future__ import annotations

import json
import threading
import time
from collections import defaultdict, deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass(frozen=True)
class Answer:
    """One scripted reply; the receiver answers 200 "ok" once a path's script is used up."""

    status: int = 200
    body: str = "ok"
    headers: dict[str, str] = field(default_factory=dict)
    record: bool = False  # count the payload as delivered even though the answer is an error
    delay: float = 0.0  # seconds the receiver takes before answering (a slow Slack)


OK = Answer()
RATE_LIMITED = Answer(429, "rate_limited", {"Retry-After": "1"})
SERVER_ERROR = Answer(500, "internal_error")
NO_SERVICE = Answer(404, "no_service")
ARCHIVED = Answer(410, "channel_is_archived")
INVALID = Answer(400, "invalid_payload")


class SlackReceiver:
    """`receiver.script("/hook/a", RATE_LIMITED)`; `receiver.url("/hook/a")`; `receiver.payloads["/hook/a"]`."""

    def __init__(self) -> None:
        self.scripts: dict[str, deque[Answer]] = defaultdict(deque)
        self.payloads: dict[str, list[dict[str, Any]]] = defaultdict(list)
        self.requests: dict[str, list[float]] = defaultdict(list)  # monotonic arrival times per path
        self._changed = threading.Condition()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self._server.owner = self  # type: ignore[attr-defined]
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        daemon=True)

    def __enter__(self) -> SlackReceiver:
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._server.shutdown()
        self._server.server_close()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}{path}"

    def script(self, path: str, *answers: Answer) -> str:
        with self._changed:
            self.scripts[path].extend(answers)
        return self.url(path)

    def answer(self, path: str, payload: dict[str, Any]) -> Answer:
        with self._changed:
            self.requests[path].append(time.monotonic())
            answer = self.scripts[path].popleft() if self.scripts[path] else OK
            if answer.status == 200 or answer.record:
                self.payloads[path].append(payload)
            self._changed.notify_all()
        return answer

    def wait_for(self, path: str, count: int, timeout: float = 5.0) -> list[dict[str, Any]]:
        """Block until `count` payloads reached `path` (or fail after `timeout`)."""
        with self._changed:
            if not self._changed.wait_for(lambda: len(self.payloads[path]) >= count, timeout):
                raise AssertionError(f"{path}: {len(self.payloads[path])} payloads, expected {count}")
            return list(self.payloads[path])


class _Handler(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        owner: SlackReceiver = self.server.owner  # type: ignore[attr-defined]
        length = int(self.headers.get("Content-Length", "0"))
        try:
            payload = json.loads(self.rfile.read(length) or b"null")
        except ValueError:
            payload = None
        answer = owner.answer(self.path, payload) if isinstance(payload, dict) else Answer(400, "invalid_payload")
        if answer.delay:
            time.sleep(answer.delay)  # the receiver being slow on purpose, in its own thread
        body = answer.body.encode()
        try:
            self.send_response(answer.status)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(body)))
            for name, value in answer.headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up waiting (a time-out test): nothing left to answer

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: tests read the recorded payloads instead."""
