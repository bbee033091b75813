"""A real HTTP feed server on loopback for tests: routes with bodies, statuses, validators and delays."""

from __future__ import annotations

import hashlib
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Route:
    body: bytes = b""
    status: int = 200
    content_type: str = "application/rss+xml; charset=utf-8"
    headers: dict[str, str] = field(default_factory=dict)
    conditional: bool = True  # answer 304 to a matching If-None-Match / If-Modified-Since
    delay: float = 0.0  # seconds before answering (the server's release event cuts it short)
    drip: float = 0.0  # seconds between single bytes of the body
    stream: Callable[[], Iterator[bytes]] | None = None  # generated body, sent chunked (never held in memory)


class FeedServer:
    """`server.route("/a.xml", Route(body=...))`; `server.url("/a.xml")`; counters per path."""

    def __init__(self) -> None:
        self.routes: dict[str, Route] = {}
        self.requests: Counter[str] = Counter()
        self.full: Counter[str] = Counter()
        self.not_modified: Counter[str] = Counter()
        self.user_agents: list[str] = []
        self.release = threading.Event()
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self._server.owner = self  # type: ignore[attr-defined]
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        daemon=True)  # a short poll: shutdown() returns in 50 ms, not 500

    def __enter__(self) -> FeedServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.release.set()
        self._server.shutdown()
        self._server.server_close()

    def route(self, path: str, route: Route) -> str:
        with self._lock:
            self.routes[path] = route
        return self.url(path)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}{path}"


class _Handler(BaseHTTPRequestHandler):
    """Answers from the owning FeedServer's routes."""

    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet."""

    def do_GET(self) -> None:
        server: FeedServer = self.server.owner  # type: ignore[attr-defined]
        with server._lock:
            server.requests[self.path] += 1
            server.user_agents.append(self.headers.get("User-Agent", ""))
            route = server.routes.get(self.path)
        if route is None:
            route = Route(body=b"not found", status=404, content_type="text/plain")
        if route.delay and server.release.wait(route.delay):
            return
        etag = '"' + hashlib.md5(route.body).hexdigest() + '"'
        if route.conditional and route.status == 200 and self.headers.get("If-None-Match") == etag:
            with server._lock:
                server.not_modified[self.path] += 1
            self.send_response(304)
            self.send_header("ETag", etag)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        if route.stream is not None:
            self._send_stream(route)
            return
        self._send(route, etag)

    def _send_stream(self, route: Route) -> None:
        """A generated body in chunked encoding; stops quietly when the client hangs up (as it should)."""
        server: FeedServer = self.server.owner  # type: ignore[attr-defined]
        self.send_response(route.status)
        self.send_header("Content-Type", route.content_type)
        self.send_header("Transfer-Encoding", "chunked")
        for name, value in route.headers.items():
            self.send_header(name, value)
        self.end_headers()
        assert route.stream is not None
        try:
            for chunk in route.stream():
                if server.release.is_set():
                    return
                self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            self.wfile.write(b"0\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    def _send(self, route: Route, etag: str) -> None:
        server: FeedServer = self.server.owner  # type: ignore[attr-defined]
        self.send_response(route.status)
        self.send_header("Content-Type", route.content_type)
        self.send_header("Content-Length", str(len(route.body)))
        if route.conditional and route.status == 200:
            self.send_header("ETag", etag)
        for name, value in route.headers.items():
            self.send_header(name, value)
        self.end_headers()
        if route.status == 200:
            with server._lock:
                server.full[self.path] += 1
        if not route.drip:
            self.wfile.write(route.body)
            return
        try:
            for byte in route.body:
                if server.release.wait(route.drip):
                    return
                self.wfile.write(bytes([byte]))
                self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True  # the client gave up on the drip, as it should


def rss(*items: dict[str, str], title: str = "Test feed") -> bytes:
    """A small RSS 2.0 document; each item dict has title, link, guid, description, pubDate (all optional)."""
    from xml.sax.saxutils import escape

    parts = [f'<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel><title>{escape(title)}</title>']
    for item in items:
        parts.append("<item>" + "".join(f"<{k}>{escape(v)}</{k}>" for k, v in item.items()) + "</item>")
    parts.append("</channel></rss>")
    return "".join(parts).encode()
