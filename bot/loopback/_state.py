"""Records kept by the loopback server: chats, messages, topics, files and what the bot did."""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

JSONDict = dict[str, Any]

#: The icon colours Telegram allows for forum topics.
TOPIC_ICON_COLORS = (7322096, 16766590, 13338331, 9367192, 16749490, 16478047)


@dataclass
class StoredFile:
    """A file known to the server: uploaded by the bot or sent by a person."""

    file_id: str
    file_unique_id: str
    content: bytes
    file_path: str
    file_name: str | None = None
    mime_type: str | None = None

    @property
    def file_size(self) -> int:
        """Size in bytes."""
        return len(self.content)

    def to_file(self) -> JSONDict:
        """The Bot API ``File`` object (``file_path`` relative, as Telegram sends it)."""
        return {
            "file_id": self.file_id,
            "file_unique_id": self.file_unique_id,
            "file_size": self.file_size,
            "file_path": self.file_path,
        }


@dataclass
class StoredMessage:
    """One message in a chat with every version it had (oldest first)."""

    chat_id: int
    message_id: int
    from_bot: bool
    versions: list[JSONDict]
    thread_id: int | None = None
    service: bool = False
    deleted: bool = False
    #: The text or caption as the bot sent it (e.g. HTML), for each version.
    sources: list[str | None] = field(default_factory=list)
    parse_mode: str | None = None
    #: A reply keyboard / remove-keyboard / force-reply markup (not part of the Message).
    reply_keyboard: JSONDict | None = None
    disable_notification: bool = False

    @property
    def current(self) -> JSONDict:
        """The latest version of the message."""
        return self.versions[-1]

    @property
    def source(self) -> str | None:
        """The text as the bot last sent it, before parsing."""
        return self.sources[-1] if self.sources else None

    def snapshot(self) -> JSONDict:
        """A deep copy of the latest version, safe to hand out."""
        return copy.deepcopy(self.current)


@dataclass
class TopicState:
    """A forum topic."""

    chat_id: int
    message_thread_id: int
    name: str
    icon_color: int
    icon_custom_emoji_id: str | None = None
    closed: bool = False
    deleted: bool = False

    def to_api(self) -> JSONDict:
        """The Bot API ``ForumTopic`` object."""
        topic: JSONDict = {
            "message_thread_id": self.message_thread_id,
            "name": self.name,
            "icon_color": self.icon_color,
        }
        if self.icon_custom_emoji_id:
            topic["icon_custom_emoji_id"] = self.icon_custom_emoji_id
        return topic


@dataclass
class ChatState:
    """A private chat, group or supergroup."""

    id: int
    type: str
    title: str | None = None
    username: str | None = None
    first_name: str | None = None
    last_name: str | None = None
    is_forum: bool = False
    members: dict[int, JSONDict] = field(default_factory=dict)
    messages: dict[int, StoredMessage] = field(default_factory=dict)
    topics: dict[int, TopicState] = field(default_factory=dict)
    next_message_id: int = 1

    def allocate_message_id(self) -> int:
        """A fresh message id, increasing per chat."""
        message_id = self.next_message_id
        self.next_message_id += 1
        return message_id

    def to_api(self) -> JSONDict:
        """The Bot API ``Chat`` object, as embedded in messages."""
        chat: JSONDict = {"id": self.id, "type": self.type}
        for key in ("title", "username", "first_name", "last_name"):
            value = getattr(self, key)
            if value is not None:
                chat[key] = value
        if self.is_forum:
            chat["is_forum"] = True
        return chat

    def full_info(self) -> JSONDict:
        """The Bot API ``ChatFullInfo`` object returned by getChat."""
        info = self.to_api()
        info.update(
            {
                "accent_color_id": self.id % 7,
                "max_reaction_count": 11,
                "accepted_gift_types": {
                    "unlimited_gifts": False,
                    "limited_gifts": False,
                    "unique_gifts": False,
                    "premium_subscription": False,
                    "gifts_from_channels": False,
                },
            }
        )
        if self.type != "private":
            info["permissions"] = {
                "can_send_messages": True,
                "can_send_audios": True,
                "can_send_documents": True,
                "can_send_photos": True,
                "can_send_videos": True,
                "can_send_video_notes": True,
                "can_send_voice_notes": True,
                "can_send_polls": True,
                "can_send_other_messages": True,
                "can_add_web_page_previews": True,
                "can_change_info": False,
                "can_invite_users": True,
                "can_pin_messages": False,
                "can_manage_topics": False,
            }
        return info


@dataclass(frozen=True)
class CallbackAnswer:
    """An answerCallbackQuery call, with the query it answered."""

    callback_query_id: str
    text: str | None
    show_alert: bool
    url: str | None
    cache_time: int
    user_id: int | None
    data: str | None
    chat_id: int | None
    message_id: int | None


@dataclass(frozen=True)
class ChatAction:
    """A sendChatAction call."""

    chat_id: int
    action: str
    message_thread_id: int | None
    at: float


@dataclass(frozen=True)
class RequestRecord:
    """One Bot API call the server answered."""

    method: str
    params: JSONDict
    status: int
    description: str | None
    at: float


@dataclass(frozen=True)
class BotEvent:
    """Something the bot did to a message: sent (``new``), edited or deleted it."""

    seq: int
    kind: str
    chat_id: int
    message_id: int
    thread_id: int | None
    message: JSONDict


@dataclass(frozen=True)
class WebhookDelivery:
    """One attempt to POST an update to the webhook."""

    update_id: int
    attempt: int
    status: int | None
    error: str | None
    at: float


@dataclass
class FailureRule:
    """An injected error answer for the next calls of a method."""

    method: str
    error_code: int
    description: str
    parameters: JSONDict | None
    remaining: int
    chat_id: int | str | None = None


@dataclass
class DelayRule:
    """An injected delay for the next calls of a method (``remaining`` None: until cleared)."""

    method: str
    seconds: float
    remaining: int | None
    after: bool
    chat_id: int | str | None = None
