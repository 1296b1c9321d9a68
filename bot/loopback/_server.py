"""The HTTP side of the loopback Bot API and the test-facing API around it."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import copy
import json
import logging
import re
import time
from collections.abc import Callable, Iterable, Mapping
from types import TracebackType
from typing import Any, Self, TypeVar

import aiohttp
from aiohttp import web

from ._errors import ApiError, LoopbackError, method_not_found, unauthorized
from ._methods import BotApiMethods, Described
from ._params import Params, read_params
from ._person import Person, UserRef
from ._state import (
    TOPIC_ICON_COLORS,
    BotEvent,
    CallbackAnswer,
    ChatAction,
    ChatState,
    DelayRule,
    FailureRule,
    JSONDict,
    RequestRecord,
    StoredMessage,
    TopicState,
    WebhookDelivery,
)
from ._world import PendingUpdate, Webhook, World, now, scope_key

_LOG = logging.getLogger(__name__)
_T = TypeVar("_T")
_R = TypeVar("_R", FailureRule, DelayRule)

#: A syntactically valid token for tests that do not care which one they use.
DEFAULT_TOKEN = "123456789:AAE-loopback-test-token_0123456789abc"
_TOKEN = re.compile(r"\d+:[A-Za-z0-9_-]+\Z")
_PHRASES = {
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    409: "Conflict",
    429: "Too Many Requests",
    500: "Internal Server Error",
    502: "Bad Gateway",
}
_MAX_BODY = 64 * 1024 * 1024


def _admin_member(user: JSONDict, rights: Mapping[str, Any] | None = None) -> JSONDict:
    member: JSONDict = {
        "status": "administrator",
        "user": copy.deepcopy(user),
        "can_be_edited": False,
        "is_anonymous": False,
        "can_manage_chat": True,
        "can_delete_messages": True,
        "can_manage_video_chats": True,
        "can_restrict_members": True,
        "can_promote_members": False,
        "can_change_info": True,
        "can_invite_users": True,
        "can_post_stories": False,
        "can_edit_stories": False,
        "can_delete_stories": False,
        "can_pin_messages": True,
        "can_manage_topics": True,
    }
    member.update(rights or {})
    return member


def _member(user: JSONDict, status: str, fields: Mapping[str, Any]) -> JSONDict:
    if status == "administrator":
        return _admin_member(user, fields)
    member: JSONDict = {"status": status, "user": copy.deepcopy(user)}
    if status == "creator":
        member["is_anonymous"] = False
    elif status == "restricted":
        member.update(
            {
                "is_member": True,
                "until_date": 0,
                **{
                    key: False
                    for key in (
                        "can_send_messages",
                        "can_send_audios",
                        "can_send_documents",
                        "can_send_photos",
                        "can_send_videos",
                        "can_send_video_notes",
                        "can_send_voice_notes",
                        "can_send_polls",
                        "can_send_other_messages",
                        "can_add_web_page_previews",
                        "can_change_info",
                        "can_edit_tag",
                        "can_react_to_messages",
                        "can_invite_users",
                        "can_pin_messages",
                        "can_manage_topics",
                    )
                },
            }
        )
    elif status == "kicked":
        member["until_date"] = 0
    elif status not in ("member", "left"):
        raise ValueError(f"unknown chat member status {status!r}")
    member.update(fields)
    return member


def _delivery_chat(entry: PendingUpdate) -> object:
    """What orders webhook deliveries: the chat an update belongs to (else the update itself)."""
    for part in entry.update.values():
        if isinstance(part, dict):
            message = part.get("message", part) if "chat" not in part else part
            chat = message.get("chat") if isinstance(message, dict) else None
            if isinstance(chat, dict) and isinstance(chat.get("id"), int):
                return chat["id"]
    return ("update", entry.update_id)


class LoopbackBotApi:
    """A Telegram-compatible Bot API server on 127.0.0.1, with a test-side API to drive it.

    Point python-telegram-bot at it with ``base_url=api.base_url`` and
    ``base_file_url=api.base_file_url``; act as people with :meth:`person`; read what the
    bot did with :meth:`messages`, :meth:`wait_for_message`, :attr:`callback_answers`,
    :attr:`chat_actions`, :attr:`commands` and :meth:`topics`; make Telegram misbehave
    with :meth:`fail_next`, :meth:`block` and :meth:`delay`.

    Everything runs on the loop that called :meth:`start`; the object is not thread-safe.
    """

    def __init__(
        self,
        token: str = DEFAULT_TOKEN,
        *,
        bot_username: str = "loopback_bot",
        bot_first_name: str = "Loopback Bot",
        strict_html: bool = True,
        first_update_id: int = 1,
        webhook_attempts: int = 5,
        webhook_backoff: float = 0.1,
        webhook_timeout: float = 5.0,
        webhook_connections: int = 1,
    ) -> None:
        if not _TOKEN.match(token):
            raise ValueError("a bot token looks like '123456:ABC-def'")
        self.world = World(
            token,
            bot_username=bot_username,
            bot_first_name=bot_first_name,
            strict_html=strict_html,
            first_update_id=first_update_id,
        )
        self.world.on_webhook_change = self._restart_webhook_worker
        self._methods = BotApiMethods(self.world)
        self._by_lower = {name.lower(): name for name in self._methods.table}
        self._people: dict[int, Person] = {}
        self._failures: list[FailureRule] = []
        # Telegram's flood control, when switched on with enforce_limits().
        self._limits: tuple[float, float] | None = None
        self._sent_times: collections.deque[float] = collections.deque()
        self._sent_by_chat: dict[str, float] = {}
        self.flood_refusals = 0
        self._delays: list[DelayRule] = []
        self.requests: list[RequestRecord] = []
        self.webhook_deliveries: list[WebhookDelivery] = []
        self._webhook_attempts = max(1, webhook_attempts)
        self._webhook_backoff = webhook_backoff
        self._webhook_timeout = webhook_timeout
        # Updates POSTed at once (at most the webhook's max_connections, as on Telegram); one
        # chat's updates still one after another, in order. 1: strictly one at a time.
        self._webhook_connections = max(1, webhook_connections)
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None
        self._webhook_task: asyncio.Task[None] | None = None
        self._host = "127.0.0.1"
        self._port: int | None = None

    # -- lifecycle ---------------------------------------------------------------------------

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> None:
        """Listen on ``host:port`` (port 0: a free port, see :attr:`port`)."""
        if self._runner is not None:
            raise LoopbackError("the loopback Bot API is already running")
        app = web.Application(client_max_size=_MAX_BODY)
        app.router.add_route("*", "/bot{token}/{method}", self._handle_api)
        app.router.add_get("/file/bot{token}/{path:.+}", self._handle_file)
        runner = web.AppRunner(
            app, handler_cancellation=True, shutdown_timeout=1.0, access_log=None
        )
        await runner.setup()
        site = web.TCPSite(runner, host, port)
        try:
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        self._host = host
        self._port = site.port
        self._session = aiohttp.ClientSession()
        self.world.closing = False
        self._restart_webhook_worker()

    async def stop(self) -> None:
        """Stop listening; long polls still waiting answer an empty list first."""
        self.world.closing = True
        self.world.notify()
        task, self._webhook_task = self._webhook_task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._session is not None:
            await self._session.close()
            self._session = None
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> Self:
        if self._runner is None:
            await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.stop()

    @property
    def running(self) -> bool:
        """Whether the server is listening."""
        return self._runner is not None

    @property
    def port(self) -> int:
        """The port the server listens on."""
        if self._port is None:
            raise LoopbackError("the loopback Bot API is not started")
        return self._port

    @property
    def url(self) -> str:
        """``http://host:port``."""
        return f"http://{self._host}:{self.port}"

    @property
    def base_url(self) -> str:
        """What to pass as python-telegram-bot's ``base_url`` (the token follows it)."""
        return f"{self.url}/bot"

    @property
    def base_file_url(self) -> str:
        """What to pass as python-telegram-bot's ``base_file_url``."""
        return f"{self.url}/file/bot"

    @property
    def token(self) -> str:
        """The bot token the server accepts."""
        return self.world.token

    @property
    def bot_id(self) -> int:
        """The bot's user id (the number before ':' in the token)."""
        return self.world.bot_id

    @property
    def bot_user(self) -> JSONDict:
        """The bot's User object, as getMe returns it."""
        return copy.deepcopy(self.world.bot_user)

    # -- HTTP ------------------------------------------------------------------------------------

    async def _handle_api(self, request: web.Request) -> web.Response:
        if request.match_info["token"] != self.token:
            return self._answer(unauthorized().payload(), 401)
        name = self._by_lower.get(request.match_info["method"].lower())
        if name is None:
            error = method_not_found()
            self._log(request.match_info["method"], Params({}), error.error_code, error)
            return self._answer(error.payload(), error.error_code)
        params = Params({})
        delay: DelayRule | None = None
        try:
            params = await read_params(request)
            delay = self._take_rule(self._delays, name, params)
            if delay is not None and not delay.after:
                await asyncio.sleep(delay.seconds)
            failure = self._take_rule(self._failures, name, params)
            if failure is not None:
                raise ApiError(failure.error_code, failure.description, failure.parameters)
            self._flood_check(name, params)
            result = await self._methods.table[name](params)
        except ApiError as error:
            body, status = error.payload(), error.error_code
            self._log(name, params, status, error)
        except Exception as exc:  # a bug in the loopback itself: answer like a broken server
            _LOG.exception("loopback: %s failed", name)
            broken = ApiError(500, f"Internal Server Error: {type(exc).__name__}: {exc}")
            body, status = broken.payload(), 500
            self._log(name, params, status, broken)
        else:
            body = {"ok": True}
            if isinstance(result, Described):
                body.update(result=result.result, description=result.description)
            else:
                body["result"] = result
            status = 200
            self._log(name, params, status, None)
        if delay is not None and delay.after:
            await asyncio.sleep(delay.seconds)
        return self._answer(body, status)

    async def _handle_file(self, request: web.Request) -> web.Response:
        if request.match_info["token"] != self.token:
            return self._answer(unauthorized().payload(), 401)
        stored = self.world.file_by_path(request.match_info["path"])
        if stored is None:
            return self._answer({"ok": False, "error_code": 404, "description": "Not Found"}, 404)
        return web.Response(
            body=stored.content, content_type=stored.mime_type or "application/octet-stream"
        )

    @staticmethod
    def _answer(body: JSONDict, status: int) -> web.Response:
        return web.json_response(body, status=status)

    def _log(self, method: str, params: Params, status: int, error: ApiError | None) -> None:
        self.requests.append(
            RequestRecord(
                method=method,
                params=params.snapshot(),
                status=status,
                description=error.description if error else None,
                at=time.time(),
            )
        )

    @staticmethod
    def _matches_chat(rule_chat: int | str | None, params: Params) -> bool:
        if rule_chat is None:
            return True
        return str(params.raw.get("chat_id")) == str(rule_chat)

    def _take_rule(self, rules: list[_R], method: str, params: Params) -> _R | None:
        for rule in rules:
            if rule.method == method and self._matches_chat(rule.chat_id, params):
                if rule.remaining is not None:
                    rule.remaining -= 1
                    if rule.remaining <= 0:
                        rules.remove(rule)
                return rule
        return None

    # -- webhook delivery ---------------------------------------------------------------------

    def _restart_webhook_worker(self) -> None:
        if self._webhook_task is not None:
            self._webhook_task.cancel()
            self._webhook_task = None
        webhook = self.world.webhook
        if webhook is not None and self._session is not None and not self.world.closing:
            self._webhook_task = asyncio.get_running_loop().create_task(
                self._webhook_loop(webhook), name="loopback-webhook"
            )

    async def _webhook_loop(self, webhook: Webhook) -> None:
        limit = max(1, min(self._webhook_connections, webhook.max_connections))
        in_flight: dict[int, asyncio.Task[None]] = {}  # by id() of the PendingUpdate
        busy_chats: set[object] = set()
        finished = 0

        async def deliver(entry: PendingUpdate, chat: object) -> None:
            nonlocal finished
            try:
                await self._deliver(webhook, entry)
            finally:
                in_flight.pop(id(entry), None)
                busy_chats.discard(chat)
                finished += 1
                self.world.drop_pending(entry)

        try:
            while True:
                for entry in list(self.world.pending):
                    if len(in_flight) >= limit:
                        break
                    chat = _delivery_chat(entry)
                    if id(entry) in in_flight or chat in busy_chats:
                        continue
                    busy_chats.add(chat)
                    in_flight[id(entry)] = asyncio.get_running_loop().create_task(
                        deliver(entry, chat), name=f"loopback-webhook-{entry.update_id}"
                    )
                # Look again only when an update came or a delivery ended (not on every change).
                seen = (len(self.world.pending), finished)
                while (len(self.world.pending), finished) == seen:
                    await self.world.wait_change()
        finally:
            for task in list(in_flight.values()):
                task.cancel()

    async def _deliver(self, webhook: Webhook, entry: PendingUpdate) -> bool:
        assert self._session is not None
        headers = {"Content-Type": "application/json"}
        if webhook.secret_token:
            headers["X-Telegram-Bot-Api-Secret-Token"] = webhook.secret_token
        body = json.dumps(entry.update).encode()
        timeout = aiohttp.ClientTimeout(total=self._webhook_timeout)
        for attempt in range(1, self._webhook_attempts + 1):
            status: int | None = None
            error: str | None = None
            try:
                async with self._session.post(
                    webhook.url, data=body, headers=headers, timeout=timeout
                ) as response:
                    status = response.status
                    await response.read()
            except (aiohttp.ClientError, TimeoutError) as exc:
                error = f"{type(exc).__name__}: {exc}"
            self.webhook_deliveries.append(
                WebhookDelivery(entry.update_id, attempt, status, error, time.time())
            )
            self.world.notify()
            if status is not None and 200 <= status < 300:
                return True
            webhook.last_error_date = now()
            webhook.last_error_message = (
                f"Wrong response from the webhook: {status} {_PHRASES.get(status, '')}".rstrip()
                if status is not None
                else "Connection refused"
            )
            if attempt < self._webhook_attempts:
                await asyncio.sleep(self._webhook_backoff * 2 ** (attempt - 1))
        _LOG.warning("loopback: gave up delivering update %s to %s", entry.update_id, webhook.url)
        return False

    @property
    def webhook_url(self) -> str | None:
        """The webhook URL set by the bot, if any."""
        return self.world.webhook.url if self.world.webhook else None

    # -- people and chats ---------------------------------------------------------------------

    def person(
        self,
        user_id: int,
        first_name: str = "Ana",
        username: str | None = None,
        language_code: str | None = "sv",
        *,
        last_name: str | None = None,
        is_premium: bool | None = None,
    ) -> Person:
        """The person with this id, created with their private chat (chat id = user id) on
        first use; later calls return the same person and ignore the other arguments."""
        existing = self._people.get(user_id)
        if existing is not None:
            return existing
        if user_id <= 0 or user_id == self.bot_id:
            raise ValueError("a person's id is a positive number other than the bot's")
        user: JSONDict = {"id": user_id, "is_bot": False, "first_name": first_name}
        if last_name is not None:
            user["last_name"] = last_name
        if username is not None:
            user["username"] = username
        if language_code is not None:
            user["language_code"] = language_code
        if is_premium:
            user["is_premium"] = True
        self.world.add_user(user)
        person = Person(self, user)
        self._people[user_id] = person
        return person

    def _user(self, ref: UserRef) -> JSONDict:
        user_id = ref if isinstance(ref, int) else ref.id
        if user_id == self.bot_id:
            return self.world.bot_user
        user = self.world.users.get(user_id)
        if user is None:
            raise LoopbackError(f"unknown user {user_id}: create them with api.person() first")
        return user

    def create_supergroup(
        self,
        title: str,
        *,
        forum: bool = True,
        members: Iterable[UserRef] = (),
        admins: Iterable[UserRef] = (),
        owner: UserRef | None = None,
        username: str | None = None,
        bot_status: str = "administrator",
        bot_rights: Mapping[str, Any] | None = None,
    ) -> JSONDict:
        """Create a supergroup (a forum by default) and return its Chat object.

        The bot is an administrator with ``can_manage_topics`` unless ``bot_status`` or
        ``bot_rights`` say otherwise.
        """
        chat = self.world.new_group(title, kind="supergroup", forum=forum, username=username)
        if owner is not None:
            chat.members[self._user(owner)["id"]] = _member(self._user(owner), "creator", {})
        for ref in admins:
            user = self._user(ref)
            chat.members[user["id"]] = _admin_member(user)
        for ref in members:
            user = self._user(ref)
            chat.members.setdefault(user["id"], _member(user, "member", {}))
        chat.members[self.bot_id] = _member(self.world.bot_user, bot_status, bot_rights or {})
        return chat.to_api()

    def set_member(
        self, chat_id: int, user: UserRef, status: str = "member", **fields: Any
    ) -> JSONDict:
        """Set a user's (or, with ``api.bot_id``, the bot's) membership in a group."""
        chat = self._chat(chat_id)
        found = self._user(user)
        chat.members[found["id"]] = _member(found, status, fields)
        return copy.deepcopy(chat.members[found["id"]])

    def create_topic(
        self,
        chat_id: int,
        name: str,
        *,
        icon_color: int = TOPIC_ICON_COLORS[0],
        closed: bool = False,
    ) -> JSONDict:
        """Create a forum topic as a human admin would (no update reaches the bot)."""
        chat = self._chat(chat_id)
        if not chat.is_forum:
            raise LoopbackError(f"chat {chat_id} is not a forum")
        creator = next(
            (m["user"] for m in chat.members.values() if m["status"] == "creator"),
            self.world.bot_user,
        )
        topic = self.world.open_topic(chat, name, icon_color, None, creator=creator)
        topic.closed = closed
        return topic.to_api()

    def _chat(self, chat_id: int) -> ChatState:
        chat = self.world.chats.get(chat_id)
        if chat is None:
            raise LoopbackError(f"no chat {chat_id}")
        return chat

    def chat(self, chat_id: int) -> JSONDict:
        """The Chat object of a chat."""
        return self._chat(chat_id).to_api()

    # -- updates ----------------------------------------------------------------------------

    def enqueue_update(self, payload: Mapping[str, Any]) -> JSONDict:
        """Queue any update payload (e.g. ``{"my_chat_member": {...}}``) with a fresh id."""
        return self.world.enqueue(copy.deepcopy(dict(payload)))

    def deliver_again(self, update_id: int) -> None:
        """Deliver an update once more with the same update_id, as Telegram does when it
        believes a delivery failed. With getUpdates it is handed out by the next call even
        though its id was already confirmed."""
        self.world.redeliver(update_id)

    @property
    def pending_updates(self) -> list[JSONDict]:
        """Updates not yet confirmed (getUpdates) or delivered (webhook)."""
        return [copy.deepcopy(entry.update) for entry in self.world.pending]

    async def drain(self, timeout: float = 5.0) -> None:  # noqa: ASYNC109 (test API)
        """Wait until the bot has taken every pending update."""
        await self._wait(
            lambda: True if not self.world.pending else None,
            timeout,
            lambda: f"{len(self.world.pending)} update(s) still pending",
        )

    # -- failure injection ------------------------------------------------------------------

    def _method(self, method: str) -> str:
        name = self._by_lower.get(method.lower())
        if name is None:
            raise ValueError(f"the loopback does not implement {method!r}")
        return name

    def enforce_limits(
        self, overall_per_second: float = 30.0, per_chat_interval: float = 1.0
    ) -> None:
        """Answer 429 ``retry_after`` like Telegram when the bot sends faster than about 30
        messages a second overall or more than one a second to one chat."""
        self._limits = (overall_per_second, per_chat_interval)

    def _flood_check(self, name: str, params: Params) -> None:
        if self._limits is None or not name.startswith(("send", "copy", "forward")):
            return
        overall, interval = self._limits
        now = time.monotonic()
        while self._sent_times and now - self._sent_times[0] >= 1.0:
            self._sent_times.popleft()
        chat = str(params.snapshot().get("chat_id", ""))
        last = self._sent_by_chat.get(chat)
        if len(self._sent_times) >= overall or (last is not None and now - last < interval):
            self.flood_refusals += 1
            raise ApiError(429, "Too Many Requests: retry after 1", {"retry_after": 1})
        self._sent_times.append(now)
        self._sent_by_chat[chat] = now

    def fail_next(
        self,
        method: str,
        error_code: int = 429,
        retry_after: int | None = 3,
        description: str | None = None,
        times: int = 1,
        chat_id: int | str | None = None,
    ) -> FailureRule:
        """Answer the next ``times`` calls of ``method`` (for ``chat_id`` only, if given)
        with an error; a 429 carries ``parameters.retry_after``."""
        parameters: JSONDict | None = None
        if error_code == 429 and retry_after is not None:
            parameters = {"retry_after": retry_after}
            default = f"Too Many Requests: retry after {retry_after}"
        else:
            default = _PHRASES.get(error_code, "Error")
        rule = FailureRule(
            method=self._method(method),
            error_code=error_code,
            description=description or default,
            parameters=parameters,
            remaining=times,
            chat_id=chat_id,
        )
        self._failures.append(rule)
        return rule

    def delay(
        self,
        method: str,
        seconds: float,
        *,
        times: int | None = 1,
        after: bool = False,
        chat_id: int | str | None = None,
    ) -> DelayRule:
        """Hold the next ``times`` calls of ``method`` (None: until cleared) ``seconds``.

        By default the call is held *before* it is carried out, so a client that gives up
        leaves nothing behind; with ``after=True`` it is carried out at once and only the
        answer is late, like a send that succeeded although the bot saw a timeout.
        """
        rule = DelayRule(self._method(method), seconds, times, after, chat_id)
        self._delays.append(rule)
        return rule

    def block(self, user_id: int) -> None:
        """The person blocked the bot: sends to their chat answer 403."""
        self.world.blocked.add(user_id)

    def unblock(self, user_id: int) -> None:
        """The person unblocked the bot."""
        self.world.blocked.discard(user_id)

    def clear_faults(self) -> None:
        """Drop every injected failure and delay (blocks stay)."""
        self._failures.clear()
        self._delays.clear()

    # -- reading what the bot did -------------------------------------------------------------

    def sent(
        self, chat_id: int, thread_id: int | None = None, *, include_deleted: bool = False
    ) -> list[StoredMessage]:
        """The records of the bot's messages in a chat (every version, source text)."""
        chat = self._chat(chat_id)
        return [
            stored
            for stored in sorted(chat.messages.values(), key=lambda s: s.message_id)
            if stored.from_bot
            and not stored.service
            and (include_deleted or not stored.deleted)
            and (thread_id is None or stored.thread_id == thread_id)
        ]

    def messages(
        self, chat_id: int, thread_id: int | None = None, *, include_deleted: bool = False
    ) -> list[JSONDict]:
        """What the bot sent in a chat (optionally one topic), latest versions, oldest first."""
        return [
            stored.snapshot()
            for stored in self.sent(chat_id, thread_id, include_deleted=include_deleted)
        ]

    def transcript(self, chat_id: int) -> list[JSONDict]:
        """Every message in the chat, from people and from the bot, latest versions."""
        chat = self._chat(chat_id)
        return [
            stored.snapshot()
            for stored in sorted(chat.messages.values(), key=lambda s: s.message_id)
            if not stored.deleted
        ]

    def message(self, chat_id: int, message_id: int) -> JSONDict:
        """The latest version of one message."""
        return self._stored(chat_id, message_id).snapshot()

    def history(self, chat_id: int, message_id: int) -> list[JSONDict]:
        """Every version of one message, oldest first."""
        return copy.deepcopy(self._stored(chat_id, message_id).versions)

    def _stored(self, chat_id: int, message_id: int) -> StoredMessage:
        stored = self._chat(chat_id).messages.get(message_id)
        if stored is None:
            raise LoopbackError(f"no message {message_id} in chat {chat_id}")
        return stored

    def cursor(self) -> int:
        """A position in the bot's activity, for ``wait_for_message(since=...)``."""
        return len(self.world.events)

    async def wait_for_message(
        self,
        chat_id: int,
        predicate: Callable[[JSONDict], bool] | None = None,
        timeout: float = 5.0,  # noqa: ASYNC109 (a test API: how long to wait for the bot)
        thread_id: int | None = None,
        *,
        since: int | None = None,
        edits: bool = False,
    ) -> JSONDict:
        """The first message the bot sends in ``chat_id`` after this call (or after
        ``since``, a :meth:`cursor`) that matches; with ``edits`` an edit counts too.

        Raises :class:`TimeoutError` naming what the bot did send meanwhile.
        """
        start = self.cursor() if since is None else since
        kinds = ("new", "edit") if edits else ("new",)

        def match(event: BotEvent) -> bool:
            return (
                event.kind in kinds
                and event.chat_id == chat_id
                and (thread_id is None or event.thread_id == thread_id)
                and (predicate is None or predicate(event.message))
            )

        def found() -> JSONDict | None:
            for event in self.world.events[start:]:
                if match(event):
                    return copy.deepcopy(event.message)
            return None

        def explain() -> str:
            seen = [
                (e.kind, e.chat_id, e.message.get("text", e.message.get("caption")))
                for e in self.world.events[start:]
            ]
            return f"no matching bot message in chat {chat_id}; the bot did: {seen}"

        return await self._wait(found, timeout, explain)

    def watch(self, callback: Callable[[BotEvent], None]) -> Callable[[], None]:
        """Call ``callback`` with each message the bot sends, edits or deletes, as it happens
        (on the server's loop; it must not block). Returns a function that stops it."""
        self.world.event_watchers.append(callback)

        def stop() -> None:
            with contextlib.suppress(ValueError):
                self.world.event_watchers.remove(callback)

        return stop

    @property
    def callback_answers(self) -> list[CallbackAnswer]:
        """Every answerCallbackQuery call, in order."""
        return list(self.world.callback_answers)

    async def wait_for_callback_answer(
        self,
        callback_query_id: str | None = None,
        timeout: float = 5.0,  # noqa: ASYNC109 (a test API: how long to wait for the bot)
    ) -> CallbackAnswer:
        """The answer to a callback query (any new one when no id is given)."""
        start = len(self.world.callback_answers)

        def found() -> CallbackAnswer | None:
            answers = self.world.callback_answers
            pool = answers if callback_query_id is not None else answers[start:]
            for answer in pool:
                if callback_query_id is None or answer.callback_query_id == callback_query_id:
                    return answer
            return None

        return await self._wait(found, timeout, lambda: "the callback query was not answered")

    @property
    def chat_actions(self) -> list[ChatAction]:
        """Every sendChatAction call, in order."""
        return list(self.world.chat_actions)

    @property
    def commands(self) -> dict[tuple[str, str], list[JSONDict]]:
        """Commands by (scope key, language_code); the default scope's key is ``"default"``."""
        return copy.deepcopy(self.world.commands)

    def get_commands(
        self, scope: Mapping[str, Any] | None = None, language_code: str = ""
    ) -> list[JSONDict]:
        """The commands set for a scope and language, as getMyCommands returns them."""
        key = (scope_key(dict(scope) if scope else None), language_code)
        return copy.deepcopy(self.world.commands.get(key, []))

    def topics(self, chat_id: int, *, include_deleted: bool = False) -> list[TopicState]:
        """The forum topics of a chat (copies, with ``closed``)."""
        return [
            copy.copy(topic)
            for topic in self._chat(chat_id).topics.values()
            if include_deleted or not topic.deleted
        ]

    def file_content(self, file_id: str) -> bytes:
        """The bytes of a file the bot uploaded or a person sent."""
        stored = self.world.files.get(file_id)
        if stored is None:
            raise LoopbackError(f"no file {file_id!r}")
        return stored.content

    def calls(self, method: str) -> list[RequestRecord]:
        """The recorded calls of one method (any spelling)."""
        name = self._by_lower.get(method.lower(), method)
        return [record for record in self.requests if record.method == name]

    async def _wait(
        self, probe: Callable[[], _T | None], patience: float, explain: Callable[[], str]
    ) -> _T:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + patience
        while True:
            result = probe()
            if result is not None:
                return result
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise TimeoutError(f"after {patience}s: {explain()}")
            await self.world.wait_change(remaining)
