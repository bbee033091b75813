"""A stand-in Telegram Bot API server over real HTTP on loopback, for tests and bench/broadcast.

Answers getMe, getUpdates (updates pushed by the test), sendMessage, sendPhoto, setMyCommands,
answerCallbackQuery, editMessageText, setWebhook and deleteWebhook (recording the URL and secret token in
`webhook`). Parses HTML like Telegram (strict: unknown tags, bare
`<` or `&` are a 400) and records the visible text. Can refuse: 429 with parameters.retry_after (injected, or by
enforcing rates: N per second in all and 1 per second per private chat), 403 for blocked users, 400 with
migrate_to_chat_id for migrated groups.
"""

from __future__ import annotations

import email.parser
import email.policy
import html
import json
import re
import threading
import time
import urllib.parse
from collections import Counter, deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

TOKEN = "123456:TEST-token"
TAGS = {"b", "strong", "i", "em", "u", "ins", "s", "strike", "del", "code", "pre", "a", "tg-spoiler", "blockquote"}
TOKEN_RE = re.compile(r"<(/?)([a-z-]+)(\s[^<>]*)?>|&(lt|gt|amp|quot|#\d+|#x[0-9a-fA-F]+);|[<>&]")


class ParseError(ValueError):
    pass


def visible_text(markup: str) -> str:
    """The text a Telegram client shows for an HTML-parse-mode message; raises `ParseError` like Telegram."""
    out: list[str] = []
    stack: list[str] = []
    pos = 0
    for match in TOKEN_RE.finditer(markup):
        out.append(markup[pos:match.start()])
        pos = match.end()
        closing, tag, entity = match[1], match[2], match[4]
        if tag:
            if tag not in TAGS:
                raise ParseError(f"Unsupported start tag \"{tag}\"")
            if closing:
                if not stack or stack.pop() != tag:
                    raise ParseError(f"Unexpected end tag \"{tag}\"")
            else:
                stack.append(tag)
        elif entity:
            out.append(html.unescape(f"&{entity};"))
        else:
            raise ParseError(f"Can't parse entities: unexpected {match[0]!r}")
    if stack:
        raise ParseError(f"Can't find end tag corresponding to start tag \"{stack[-1]}\"")
    out.append(markup[pos:])
    return "".join(out)


def tg_len(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


@dataclass
class Sent:
    method: str
    chat_id: str
    text: str  # visible text (message text or caption)
    markup: str
    message_id: int
    disable_notification: bool = False
    reply_to: int | None = None
    photo: str | None = None  # "upload" or the file_id reused
    at: float = 0.0


@dataclass
class Failure:
    status: int
    description: str
    parameters: dict[str, Any] | None = None


@dataclass
class Rules:
    global_per_s: int = 0  # 0: unlimited
    private_per_s: int = 0  # 0: unlimited (Telegram: 1)
    retry_after: int = 1


@dataclass
class BotApi:
    """`with BotApi() as api:` then point the bot at `api.base_url`; inspect `api.sent`."""

    rules: Rules = field(default_factory=Rules)
    sent: list[Sent] = field(default_factory=list)
    calls: Counter[str] = field(default_factory=Counter)
    commands: list[dict[str, str]] = field(default_factory=list)
    refused: Counter[int] = field(default_factory=Counter)
    refusals: list[tuple[int, float, int]] = field(default_factory=list)  # (status, when, accepted so far)
    blocked: set[str] = field(default_factory=set)
    migrated: dict[str, str] = field(default_factory=dict)
    failures: dict[str, deque[Failure]] = field(default_factory=dict)
    webhook: dict[str, str] = field(default_factory=dict)  # setWebhook's url and secret_token; {} once deleted

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._updates: list[dict[str, Any]] = []
        self._new_update = threading.Condition(self._lock)
        self._sent_event = threading.Condition(self._lock)
        self._next_id = 1
        self._window: deque[float] = deque()
        self._last_by_chat: dict[str, float] = {}
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self), bind_and_activate=False)
        self._server.request_queue_size = 256
        self._server.daemon_threads = True
        self._server.server_bind()
        self._server.server_activate()
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True)

    def __enter__(self) -> BotApi:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        with self._lock:
            self._new_update.notify_all()
        self._server.shutdown()
        self._server.server_close()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/bot"

    # --- what tests do ---------------------------------------------------------------------------------
    def push_command(self, chat_id: int, text: str, user_id: int | None = None, chat_type: str = "private") -> None:
        """A user sends `text` (e.g. "/start") in `chat_id`."""
        self._push(self.command_update(chat_id, text, user_id, chat_type))

    def command_update(self, chat_id: int, text: str, user_id: int | None = None,
                       chat_type: str = "private") -> dict[str, Any]:
        """The Update (without update_id) for a user sending `text` in `chat_id`, as getUpdates or a webhook has it."""
        command = text.split()[0] if text.startswith("/") else ""
        message = {"message_id": self._take_id(), "date": int(time.time()), "text": text,
                   "chat": {"id": chat_id, "type": chat_type, **({"title": "group"} if chat_id < 0 else {})},
                   "from": {"id": user_id or chat_id, "is_bot": False, "first_name": "Trader"}}
        if command:
            message["entities"] = [{"type": "bot_command", "offset": 0, "length": len(command)}]
        return {"message": message}

    def push_callback(self, chat_id: int, data: str, message_id: int = 1) -> None:
        user = {"id": chat_id, "is_bot": False, "first_name": "Trader"}
        message = {"message_id": message_id, "date": int(time.time()), "text": "filters",
                   "chat": {"id": chat_id, "type": "private"}, "from": user}
        self._push({"callback_query": {"id": str(self._take_id()), "from": user, "chat_instance": "1",
                                       "data": data, "message": message}})

    def fail(self, chat_id: str, status: int, description: str, **parameters: Any) -> None:
        """The next send to `chat_id` is refused this way (queue several for several refusals)."""
        with self._lock:
            self.failures.setdefault(chat_id, deque()).append(Failure(status, description, parameters or None))

    def wait_sent(self, count: int, timeout: float = 5.0) -> list[Sent]:
        """Block until at least `count` messages were accepted (or the deadline passes)."""
        with self._sent_event:
            self._sent_event.wait_for(lambda: len(self.sent) >= count, timeout)
            return list(self.sent)

    def to(self, chat_id: str | int) -> list[Sent]:
        with self._lock:
            return [s for s in self.sent if s.chat_id == str(chat_id)]

    # --- internals -------------------------------------------------------------------------------------
    def _take_id(self) -> int:
        with self._lock:
            self._next_id += 1
            return self._next_id

    def _push(self, update: dict[str, Any]) -> None:
        with self._lock:
            update["update_id"] = len(self._updates) + 1
            self._updates.append(update)
            self._new_update.notify_all()

    def get_updates(self, params: dict[str, Any]) -> list[dict[str, Any]]:
        offset, timeout = int(params.get("offset") or 0), float(params.get("timeout") or 0)
        deadline = time.monotonic() + min(timeout, 0.5)
        with self._new_update:
            while True:
                ready = [u for u in self._updates if u["update_id"] >= offset]
                remaining = deadline - time.monotonic()
                if ready or remaining <= 0:
                    return ready
                self._new_update.wait(remaining)

    def refusal(self, chat_id: str) -> Failure | None:
        """Why a send to `chat_id` is refused now, if it is; records the send slot when it is not."""
        with self._lock:
            queued = self.failures.get(chat_id)
            if queued:
                return queued.popleft()
            if chat_id in self.blocked:
                return Failure(403, "Forbidden: bot was blocked by the user")
            if chat_id in self.migrated:
                return Failure(400, "Bad Request: group chat was upgraded to a supergroup chat",
                               {"migrate_to_chat_id": int(self.migrated[chat_id])})
            return self._flood(chat_id, time.monotonic())

    def _flood(self, chat_id: str, now: float) -> Failure | None:
        rules = self.rules
        while self._window and self._window[0] <= now - 1.0:
            self._window.popleft()
        too_many = Failure(429, f"Too Many Requests: retry after {rules.retry_after}",
                           {"retry_after": rules.retry_after})
        if rules.global_per_s and len(self._window) >= rules.global_per_s:
            return too_many
        last = self._last_by_chat.get(chat_id)
        if rules.private_per_s and not chat_id.startswith("-") and last is not None and now - last < 1.0:
            return too_many
        self._window.append(now)
        self._last_by_chat[chat_id] = now
        return None

    def record(self, sent: Sent) -> None:
        with self._sent_event:
            self.sent.append(sent)
            self._sent_event.notify_all()


def _form(content_type: str, body: bytes) -> dict[str, Any]:
    """multipart/form-data fields; uploaded files come back as the marker "upload"."""
    parser = email.parser.BytesParser(policy=email.policy.HTTP)
    message = parser.parsebytes(b"Content-Type: " + content_type.encode() + b"\r\n\r\n" + body)
    fields: dict[str, Any] = {}
    for part in message.iter_parts():  # type: ignore[attr-defined]
        name = part.get_param("name", header="content-disposition")
        fields[name] = "upload" if part.get_filename() else part.get_content()
    return fields


def _params(content_type: str, body: bytes) -> dict[str, Any]:
    """PTB posts form fields (JSON-encoded values for objects), multipart when a file is uploaded."""
    if content_type.startswith("multipart/"):
        return _form(content_type, body)
    if content_type.startswith("application/json"):
        return dict(json.loads(body or b"{}"))
    return {k: v[-1] for k, v in urllib.parse.parse_qs(body.decode(), keep_blank_values=True).items()}


def _handler(api: BotApi) -> type[BaseHTTPRequestHandler]:
    from tests.servers.botapi_methods import dispatch

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length)
            ctype = self.headers.get("Content-Type", "")
            params = _params(ctype, body)
            token, _, method = self.path.removeprefix("/bot").partition("/")
            status, payload = (401, {"ok": False, "error_code": 401, "description": "Unauthorized"}) \
                if token != TOKEN else dispatch(api, method, params)
            data = json.dumps(payload).encode()
            try:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
            except (BrokenPipeError, ConnectionResetError):
                self.close_connection = True  # the client gave up (a cancelled long poll)

        do_GET = do_POST

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler
