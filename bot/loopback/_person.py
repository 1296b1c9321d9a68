"""A person talking to the bot through the loopback server, without HTTP."""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, TypeAlias

from ._errors import ApiError, LoopbackError
from ._state import ChatState, JSONDict, StoredMessage
from ._text import detect_entities, utf16_len
from ._world import now

if TYPE_CHECKING:
    from ._server import LoopbackBotApi

#: Where a person posts: None (their private chat with the bot), a chat id or a Chat dict.
ChatRef = int | Mapping[str, Any] | None
#: A message: its dict (as returned by the loopback or the bot) or its id.
MessageRef = int | Mapping[str, Any]
#: A user: a Person or a user id.
UserRef: TypeAlias = "Person | int"

_JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00loopback-photo\xff\xd9"
_WEBP = b"RIFF\x1a\x00\x00\x00WEBPVP8 loopback-sticker"


class Person:
    """A Telegram user who writes to the bot. Get one with ``api.person(user_id, ...)``.

    Every ``send*`` stores the message in the chat and queues a ``message`` update with a
    fresh update_id; it returns the Message dict the bot will receive.
    """

    def __init__(self, api: LoopbackBotApi, user: JSONDict) -> None:
        self.api = api
        self._user = user

    @property
    def id(self) -> int:
        """The user id, which is also the id of the private chat with the bot."""
        return int(self._user["id"])

    @property
    def chat_id(self) -> int:
        """The private chat's id."""
        return self.id

    @property
    def user(self) -> JSONDict:
        """The Telegram User object."""
        return copy.deepcopy(self._user)

    def __repr__(self) -> str:
        return f"Person({self.id}, {self._user.get('first_name')!r})"

    # -- where --------------------------------------------------------------------------------

    def _chat(self, chat: ChatRef) -> ChatState:
        world = self.api.world
        if chat is None:
            chat_id = self.id
        elif isinstance(chat, int):
            chat_id = chat
        else:
            chat_id = int(chat["id"])
        state = world.chats.get(chat_id)
        if state is None:
            raise LoopbackError(f"no chat {chat_id}")
        if state.type == "private":
            if state.id != self.id:
                raise LoopbackError(f"{self!r} cannot post in another person's private chat")
        elif state.members.get(self.id, {}).get("status") in (None, "left", "kicked"):
            raise LoopbackError(f"{self!r} is not a member of chat {chat_id}")
        return state

    def _message(self, state: ChatState, ref: MessageRef) -> StoredMessage:
        message_id = ref if isinstance(ref, int) else int(ref["message_id"])
        stored = self.api.world.find_message(state, message_id)
        if stored is None:
            raise LoopbackError(f"no message {message_id} in chat {state.id}")
        return stored

    def _thread(
        self, state: ChatState, thread_id: int | None, reply_to: StoredMessage | None
    ) -> int | None:
        if thread_id is None and reply_to is not None and state.is_forum:
            thread_id = reply_to.thread_id
        try:
            return self.api.world.thread_for_post(state, thread_id)
        except ApiError as error:
            raise LoopbackError(
                f"{self!r} cannot post in topic {thread_id} of chat {state.id}: "
                f"{error.description}"
            ) from None

    def _post(
        self,
        chat: ChatRef,
        content: JSONDict,
        *,
        reply_to: MessageRef | None,
        thread_id: int | None,
    ) -> JSONDict:
        world = self.api.world
        state = self._chat(chat)
        if state.type == "private":
            world.blocked.discard(self.id)  # writing to a bot restarts it
        target = self._message(state, reply_to) if reply_to is not None else None
        thread = self._thread(state, thread_id, target)
        message = world.message_base(state, self._user, thread_id=thread, reply_to=target)
        message.update(content)
        world.store(state, message, from_bot=False)
        world.enqueue({"message": copy.deepcopy(message)})
        return copy.deepcopy(message)

    # -- sending ------------------------------------------------------------------------------

    async def send(
        self,
        text: str,
        *,
        chat: ChatRef = None,
        reply_to: MessageRef | None = None,
        thread_id: int | None = None,
        entities: list[JSONDict] | None = None,
    ) -> JSONDict:
        """Write ``text``; commands, mentions and URLs get their entities as on Telegram."""
        if not text.strip():
            raise LoopbackError("Telegram does not send an empty message")
        content: JSONDict = {"text": text}
        found = detect_entities(text) if entities is None else entities
        if found:
            content["entities"] = found
        return self._post(chat, content, reply_to=reply_to, thread_id=thread_id)

    async def send_command(
        self,
        command: str,
        args: str = "",
        *,
        chat: ChatRef = None,
        reply_to: MessageRef | None = None,
        thread_id: int | None = None,
    ) -> JSONDict:
        """Send ``/command args`` with a bot_command entity at offset 0."""
        command = command if command.startswith("/") else f"/{command}"
        text = f"{command} {args}" if args else command
        entities = [{"type": "bot_command", "offset": 0, "length": utf16_len(command)}]
        entities += [e for e in detect_entities(text) if e["offset"] > 0]
        return await self.send(
            text, chat=chat, reply_to=reply_to, thread_id=thread_id, entities=entities
        )

    async def send_document(
        self,
        filename: str,
        content: bytes,
        *,
        caption: str | None = None,
        mime_type: str | None = None,
        chat: ChatRef = None,
        reply_to: MessageRef | None = None,
        thread_id: int | None = None,
    ) -> JSONDict:
        """Send a file; the bot can fetch it with getFile and download it."""
        stored = self.api.world.register_file(
            content, kind="document", file_name=filename, mime_type=mime_type
        )
        document: JSONDict = {
            "file_id": stored.file_id,
            "file_unique_id": stored.file_unique_id,
            "file_name": filename,
            "file_size": stored.file_size,
        }
        if stored.mime_type:
            document["mime_type"] = stored.mime_type
        message: JSONDict = {"document": document}
        if caption:
            message["caption"] = caption
        return self._post(chat, message, reply_to=reply_to, thread_id=thread_id)

    async def send_photo(
        self,
        content: bytes = _JPEG,
        *,
        caption: str | None = None,
        width: int = 1280,
        height: int = 960,
        chat: ChatRef = None,
        reply_to: MessageRef | None = None,
        thread_id: int | None = None,
    ) -> JSONDict:
        """Send a photo (a thumbnail and the full size, both servable with getFile)."""
        world = self.api.world
        small = world.register_file(content, kind="photo", mime_type="image/jpeg")
        full = world.register_file(content, kind="photo", mime_type="image/jpeg")
        scale = max(width, height, 1)
        sizes = [
            (small, max(1, width * 90 // scale), max(1, height * 90 // scale)),
            (full, width, height),
        ]
        message: JSONDict = {
            "photo": [
                {
                    "file_id": stored.file_id,
                    "file_unique_id": stored.file_unique_id,
                    "file_size": stored.file_size,
                    "width": w,
                    "height": h,
                }
                for stored, w, h in sizes
            ]
        }
        if caption:
            message["caption"] = caption
        return self._post(chat, message, reply_to=reply_to, thread_id=thread_id)

    async def send_sticker(
        self,
        emoji: str = "👍",
        *,
        chat: ChatRef = None,
        reply_to: MessageRef | None = None,
        thread_id: int | None = None,
    ) -> JSONDict:
        """Send a (static, regular) sticker."""
        stored = self.api.world.register_file(_WEBP, kind="sticker", mime_type="image/webp")
        sticker: JSONDict = {
            "file_id": stored.file_id,
            "file_unique_id": stored.file_unique_id,
            "file_size": stored.file_size,
            "type": "regular",
            "width": 512,
            "height": 512,
            "is_animated": False,
            "is_video": False,
            "emoji": emoji,
        }
        return self._post(chat, {"sticker": sticker}, reply_to=reply_to, thread_id=thread_id)

    async def edit(self, message: MessageRef, text: str, *, chat: ChatRef = None) -> JSONDict:
        """Edit one of this person's text messages: queues an ``edited_message`` update."""
        world = self.api.world
        if chat is None and not isinstance(message, int):
            chat = int(message["chat"]["id"])
        state = self._chat(chat)
        stored = self._message(state, message)
        if stored.from_bot or stored.current.get("from", {}).get("id") != self.id:
            raise LoopbackError(f"{self!r} can only edit their own messages")
        new = copy.deepcopy(stored.current)
        new["text"] = text
        found = detect_entities(text)
        if found:
            new["entities"] = found
        else:
            new.pop("entities", None)
        new["edit_date"] = now()
        stored.versions.append(new)
        stored.sources.append(text)
        world.enqueue({"edited_message": copy.deepcopy(new)})
        return copy.deepcopy(new)

    async def ask(
        self,
        text: str,
        *,
        chat: ChatRef = None,
        thread_id: int | None = None,
        predicate: Callable[[JSONDict], bool] | None = None,
        timeout: float = 5.0,  # noqa: ASYNC109 (a test API: how long to wait for the bot)
    ) -> JSONDict:
        """Send ``text`` and return the bot's next message in the same chat."""
        state = self._chat(chat)
        since = self.api.cursor()
        await self.send(text, chat=chat, thread_id=thread_id)
        return await self.api.wait_for_message(state.id, predicate, timeout, since=since)

    # -- buttons ---------------------------------------------------------------------------------

    async def press(self, message: MessageRef, button: str, *, chat: ChatRef = None) -> JSONDict:
        """Press an inline button, found by its text or its callback_data in the message's
        *current* keyboard; queues a ``callback_query`` update and returns the query."""
        if chat is None and not isinstance(message, int):
            chat = int(message["chat"]["id"])
        state = self._chat(chat)
        stored = self._message(state, message)
        current = stored.snapshot()
        rows = current.get("reply_markup", {}).get("inline_keyboard", [])
        buttons = [b for row in rows for b in row]
        chosen = next((b for b in buttons if b.get("text") == button), None)
        if chosen is None:
            chosen = next((b for b in buttons if b.get("callback_data") == button), None)
        if chosen is None:
            offered = [(b.get("text"), b.get("callback_data")) for b in buttons]
            raise LoopbackError(
                f"no button {button!r} in message {stored.message_id} of chat {state.id}; "
                f"its keyboard has {offered or 'no buttons'}"
            )
        data = chosen.get("callback_data")
        if not isinstance(data, str):
            raise LoopbackError(
                f"button {chosen.get('text')!r} sends no callback_data (it is {chosen})"
            )
        return self.api.world.new_callback_query(self._user, state, current, data)

    async def press_data(self, message_id: int, chat_id: int, data: str) -> JSONDict:
        """Send a callback query with any ``data`` for any message, as a forged or stale
        client would; a message the server does not know is sent as inaccessible."""
        world = self.api.world
        state = world.chats.get(chat_id)
        if state is None:
            raise LoopbackError(f"no chat {chat_id}")
        stored = world.find_message(state, message_id)
        if stored is not None:
            message = stored.snapshot()
        else:
            message = {"chat": state.to_api(), "message_id": message_id, "date": 0}
        return world.new_callback_query(self._user, state, message, data)

    # -- reading -------------------------------------------------------------------------

    def messages(self) -> list[JSONDict]:
        """What the bot sent in this person's private chat."""
        return self.api.messages(self.id)
