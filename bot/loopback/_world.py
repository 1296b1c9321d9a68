"""The in-memory Telegram the loopback server serves: people, chats, messages and updates.

Nothing here speaks HTTP; :mod:`._methods` implements the Bot API on top of it and
:mod:`._server` puts it on a socket. Everything runs on one asyncio loop, so there are
no locks: waiters sleep on :meth:`World.wait_change`, which every mutation wakes.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import copy
import itertools
import json
import mimetypes
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass

from ._errors import ApiError, LoopbackError, bad_request, conflict
from ._state import (
    BotEvent,
    CallbackAnswer,
    ChatAction,
    ChatState,
    JSONDict,
    StoredFile,
    StoredMessage,
    TopicState,
)

#: Update types Telegram leaves out unless they are asked for explicitly.
_OPT_IN_UPDATES = frozenset({"chat_member", "message_reaction", "message_reaction_count"})
_FILE_PREFIX = {
    "document": "BQACAgQAAxkBAAI",
    "photo": "AgACAgQAAxkBAAI",
    "sticker": "CAACAgIAAxkBAAI",
}
_FILE_FOLDER = {"document": "documents", "photo": "photos", "sticker": "stickers"}


@dataclass
class PendingUpdate:
    """An update waiting to be fetched with getUpdates or POSTed to the webhook."""

    update: JSONDict
    #: Re-delivered on purpose: handed out once more even though its id was confirmed.
    forced: bool = False
    handed_out: bool = False

    @property
    def update_id(self) -> int:
        """The update's id."""
        return int(self.update["update_id"])


@dataclass
class Webhook:
    """The webhook configuration set with setWebhook."""

    url: str
    secret_token: str | None
    max_connections: int
    ip_address: str | None
    last_error_date: int | None = None
    last_error_message: str | None = None


def now() -> int:
    """Unix time in whole seconds, as Telegram dates are."""
    return int(time.time())


def quoted(message: JSONDict) -> JSONDict:
    """A message as embedded in ``reply_to_message`` (Telegram nests only one level)."""
    embedded = copy.deepcopy(message)
    embedded.pop("reply_to_message", None)
    return embedded


class World:
    """State of the fake Telegram: the bot, people, chats, files, updates and bot actions."""

    def __init__(
        self,
        token: str,
        *,
        bot_username: str,
        bot_first_name: str,
        strict_html: bool,
        first_update_id: int,
    ) -> None:
        self.token = token
        self.bot_id = int(token.split(":", 1)[0])
        self.bot_user: JSONDict = {
            "id": self.bot_id,
            "is_bot": True,
            "first_name": bot_first_name,
            "username": bot_username,
            "can_join_groups": True,
            "can_read_all_group_messages": False,
            "supports_inline_queries": False,
            "can_connect_to_business": False,
            "has_main_web_app": False,
        }
        self.strict_html = strict_html
        self.users: dict[int, JSONDict] = {}
        self.chats: dict[int, ChatState] = {}
        self.files: dict[str, StoredFile] = {}
        self.blocked: set[int] = set()
        self.commands: dict[tuple[str, str], list[JSONDict]] = {}
        self.callback_queries: dict[str, JSONDict] = {}
        self.callback_answers: list[CallbackAnswer] = []
        self.chat_actions: list[ChatAction] = []
        self.events: list[BotEvent] = []
        #: Called with each new event as it happens (a load test timing replies, say).
        self.event_watchers: list[Callable[[BotEvent], None]] = []
        self.updates: dict[int, JSONDict] = {}
        self.pending: list[PendingUpdate] = []
        self.webhook: Webhook | None = None
        self.allowed_updates: list[str] = []
        self.closing = False
        self.on_webhook_change: Callable[[], None] | None = None
        self._next_update_id = first_update_id
        self._next_group_id = 1_000_000_001
        self._file_counter = itertools.count(1)
        self._query_counter = itertools.count(1)
        self._poll_generation = 0
        self._signal = asyncio.Event()

    # -- change notification -------------------------------------------------------------

    def notify(self) -> None:
        """Wake everything waiting in :meth:`wait_change`."""
        signal, self._signal = self._signal, asyncio.Event()
        signal.set()

    async def wait_change(self, at_most: float | None = None) -> None:
        """Sleep until the next mutation (or ``at_most`` seconds)."""
        signal = self._signal
        if at_most is None:
            await signal.wait()
            return
        if at_most <= 0:
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(signal.wait(), at_most)

    # -- people and chats ----------------------------------------------------------------

    def add_user(self, user: JSONDict) -> ChatState:
        """Register a person and the private chat with them (chat id = user id)."""
        user_id = int(user["id"])
        self.users[user_id] = user
        chat = self.chats.get(user_id)
        if chat is None:
            chat = ChatState(id=user_id, type="private")
            self.chats[user_id] = chat
        chat.first_name = user.get("first_name")
        chat.last_name = user.get("last_name")
        chat.username = user.get("username")
        chat.members[user_id] = {"status": "member", "user": user}
        chat.members[self.bot_id] = {"status": "member", "user": self.bot_user}
        return chat

    def new_group(self, title: str, *, kind: str, forum: bool, username: str | None) -> ChatState:
        """Create a group or supergroup chat with a fresh (negative) id."""
        if kind == "supergroup":
            chat_id = -(1_000_000_000_000 + self._next_group_id)
        else:
            chat_id = -self._next_group_id
        self._next_group_id += 1
        chat = ChatState(
            id=chat_id,
            type=kind,
            title=title,
            username=username,
            is_forum=forum and kind == "supergroup",
            next_message_id=2,  # 1 is the "group created" service message
        )
        self.chats[chat_id] = chat
        return chat

    def chat(self, chat_id: int | str) -> ChatState:
        """A chat by id or ``@username``; 400 ``chat not found`` otherwise."""
        if isinstance(chat_id, str):
            wanted = chat_id.removeprefix("@").lower()
            for chat in self.chats.values():
                if chat.type != "private" and (chat.username or "").lower() == wanted:
                    return chat
            raise bad_request("chat not found")
        found = self.chats.get(chat_id)
        if found is None:
            raise bad_request("chat not found")
        return found

    def writable_chat(self, chat_id: int | str) -> ChatState:
        """A chat the bot may post into: 403 when the person blocked the bot."""
        chat = self.chat(chat_id)
        if chat.type == "private" and chat.id in self.blocked:
            raise ApiError(403, "Forbidden: bot was blocked by the user")
        return chat

    def member(self, chat: ChatState, user_id: int) -> JSONDict:
        """The ChatMember of a user in a chat (``left`` for known users who are not in it)."""
        found = chat.members.get(user_id)
        if found is not None:
            return copy.deepcopy(found)
        user = self.bot_user if user_id == self.bot_id else self.users.get(user_id)
        if user is None:
            raise bad_request("user not found")
        return {"status": "left", "user": copy.deepcopy(user)}

    def bot_can_manage_topics(self, chat: ChatState) -> bool:
        """Whether the bot is an owner, or an administrator allowed to manage topics."""
        me = chat.members.get(self.bot_id, {})
        status = me.get("status")
        return status == "creator" or (
            status == "administrator" and bool(me.get("can_manage_topics"))
        )

    # -- topics ----------------------------------------------------------------------------

    def open_topic(
        self,
        chat: ChatState,
        name: str,
        icon_color: int,
        icon_custom_emoji_id: str | None,
        *,
        creator: JSONDict,
    ) -> TopicState:
        """Create a topic and its ``forum_topic_created`` service message."""
        thread_id = chat.allocate_message_id()
        created: JSONDict = {"name": name, "icon_color": icon_color}
        if icon_custom_emoji_id:
            created["icon_custom_emoji_id"] = icon_custom_emoji_id
        message: JSONDict = {
            "message_id": thread_id,
            "from": copy.deepcopy(creator),
            "chat": chat.to_api(),
            "date": now(),
            "message_thread_id": thread_id,
            "is_topic_message": True,
            "forum_topic_created": created,
        }
        chat.messages[thread_id] = StoredMessage(
            chat_id=chat.id,
            message_id=thread_id,
            from_bot=creator.get("id") == self.bot_id,
            versions=[message],
            thread_id=thread_id,
            service=True,
            sources=[None],
        )
        topic = TopicState(chat.id, thread_id, name, icon_color, icon_custom_emoji_id)
        chat.topics[thread_id] = topic
        self.notify()
        return topic

    def topic(self, chat: ChatState, thread_id: int) -> TopicState:
        """An existing topic; 400 ``message thread not found`` otherwise."""
        topic = chat.topics.get(thread_id)
        if topic is None or topic.deleted:
            raise bad_request("message thread not found")
        return topic

    def thread_for_post(self, chat: ChatState, thread_id: int | None) -> int | None:
        """The topic a new message goes to; refuses unknown and closed topics."""
        if not thread_id or not chat.is_forum:
            return None
        topic = self.topic(chat, thread_id)
        if topic.closed:
            raise bad_request("TOPIC_CLOSED")
        return thread_id

    # -- messages ------------------------------------------------------------------------

    def message_base(
        self,
        chat: ChatState,
        sender: JSONDict,
        *,
        thread_id: int | None,
        reply_to: StoredMessage | None,
    ) -> JSONDict:
        """The fields every new message has."""
        message: JSONDict = {
            "message_id": chat.allocate_message_id(),
            "from": copy.deepcopy(sender),
            "chat": chat.to_api(),
            "date": now(),
        }
        if thread_id is not None:
            message["message_thread_id"] = thread_id
            message["is_topic_message"] = True
        if reply_to is not None:
            message["reply_to_message"] = quoted(reply_to.current)
        return message

    def store(
        self,
        chat: ChatState,
        message: JSONDict,
        *,
        from_bot: bool,
        source: str | None = None,
        parse_mode: str | None = None,
        reply_keyboard: JSONDict | None = None,
        disable_notification: bool = False,
    ) -> StoredMessage:
        """Record a new message; a bot message also becomes a ``new`` event."""
        stored = StoredMessage(
            chat_id=chat.id,
            message_id=int(message["message_id"]),
            from_bot=from_bot,
            versions=[message],
            thread_id=message.get("message_thread_id"),
            sources=[source],
            parse_mode=parse_mode,
            reply_keyboard=reply_keyboard,
            disable_notification=disable_notification,
        )
        chat.messages[stored.message_id] = stored
        if from_bot:
            self._event("new", stored)
        self.notify()
        return stored

    def revise(self, stored: StoredMessage, message: JSONDict, source: str | None) -> None:
        """Record a new version of a bot message (an edit)."""
        stored.versions.append(message)
        stored.sources.append(source)
        self._event("edit", stored)
        self.notify()

    def delete(self, stored: StoredMessage) -> None:
        """Mark a message deleted."""
        stored.deleted = True
        self._event("delete", stored)
        self.notify()

    def find_message(self, chat: ChatState, message_id: int) -> StoredMessage | None:
        """A message of the chat that was not deleted."""
        stored = chat.messages.get(message_id)
        if stored is None or stored.deleted:
            return None
        return stored

    def _event(self, kind: str, stored: StoredMessage) -> None:
        event = BotEvent(
            seq=len(self.events),
            kind=kind,
            chat_id=stored.chat_id,
            message_id=stored.message_id,
            thread_id=stored.thread_id,
            message=stored.snapshot(),
        )
        self.events.append(event)
        for watcher in self.event_watchers:
            watcher(event)

    # -- files -----------------------------------------------------------------------------

    def register_file(
        self,
        content: bytes,
        *,
        kind: str,
        file_name: str | None = None,
        mime_type: str | None = None,
    ) -> StoredFile:
        """Store file content under a fresh file_id and a servable file_path."""
        number = next(self._file_counter)
        if mime_type is None and file_name:
            mime_type = mimetypes.guess_type(file_name)[0] or "application/octet-stream"
        suffix = ""
        if file_name and "." in file_name:
            suffix = "." + file_name.rsplit(".", 1)[1]
        elif kind == "photo":
            suffix = ".jpg"
        elif kind == "sticker":
            suffix = ".webp"
        stored = StoredFile(
            file_id=f"{_FILE_PREFIX.get(kind, 'BQAC')}{number:06d}{secrets.token_hex(12)}",
            file_unique_id=f"AgAD{number:06d}",
            content=content,
            file_path=f"{_FILE_FOLDER.get(kind, 'documents')}/file_{number}{suffix}",
            file_name=file_name,
            mime_type=mime_type,
        )
        self.files[stored.file_id] = stored
        return stored

    def file_by_path(self, path: str) -> StoredFile | None:
        """The file served at ``/file/bot<token>/<path>``."""
        for stored in self.files.values():
            if stored.file_path == path:
                return stored
        return None

    # -- updates ---------------------------------------------------------------------------

    def enqueue(self, payload: JSONDict) -> JSONDict:
        """Give ``payload`` a fresh update_id and queue it for the bot.

        An update of a type left out by ``allowed_updates`` is recorded but not queued,
        as Telegram does.
        """
        update = {"update_id": self._next_update_id, **payload}
        self._next_update_id += 1
        self.updates[update["update_id"]] = update
        kinds = [key for key in payload if key != "update_id"]
        kind = kinds[0] if kinds else ""
        if self.allowed_updates:
            wanted = kind in self.allowed_updates
        else:
            wanted = kind not in _OPT_IN_UPDATES
        if wanted:
            self._insert(PendingUpdate(update))
        return copy.deepcopy(update)

    def redeliver(self, update_id: int) -> None:
        """Queue an already delivered update once more, with the same update_id."""
        update = self.updates.get(update_id)
        if update is None:
            raise LoopbackError(f"no update with id {update_id} was ever queued")
        self._insert(PendingUpdate(update, forced=True))

    def _insert(self, entry: PendingUpdate) -> None:
        ids = [item.update_id for item in self.pending]
        self.pending.insert(bisect.bisect_right(ids, entry.update_id), entry)
        self.notify()

    def confirm(self, offset: int | None) -> None:
        """getUpdates' ``offset``: forget updates below it (or keep only the last -offset)."""
        if offset is None or offset == 0:
            return
        if offset < 0:
            self.pending = self.pending[offset:]
        else:
            self.pending = [
                entry
                for entry in self.pending
                if entry.update_id >= offset or (entry.forced and not entry.handed_out)
            ]
        self.notify()

    def take(self, limit: int) -> list[JSONDict]:
        """The first ``limit`` pending updates (they stay pending until confirmed)."""
        batch = self.pending[:limit]
        for entry in batch:
            entry.handed_out = True
        return [copy.deepcopy(entry.update) for entry in batch]

    def drop_pending(self, entry: PendingUpdate) -> None:
        """Forget one pending update (delivered to the webhook, or given up on)."""
        if entry in self.pending:
            self.pending.remove(entry)
            self.notify()

    def set_webhook(self, webhook: Webhook | None, *, drop_pending: bool) -> None:
        """Install or remove the webhook; wakes long polls so they can answer 409."""
        self.webhook = webhook
        if drop_pending:
            self.pending.clear()
        self.notify()
        if self.on_webhook_change is not None:
            self.on_webhook_change()

    async def get_updates(
        self, offset: int | None, limit: int, poll_seconds: float
    ) -> list[JSONDict]:
        """getUpdates with long polling: returns as soon as there is something to return."""
        if self.webhook is not None:
            raise conflict(
                "can't use getUpdates method while webhook is active; "
                "use deleteWebhook to delete the webhook first"
            )
        self._poll_generation += 1
        generation = self._poll_generation
        self.notify()  # an older long poll still waiting now answers 409
        self.confirm(offset)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + max(poll_seconds, 0.0)
        while True:
            if self.closing:
                return []
            if generation != self._poll_generation:
                raise conflict(
                    "terminated by other getUpdates request; "
                    "make sure that only one bot instance is running"
                )
            if self.webhook is not None:
                raise conflict(
                    "can't use getUpdates method while webhook is active; "
                    "use deleteWebhook to delete the webhook first"
                )
            batch = self.take(limit)
            remaining = deadline - loop.time()
            if batch or remaining <= 0:
                return batch
            await self.wait_change(remaining)

    # -- callback queries, actions, commands -------------------------------------------------

    def new_callback_query(
        self, user: JSONDict, chat: ChatState, message: JSONDict, data: str
    ) -> JSONDict:
        """Queue a callback_query update and remember the query for answerCallbackQuery."""
        query_id = f"{self.bot_id}{next(self._query_counter):010d}"
        query: JSONDict = {
            "id": query_id,
            "from": copy.deepcopy(user),
            "message": message,
            "chat_instance": str(abs(hash((chat.id, self.bot_id))) % 10**18),
            "data": data,
        }
        self.callback_queries[query_id] = {
            "user_id": user["id"],
            "data": data,
            "chat_id": chat.id,
            "message_id": message.get("message_id"),
            "answered": False,
        }
        self.enqueue({"callback_query": query})
        return copy.deepcopy(query)

    def record_answer(self, answer: CallbackAnswer) -> None:
        """Remember an answerCallbackQuery call."""
        self.callback_answers.append(answer)
        self.notify()

    def record_action(self, action: ChatAction) -> None:
        """Remember a sendChatAction call."""
        self.chat_actions.append(action)
        self.notify()


def scope_key(scope: JSONDict | None) -> str:
    """A canonical key for a BotCommandScope (``default`` when absent)."""
    if not scope or scope == {"type": "default"}:
        return "default"
    return json.dumps(scope, sort_keys=True, separators=(",", ":"))
