"""The sandbox's web page and its JSON API: the chats of the loopback server, as people see them.

Everything the page does goes through the loopback server's person API, so the bot receives
exactly the updates Telegram would send: a message, a command, a button press, a reply, a file.
The page learns that something changed by long polling ``/api/changes``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import mimetypes
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

from aiohttp import web

from bot.loopback import ChatState, LoopbackBotApi, LoopbackError, Person, StoredMessage
from bot.sandbox.cast import Cast, Character

logger = logging.getLogger(__name__)

STATIC_DIR = Path(__file__).resolve().parent / "static"
#: Telegram's own limit for a message a person writes.
MAX_TEXT = 4096
MAX_UPLOAD = 10 * 1024 * 1024
#: How long one /api/changes call waits before answering "nothing new".
LONG_POLL_SECONDS = 25.0
_LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})

JSON = dict[str, Any]


class BadRequest(Exception):
    """A request the page should not have made; answered 400 with the reason."""


@dataclass
class ChangeFeed:
    """A counter that moves whenever something a person could see has changed."""

    api: LoopbackBotApi
    version: int = 0
    _signal: asyncio.Event = field(default_factory=asyncio.Event)
    _task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._watch(), name="sandbox-feed")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def _fingerprint(self) -> tuple[Any, ...]:
        world = self.api.world
        return (
            len(world.events),
            sum(len(chat.messages) for chat in world.chats.values()),
            len(world.callback_answers),
            tuple(
                (topic.message_thread_id, topic.name, topic.closed, topic.deleted)
                for chat in world.chats.values()
                for topic in chat.topics.values()
            ),
        )

    async def _watch(self) -> None:
        seen = self._fingerprint()
        while True:
            # No await between reading the fingerprint and starting to wait: every change
            # is either counted now or wakes the next wait.
            await self.api.world.wait_change()
            current = self._fingerprint()
            if current != seen:
                seen = current
                self.version += 1
                signal, self._signal = self._signal, asyncio.Event()
                signal.set()
            # The server logs every call the bot makes (a getUpdates a second): keep the tail.
            if len(self.api.requests) > 2000:
                del self.api.requests[:-500]

    async def wait_past(self, version: int, patience: float) -> int:
        """The version, as soon as it is past ``version`` or after ``patience`` seconds."""
        if self.version > version:
            return self.version
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._signal.wait(), patience)
        return self.version


@dataclass
class SandboxView:
    """What the web side needs: the loopback server, who is who, and what to tell the page."""

    api: LoopbackBotApi
    cast: Cast
    info: JSON
    feed: ChangeFeed


VIEW = web.AppKey("view", SandboxView)


# -- turning the loopback's records into what the page shows ------------------------------------


def _sender(message: JSON) -> JSON:
    user = message.get("from") or {}
    name = " ".join(str(part) for part in (user.get("first_name"), user.get("last_name")) if part)
    return {"id": user.get("id"), "name": name or "?", "is_bot": bool(user.get("is_bot"))}


def _file(message: JSON) -> JSON | None:
    document = message.get("document")
    if isinstance(document, dict):
        return {
            "kind": "document",
            "name": document.get("file_name") or "fil",
            "size": document.get("file_size"),
            "mime": document.get("mime_type"),
            "url": f"/api/files/{quote(str(document.get('file_id', '')))}",
        }
    photo = message.get("photo")
    if isinstance(photo, list) and photo:
        largest = photo[-1]
        return {
            "kind": "photo",
            "name": "bild.jpg",
            "size": largest.get("file_size"),
            "mime": "image/jpeg",
            "url": f"/api/files/{quote(str(largest.get('file_id', '')))}",
        }
    sticker = message.get("sticker")
    if isinstance(sticker, dict):
        return {"kind": "sticker", "name": sticker.get("emoji") or "sticker", "size": None}
    return None


def _buttons(message: JSON) -> list[list[JSON]]:
    rows = (message.get("reply_markup") or {}).get("inline_keyboard") or []
    shown: list[list[JSON]] = []
    for row in rows:
        shown_row: list[JSON] = []
        for button in row:
            entry: JSON = {"text": str(button.get("text", ""))}
            url = button.get("url")
            if isinstance(url, str) and urlsplit(url).scheme in ("http", "https"):
                entry["url"] = url
            elif "callback_data" not in button:
                entry["disabled"] = True
            shown_row.append(entry)
        shown.append(shown_row)
    return shown


def message_view(stored: StoredMessage) -> JSON:
    """One message as the page draws it: text with Telegram's entities, buttons, file, reply."""
    message = stored.current
    view: JSON = {
        "id": stored.message_id,
        "thread_id": stored.thread_id,
        "from_bot": stored.from_bot,
        "sender": _sender(message),
        "date": message.get("date"),
        "edited": "edit_date" in message,
        "text": message.get("text") or message.get("caption") or "",
        "entities": message.get("entities") or message.get("caption_entities") or [],
        "buttons": _buttons(message),
        "file": _file(message),
    }
    replied = message.get("reply_to_message")
    if isinstance(replied, dict) and not replied.get("forum_topic_created"):
        view["reply_to"] = {
            "id": replied.get("message_id"),
            "sender": _sender(replied)["name"],
            "text": str(replied.get("text") or replied.get("caption") or "")[:160],
        }
    return view


def _visible(stored: StoredMessage) -> bool:
    return not stored.deleted and not stored.service


def _in_place(stored: StoredMessage, chat: ChatState, thread: int | None) -> bool:
    """Whether a message belongs to the topic shown (``None``: the general chat)."""
    if not chat.is_forum:
        return True
    return stored.thread_id == thread


def reply_keyboard(chat: ChatState) -> list[list[str]] | None:
    """The reply keyboard the bot last showed in a chat, unless it removed it since."""
    for stored in sorted(chat.messages.values(), key=lambda s: -s.message_id):
        markup = stored.reply_keyboard
        if not stored.from_bot or markup is None:
            continue
        rows = markup.get("keyboard")
        if not isinstance(rows, list):
            return None
        return [
            [
                str(button.get("text", "")) if isinstance(button, dict) else str(button)
                for button in row
            ]
            for row in rows
            if isinstance(row, list)
        ]
    return None


# -- request helpers -------------------------------------------------------------------------


def _view(request: web.Request) -> SandboxView:
    return request.app[VIEW]


def _int(value: Any, name: str, *, optional: bool = False) -> int | None:
    if value is None or value == "":
        if optional:
            return None
        raise BadRequest(f"{name} is missing")
    if isinstance(value, bool):
        raise BadRequest(f"{name} must be a number")
    try:
        return int(value)
    except (TypeError, ValueError):
        raise BadRequest(f"{name} must be a number") from None


def _required_int(value: Any, name: str) -> int:
    number = _int(value, name)
    assert number is not None
    return number


def _actor(view: SandboxView, user_id: int) -> tuple[Character, Person]:
    character = view.cast.character(user_id)
    if character is None:
        raise BadRequest(f"there is nobody with id {user_id} in the sandbox")
    return character, view.api.person(user_id)


def _chat(view: SandboxView, chat_id: int) -> ChatState:
    """A chat the page may show: a character's private chat or the coordinator group."""
    chat = view.api.world.chats.get(chat_id)
    if chat is None or (
        chat_id != view.cast.desk_chat_id and view.cast.character(chat_id) is None
    ):
        raise web.HTTPNotFound(text="no such chat")
    return chat


def _writable(character: Character, chat: ChatState) -> None:
    if chat.type == "private" and chat.id != character.user_id:
        raise BadRequest(f"{character.first_name} cannot write in another person's chat")
    if chat.type != "private" and not character.coordinator:
        raise BadRequest(f"{character.first_name} is not in the coordinator group")


def _postable(chat: ChatState, thread: int | None) -> None:
    """Refuse, as Telegram's app does, to write in a topic that is closed or gone."""
    if not chat.is_forum or thread is None:
        return
    topic = chat.topics.get(thread)
    if topic is None or topic.deleted:
        raise BadRequest("there is no such topic")
    if topic.closed:
        raise BadRequest("the topic is closed: nothing can be written in it")


def _thread(raw: str | None) -> int | None:
    if raw in (None, "", "general"):
        return None
    return _int(raw, "thread")


async def _json_body(request: web.Request) -> JSON:
    if request.content_type != "application/json":
        raise BadRequest("send JSON (Content-Type: application/json)")
    try:
        body = await request.json()
    except ValueError:
        raise BadRequest("the body is not valid JSON") from None
    if not isinstance(body, dict):
        raise BadRequest("the body must be a JSON object")
    return body


# -- handlers ----------------------------------------------------------------------------------


async def index(_: web.Request) -> web.FileResponse:
    return web.FileResponse(STATIC_DIR / "index.html", headers={"Cache-Control": "no-cache"})


async def world_info(request: web.Request) -> web.Response:
    """Who is in the sandbox, the coordinator group, and where its files are."""
    view = _view(request)
    desk = view.api.world.chats[view.cast.desk_chat_id]
    bot = view.api.bot_user
    return web.json_response(
        {
            "bot": {"id": bot["id"], "name": bot["first_name"], "username": bot["username"]},
            "people": [c.to_json() for c in view.cast.characters],
            "desk": {"chat_id": desk.id, "title": desk.title, "is_forum": desk.is_forum},
            "info": view.info,
            "version": view.feed.version,
        }
    )


async def overview(request: web.Request) -> web.Response:
    """The topics of the coordinator group and how many messages each chat holds (badges)."""
    view = _view(request)
    world = view.api.world
    desk = world.chats[view.cast.desk_chat_id]
    counts = {
        str(c.user_id): sum(
            1 for s in world.chats[c.user_id].messages.values() if s.from_bot and _visible(s)
        )
        for c in view.cast.characters
    }
    topics: list[JSON] = []
    general = [s for s in desk.messages.values() if _visible(s) and s.thread_id is None]
    topics.append(
        {
            "thread_id": None,
            "name": "Allmänt",
            "closed": False,
            "count": len(general),
            "last": max((s.current.get("date", 0) for s in general), default=0),
        }
    )
    for topic in desk.topics.values():
        if topic.deleted:
            continue
        inside = [
            s
            for s in desk.messages.values()
            if _visible(s) and s.thread_id == topic.message_thread_id
        ]
        topics.append(
            {
                "thread_id": topic.message_thread_id,
                "name": topic.name,
                "closed": topic.closed,
                "icon_color": topic.icon_color,
                "count": len(inside),
                "last": max((s.current.get("date", 0) for s in inside), default=0),
            }
        )
    return web.json_response({"version": view.feed.version, "chats": counts, "topics": topics})


async def chat_messages(request: web.Request) -> web.Response:
    """The messages of one chat (or one topic of the coordinator group), oldest first."""
    view = _view(request)
    chat = _chat(view, _required_int(request.match_info["chat_id"], "chat"))
    thread = _thread(request.query.get("thread"))
    messages = [
        message_view(stored)
        for stored in sorted(chat.messages.values(), key=lambda s: s.message_id)
        if _visible(stored) and _in_place(stored, chat, thread)
    ]
    closed = False
    if thread is not None:
        topic = chat.topics.get(thread)
        if topic is None or topic.deleted:
            raise web.HTTPNotFound(text="no such topic")
        closed = topic.closed
    return web.json_response(
        {
            "version": view.feed.version,
            "messages": messages,
            "keyboard": reply_keyboard(chat) if chat.type == "private" else None,
            "closed": closed,
        }
    )


async def changes(request: web.Request) -> web.Response:
    """Long poll: answers as soon as the version is past ``after`` (or after a while)."""
    view = _view(request)
    after = _int(request.query.get("after"), "after", optional=True)
    version = await view.feed.wait_past(-1 if after is None else after, LONG_POLL_SECONDS)
    return web.json_response({"version": version})


async def send(request: web.Request) -> web.Response:
    """A character writes a message (a command is a message starting with /)."""
    view = _view(request)
    body = await _json_body(request)
    character, person = _actor(view, _required_int(body.get("as"), "as"))
    chat = _chat(view, _required_int(body.get("chat"), "chat"))
    _writable(character, chat)
    text = body.get("text")
    if not isinstance(text, str) or not text.strip():
        raise BadRequest("write something first")
    if len(text) > MAX_TEXT:
        raise BadRequest(f"a message holds at most {MAX_TEXT} characters")
    thread = _int(body.get("thread"), "thread", optional=True)
    reply_to = _int(body.get("reply_to"), "reply_to", optional=True)
    _postable(chat, thread)
    message = await person.send(text.strip(), chat=chat.id, thread_id=thread, reply_to=reply_to)
    return web.json_response({"message_id": message["message_id"]})


async def press(request: web.Request) -> web.Response:
    """A character presses an inline button; answers with the bot's notice, if it gives one."""
    view = _view(request)
    body = await _json_body(request)
    character, person = _actor(view, _required_int(body.get("as"), "as"))
    chat = _chat(view, _required_int(body.get("chat"), "chat"))
    _writable(character, chat)
    message_id = _required_int(body.get("message"), "message")
    row = _required_int(body.get("row"), "row")
    column = _required_int(body.get("column"), "column")
    stored = view.api.world.find_message(chat, message_id)
    if stored is None:
        raise BadRequest("that message is gone")
    rows = (stored.current.get("reply_markup") or {}).get("inline_keyboard") or []
    if not (0 <= row < len(rows) and 0 <= column < len(rows[row])):
        raise BadRequest("that button is no longer there")
    data = rows[row][column].get("callback_data")
    if not isinstance(data, str):
        raise BadRequest("that button sends nothing to the bot")
    query = await person.press_data(message_id, chat.id, data)
    try:
        answer = await view.api.wait_for_callback_answer(query["id"], timeout=10.0)
    except TimeoutError:
        return web.json_response({"answer": None})
    return web.json_response(
        {"answer": {"text": answer.text, "show_alert": answer.show_alert} if answer.text else None}
    )


async def upload(request: web.Request) -> web.Response:
    """A character sends a file (as a document; a picture as a photo)."""
    view = _view(request)
    if not request.content_type.startswith("multipart/"):
        raise BadRequest("send the file as multipart/form-data")
    form = await request.post()
    character, person = _actor(view, _required_int(form.get("as"), "as"))
    chat = _chat(view, _required_int(form.get("chat"), "chat"))
    _writable(character, chat)
    thread = _int(form.get("thread"), "thread", optional=True)
    reply_to = _int(form.get("reply_to"), "reply_to", optional=True)
    _postable(chat, thread)
    sent = form.get("file")
    if not isinstance(sent, web.FileField):
        raise BadRequest("choose a file")
    content = sent.file.read()
    if not content:
        raise BadRequest("the file is empty")
    caption_value = form.get("caption")
    caption = caption_value.strip()[:1024] if isinstance(caption_value, str) else None
    filename = Path(sent.filename or "fil").name or "fil"
    mime = sent.content_type or mimetypes.guess_type(filename)[0]
    if mime in ("image/jpeg", "image/png"):
        message = await person.send_photo(
            content, caption=caption or None, chat=chat.id, thread_id=thread, reply_to=reply_to
        )
    else:
        message = await person.send_document(
            filename,
            content,
            caption=caption or None,
            mime_type=mime,
            chat=chat.id,
            thread_id=thread,
            reply_to=reply_to,
        )
    return web.json_response({"message_id": message["message_id"]})


async def file_content(request: web.Request) -> web.Response:
    """A file the bot or a person sent (e.g. the JSON of /mydata)."""
    view = _view(request)
    stored = view.api.world.files.get(request.match_info["file_id"])
    if stored is None:
        raise web.HTTPNotFound(text="no such file")
    name = stored.file_name or Path(stored.file_path).name
    return web.Response(
        body=stored.content,
        content_type=stored.mime_type or "application/octet-stream",
        headers={
            "Content-Disposition": f"inline; filename*=UTF-8''{quote(name)}",
            "X-Content-Type-Options": "nosniff",
            # A file is shown as it is, never run as a page of this origin.
            "Content-Security-Policy": "sandbox",
        },
    )


# -- the application ---------------------------------------------------------------------------

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def guard(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Loopback only, no other site's page may act here, and bad input gets a reason."""
    host = (request.host or "").rsplit(":", 1)[0].strip("[]")
    if host not in _LOOPBACK_HOSTS:
        return web.json_response({"error": "the sandbox answers on 127.0.0.1 only"}, status=403)
    origin = request.headers.get("Origin")
    if (
        request.method not in ("GET", "HEAD")
        and origin is not None
        and urlsplit(origin).netloc != request.host
    ):
        return web.json_response({"error": "requests from other sites are refused"}, status=403)
    try:
        return await handler(request)
    except BadRequest as exc:
        return web.json_response({"error": str(exc)}, status=400)
    except LoopbackError as exc:
        # What Telegram's app would not let a person do, e.g. write in a closed topic.
        return web.json_response({"error": str(exc)}, status=400)


@web.middleware
async def headers(request: web.Request, handler: Handler) -> web.StreamResponse:
    response = await handler(request)
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("Referrer-Policy", "no-referrer")
    if request.path == "/" or request.path.startswith("/static/"):
        response.headers.setdefault(
            "Content-Security-Policy",
            "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
            "object-src 'none'; base-uri 'none'; frame-ancestors 'none'",
        )
    return response


def make_web_app(api: LoopbackBotApi, cast: Cast, info: JSON | None = None) -> web.Application:
    """The page and its API over a running loopback server and the cast living in it."""
    app = web.Application(middlewares=[headers, guard], client_max_size=MAX_UPLOAD + 64 * 1024)
    feed = ChangeFeed(api)
    app[VIEW] = SandboxView(api=api, cast=cast, info=dict(info or {}), feed=feed)

    async def feed_context(_: web.Application) -> AsyncIterator[None]:
        feed.start()
        yield
        await feed.stop()

    app.cleanup_ctx.append(feed_context)
    app.router.add_get("/", index)
    app.router.add_static("/static/", STATIC_DIR)
    app.router.add_get("/api/world", world_info)
    app.router.add_get("/api/overview", overview)
    app.router.add_get("/api/chats/{chat_id}/messages", chat_messages)
    app.router.add_get("/api/changes", changes)
    app.router.add_post("/api/send", send)
    app.router.add_post("/api/press", press)
    app.router.add_post("/api/upload", upload)
    app.router.add_get("/api/files/{file_id}", file_content)
    return app
