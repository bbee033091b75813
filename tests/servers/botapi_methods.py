"""The Bot API methods of the stand-in server (tests/servers/botapi.py): each returns (HTTP status, JSON)."""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tests.servers.botapi import BotApi, Failure

Reply = tuple[int, dict[str, Any]]
BOT_USER = {"id": 123456, "is_bot": True, "first_name": "newsbot", "username": "newsbot_test_bot",
            "can_join_groups": True, "can_read_all_group_messages": False, "supports_inline_queries": False}


def ok(result: Any) -> Reply:
    return 200, {"ok": True, "result": result}


def error(status: int, description: str, parameters: dict[str, Any] | None = None) -> Reply:
    body: dict[str, Any] = {"ok": False, "error_code": status, "description": description}
    if parameters:
        body["parameters"] = parameters
    return status, body


def _refused(failure: Failure) -> Reply:
    return error(failure.status, failure.description, failure.parameters)


def _chat(chat_id: str) -> dict[str, Any]:
    return {"id": int(chat_id), "type": "private" if not chat_id.startswith("-") else "supergroup",
            **({"first_name": "Trader"} if not chat_id.startswith("-") else {"title": "group"})}


def _flag(params: dict[str, Any], name: str) -> bool:
    return str(params.get(name, "")).lower() in {"true", "1"}


def _reply_to(params: dict[str, Any]) -> int | None:
    raw = params.get("reply_parameters")
    if isinstance(raw, str):
        raw = json.loads(raw)
    if isinstance(raw, dict):
        return int(raw["message_id"])
    return int(params["reply_to_message_id"]) if params.get("reply_to_message_id") else None


def send(api: BotApi, method: str, params: dict[str, Any]) -> Reply:
    from tests.servers.botapi import ParseError, Sent, tg_len, visible_text

    chat_id = str(params.get("chat_id", ""))
    markup = str(params.get("caption" if method == "sendPhoto" else "text", ""))
    limit = 1024 if method == "sendPhoto" else 4096
    try:
        text = visible_text(markup) if params.get("parse_mode") == "HTML" else markup
    except ParseError as exc:
        return error(400, f"Bad Request: can't parse entities: {exc}")
    if tg_len(text) > limit or (method == "sendMessage" and not text.strip()):
        return error(400, "Bad Request: message is too long" if text.strip() else "Bad Request: message text is empty")
    failure = api.refusal(chat_id)
    if failure is not None:
        api.refused[failure.status] += 1
        api.refusals.append((failure.status, time.monotonic(), len(api.sent)))
        return _refused(failure)
    photo = params.get("photo") if method == "sendPhoto" else None
    sent = Sent(method, chat_id, text, markup, api._take_id(), _flag(params, "disable_notification"),
                _reply_to(params), None if photo is None else str(photo), time.monotonic())
    api.record(sent)
    result: dict[str, Any] = {"message_id": sent.message_id, "date": int(time.time()), "chat": _chat(chat_id)}
    if method == "sendPhoto":
        file_id = "photo-1" if photo == "upload" else str(photo)
        result["photo"] = [{"file_id": file_id, "file_unique_id": file_id, "width": 800, "height": 400}]
        result["caption"] = text
    else:
        result["text"] = text
    return ok(result)


def dispatch(api: BotApi, method: str, params: dict[str, Any]) -> Reply:
    with api._lock:
        api.calls[method] += 1
    if method in {"sendMessage", "sendPhoto"}:
        return send(api, method, params)
    if method == "getMe":
        return ok(BOT_USER)
    if method == "getUpdates":
        return ok(api.get_updates(params))
    if method == "setMyCommands":
        commands = params.get("commands")
        api.commands = json.loads(commands) if isinstance(commands, str) else list(commands or [])
        return ok(True)
    if method == "setWebhook":
        with api._lock:
            api.webhook = {"url": str(params.get("url", "")), "secret_token": str(params.get("secret_token", ""))}
        return ok(True)
    if method == "deleteWebhook":
        with api._lock:
            api.webhook = {}
        return ok(True)
    if method in {"answerCallbackQuery", "close", "logOut"}:
        return ok(True)
    if method == "editMessageText":
        chat_id = str(params.get("chat_id", ""))
        return ok({"message_id": int(params.get("message_id", 1)), "date": int(time.time()),
                   "chat": _chat(chat_id), "text": str(params.get("text", ""))})
    return error(404, "Not Found: method not found")
