"""The Bot API methods the loopback server implements, on top of :class:`World`.

Each method takes the decoded :class:`Params` and returns the ``result`` of the answer,
shaped as the Bot API documents it, or raises :class:`ApiError` with the description
Telegram gives for the same mistake.
"""

from __future__ import annotations

import copy
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from ._errors import bad_request
from ._params import Params, Upload
from ._state import (
    TOPIC_ICON_COLORS,
    CallbackAnswer,
    ChatAction,
    ChatState,
    JSONDict,
    StoredFile,
    StoredMessage,
)
from ._text import MAX_CAPTION_LENGTH, MAX_TEXT_LENGTH, check_entities, format_text
from ._world import Webhook, World, now, scope_key

Handler = Callable[[Params], Awaitable[Any]]

_CHAT_ACTIONS = frozenset(
    {
        "typing",
        "upload_photo",
        "record_video",
        "upload_video",
        "record_voice",
        "upload_voice",
        "upload_document",
        "choose_sticker",
        "find_location",
        "record_video_note",
        "upload_video_note",
    }
)
_BUTTON_ACTIONS = frozenset(
    {
        "callback_data",
        "url",
        "login_url",
        "switch_inline_query",
        "switch_inline_query_current_chat",
        "switch_inline_query_chosen_chat",
        "callback_game",
        "pay",
        "web_app",
        "copy_text",
    }
)
_SCOPE_TYPES = frozenset(
    {
        "default",
        "all_private_chats",
        "all_group_chats",
        "all_chat_administrators",
        "chat",
        "chat_administrators",
        "chat_member",
    }
)
_COMMAND = re.compile(r"[a-z0-9_]{1,32}\Z")
_SECRET = re.compile(r"[A-Za-z0-9_-]{1,256}\Z")
_NOT_MODIFIED = (
    "message is not modified: specified new message content and reply markup are exactly "
    "the same as a current content and reply markup of the message"
)
_CONTENT_KEYS = ("text", "entities", "caption", "caption_entities", "reply_markup")
_MEDIA_KEYS = ("document", "photo", "sticker", "video", "audio", "voice", "animation")


@dataclass(frozen=True)
class Described:
    """A result that Telegram answers together with a ``description`` (setWebhook)."""

    result: Any
    description: str


def check_markup(
    raw: Any, *, inline_only: bool = False
) -> tuple[JSONDict | None, JSONDict | None]:
    """Validate ``reply_markup``: returns (inline keyboard, other keyboard)."""
    if raw is None:
        return None, None
    if not isinstance(raw, dict):
        raise bad_request("can't parse reply keyboard markup JSON object")
    if "inline_keyboard" not in raw:
        if inline_only or not {"keyboard", "remove_keyboard", "force_reply"} & raw.keys():
            raise bad_request("can't parse inline keyboard markup JSON object")
        return None, copy.deepcopy(raw)
    rows = raw["inline_keyboard"]
    if not isinstance(rows, list) or not all(isinstance(row, list) for row in rows):
        raise bad_request(
            'can\'t parse inline keyboard markup: field "inline_keyboard" '
            "must be an Array of Arrays"
        )
    for row in rows:
        for button in row:
            if not isinstance(button, dict) or not isinstance(button.get("text"), str):
                raise bad_request(
                    'can\'t parse inline keyboard button: Field "text" must be of type String'
                )
            if not _BUTTON_ACTIONS & button.keys():
                raise bad_request(
                    "can't parse inline keyboard button: "
                    "Text buttons are unallowed in the inline keyboard"
                )
            data = button.get("callback_data")
            if data is not None and (
                not isinstance(data, str) or not 1 <= len(data.encode("utf-8")) <= 64
            ):
                raise bad_request("BUTTON_DATA_INVALID")
            url = button.get("url")
            if url is not None and (not isinstance(url, str) or not url.strip()):
                raise bad_request("BUTTON_URL_INVALID")
    return {"inline_keyboard": copy.deepcopy(rows)}, None


def _shown_markup(inline: JSONDict | None) -> JSONDict | None:
    """The reply_markup a Message carries: only a non-empty inline keyboard."""
    if inline and any(inline["inline_keyboard"]):
        return {"inline_keyboard": [row for row in inline["inline_keyboard"] if row]}
    return None


def _set(message: JSONDict, key: str, value: Any) -> None:
    if value:
        message[key] = value
    else:
        message.pop(key, None)


class BotApiMethods:
    """The implemented Bot API methods, by canonical name."""

    def __init__(self, world: World) -> None:
        self.world = world
        self.table: dict[str, Handler] = {
            "getMe": self.get_me,
            "logOut": self.log_out,
            "close": self.close,
            "getUpdates": self.get_updates,
            "setWebhook": self.set_webhook,
            "deleteWebhook": self.delete_webhook,
            "getWebhookInfo": self.get_webhook_info,
            "sendMessage": self.send_message,
            "sendDocument": self.send_document,
            "sendPhoto": self.send_photo,
            "editMessageText": self.edit_message_text,
            "editMessageCaption": self.edit_message_caption,
            "editMessageReplyMarkup": self.edit_message_reply_markup,
            "deleteMessage": self.delete_message,
            "copyMessage": self.copy_message,
            "forwardMessage": self.forward_message,
            "answerCallbackQuery": self.answer_callback_query,
            "sendChatAction": self.send_chat_action,
            "setMyCommands": self.set_my_commands,
            "getMyCommands": self.get_my_commands,
            "deleteMyCommands": self.delete_my_commands,
            "getChat": self.get_chat,
            "getChatMember": self.get_chat_member,
            "getChatAdministrators": self.get_chat_administrators,
            "getChatMemberCount": self.get_chat_member_count,
            "createForumTopic": self.create_forum_topic,
            "editForumTopic": self.edit_forum_topic,
            "closeForumTopic": self.close_forum_topic,
            "reopenForumTopic": self.reopen_forum_topic,
            "deleteForumTopic": self.delete_forum_topic,
            "getFile": self.get_file,
        }

    # -- helpers -----------------------------------------------------------------------------

    def _format(
        self, p: Params, text_key: str, entities_key: str
    ) -> tuple[str | None, str, list[JSONDict]]:
        source = p.text(text_key)
        raw_entities = p.json(entities_key)
        entities = check_entities(raw_entities, entities_key) if raw_entities is not None else None
        plain, found = format_text(
            source,
            p.text("parse_mode"),
            entities,
            strict_ampersand=self.world.strict_html,
            users=self.world.users,
        )
        return source, plain, found

    def _reply_target(self, chat: ChatState, p: Params) -> StoredMessage | None:
        parameters = p.json_object("reply_parameters")
        if parameters is not None:
            message_id = parameters.get("message_id")
            allow = bool(parameters.get("allow_sending_without_reply", False))
            if not isinstance(message_id, int):
                raise bad_request("can't parse reply parameters: message_id is not specified")
            other = parameters.get("chat_id")
            if other is not None and other != chat.id:
                chat = self.world.chat(other)
        else:
            message_id = p.integer("reply_to_message_id")
            allow = p.flag("allow_sending_without_reply")
            if message_id is None:
                return None
        target = self.world.find_message(chat, message_id)
        if target is None and not allow:
            raise bad_request("message to be replied not found")
        return target

    def _placement(self, chat: ChatState, p: Params) -> tuple[int | None, StoredMessage | None]:
        reply_to = self._reply_target(chat, p)
        thread = p.integer("message_thread_id")
        if thread is None and reply_to is not None and chat.is_forum:
            thread = reply_to.thread_id
        return self.world.thread_for_post(chat, thread), reply_to

    def _new_bot_message(
        self, chat: ChatState, p: Params, content: JSONDict, source: str | None
    ) -> StoredMessage:
        inline, keyboard = check_markup(p.json("reply_markup"))
        thread_id, reply_to = self._placement(chat, p)
        message = self.world.message_base(
            chat, self.world.bot_user, thread_id=thread_id, reply_to=reply_to
        )
        message.update(content)
        if p.flag("protect_content"):
            message["has_protected_content"] = True
        _set(message, "reply_markup", _shown_markup(inline))
        return self.world.store(
            chat,
            message,
            from_bot=True,
            source=source,
            parse_mode=p.text("parse_mode"),
            reply_keyboard=keyboard,
            disable_notification=p.flag("disable_notification"),
        )

    def _message_id(self, p: Params) -> int:
        value = p.integer("message_id", required=True, empty="message identifier is not specified")
        assert value is not None
        return value

    def _editable(self, p: Params) -> StoredMessage:
        if p.has("inline_message_id") and not p.has("chat_id"):
            raise bad_request("MESSAGE_ID_INVALID")
        chat = self.world.writable_chat(p.chat_id())
        stored = self.world.find_message(chat, self._message_id(p))
        if stored is None or stored.service:
            raise bad_request("message to edit not found")
        if not stored.from_bot:
            raise bad_request("message can't be edited")
        return stored

    def _commit_edit(self, stored: StoredMessage, new: JSONDict, source: str | None) -> JSONDict:
        current = stored.current
        if all(current.get(key) == new.get(key) for key in _CONTENT_KEYS):
            raise bad_request(_NOT_MODIFIED)
        new["edit_date"] = now()
        self.world.revise(stored, new, source)
        return stored.snapshot()

    def _forum(self, p: Params) -> ChatState:
        chat = self.world.chat(p.chat_id())
        if not chat.is_forum:
            raise bad_request("the chat is not a forum")
        if not self.world.bot_can_manage_topics(chat):
            raise bad_request("not enough rights to manage topics")
        return chat

    def _thread_id(self, p: Params) -> int:
        value = p.integer("message_thread_id", required=True)
        assert value is not None
        return value

    def _file_from(self, p: Params, kind: str) -> StoredFile:
        value = p.file(kind)
        if value is None:
            raise bad_request(f"there is no {kind} in the request")
        if isinstance(value, Upload):
            mime = value.content_type
            if kind == "document" and mime in ("", "application/octet-stream"):
                mime = ""
            return self.world.register_file(
                value.content,
                kind=kind,
                file_name=value.filename if kind == "document" else None,
                mime_type=mime or None,
            )
        if value.startswith(("http://", "https://")):
            raise bad_request("failed to get HTTP URL content")
        stored = self.world.files.get(value)
        if stored is None:
            raise bad_request("wrong file identifier/HTTP URL specified")
        return stored

    # -- identity and updates -------------------------------------------------------------

    async def get_me(self, p: Params) -> JSONDict:
        """getMe: the bot's User."""
        del p
        return copy.deepcopy(self.world.bot_user)

    async def log_out(self, p: Params) -> bool:
        """logOut: accepted and ignored."""
        del p
        return True

    async def close(self, p: Params) -> bool:
        """close: accepted and ignored."""
        del p
        return True

    async def get_updates(self, p: Params) -> list[JSONDict]:
        """getUpdates with offset, limit, timeout (long poll) and allowed_updates."""
        allowed = p.json_list("allowed_updates")
        if allowed is not None:
            self.world.allowed_updates = [str(kind) for kind in allowed]
        limit = p.integer("limit")
        limit = 100 if limit is None or limit <= 0 else min(limit, 100)
        timeout = p.number("timeout") or 0.0
        return await self.world.get_updates(p.integer("offset"), limit, min(timeout, 50.0))

    async def set_webhook(self, p: Params) -> Described:
        """setWebhook: an empty url removes the webhook."""
        url = p.text("url") or ""
        if not url:
            return await self.delete_webhook(p)
        if not url.startswith(("http://", "https://")):
            raise bad_request("bad webhook: An HTTPS URL must be provided for webhook")
        secret = p.text("secret_token")
        if secret is not None and not _SECRET.match(secret):
            raise bad_request("secret token contains unallowed characters")
        allowed = p.json_list("allowed_updates")
        if allowed is not None:
            self.world.allowed_updates = [str(kind) for kind in allowed]
        webhook = Webhook(
            url=url,
            secret_token=secret,
            max_connections=p.integer("max_connections") or 40,
            ip_address=p.text("ip_address"),
        )
        old = self.world.webhook
        unchanged = old is not None and (old.url, old.secret_token) == (url, secret)
        self.world.set_webhook(webhook, drop_pending=p.flag("drop_pending_updates"))
        return Described(True, "Webhook is already set" if unchanged else "Webhook was set")

    async def delete_webhook(self, p: Params) -> Described:
        """deleteWebhook."""
        had = self.world.webhook is not None
        self.world.set_webhook(None, drop_pending=p.flag("drop_pending_updates"))
        return Described(True, "Webhook was deleted" if had else "Webhook is already deleted")

    async def get_webhook_info(self, p: Params) -> JSONDict:
        """getWebhookInfo."""
        del p
        webhook = self.world.webhook
        info: JSONDict = {
            "url": webhook.url if webhook else "",
            "has_custom_certificate": False,
            "pending_update_count": len(self.world.pending),
        }
        if webhook is not None:
            info["max_connections"] = webhook.max_connections
            if webhook.ip_address:
                info["ip_address"] = webhook.ip_address
            if webhook.last_error_date is not None:
                info["last_error_date"] = webhook.last_error_date
                info["last_error_message"] = webhook.last_error_message
        if self.world.allowed_updates:
            info["allowed_updates"] = list(self.world.allowed_updates)
        return info

    # -- sending -------------------------------------------------------------------------------

    async def send_message(self, p: Params) -> JSONDict:
        """sendMessage."""
        chat = self.world.writable_chat(p.chat_id())
        if not p.has("text"):
            raise bad_request("message text is empty")
        source, plain, entities = self._format(p, "text", "entities")
        if not plain:
            raise bad_request("message text is empty")
        if len(plain) > MAX_TEXT_LENGTH:
            raise bad_request("message is too long")
        content: JSONDict = {"text": plain}
        _set(content, "entities", entities)
        _set(content, "link_preview_options", p.json_object("link_preview_options"))
        return self._new_bot_message(chat, p, content, source).snapshot()

    async def _send_media(self, p: Params, kind: str) -> JSONDict:
        chat = self.world.writable_chat(p.chat_id())
        stored_file = self._file_from(p, kind)
        source, caption, entities = self._format(p, "caption", "caption_entities")
        if len(caption) > MAX_CAPTION_LENGTH:
            raise bad_request("message caption is too long")
        content: JSONDict = {}
        if kind == "photo":
            content["photo"] = [
                {
                    "file_id": stored_file.file_id,
                    "file_unique_id": stored_file.file_unique_id,
                    "file_size": stored_file.file_size,
                    "width": 1280,
                    "height": 960,
                }
            ]
        else:
            document: JSONDict = {
                "file_id": stored_file.file_id,
                "file_unique_id": stored_file.file_unique_id,
                "file_size": stored_file.file_size,
            }
            _set(document, "file_name", stored_file.file_name)
            _set(document, "mime_type", stored_file.mime_type)
            content["document"] = document
        _set(content, "caption", caption)
        _set(content, "caption_entities", entities)
        return self._new_bot_message(chat, p, content, source).snapshot()

    async def send_document(self, p: Params) -> JSONDict:
        """sendDocument (upload or file_id)."""
        return await self._send_media(p, "document")

    async def send_photo(self, p: Params) -> JSONDict:
        """sendPhoto (upload or file_id)."""
        return await self._send_media(p, "photo")

    async def copy_message(self, p: Params) -> JSONDict:
        """copyMessage: returns the MessageId of the copy."""
        source_chat = self.world.chat(p.chat_id("from_chat_id"))
        chat = self.world.writable_chat(p.chat_id())
        original = self.world.find_message(source_chat, self._message_id(p))
        if original is None:
            raise bad_request("message to copy not found")
        if original.service:
            raise bad_request("message can't be copied")
        content = {
            key: copy.deepcopy(original.current[key])
            for key in ("text", "entities", "caption", "caption_entities", *_MEDIA_KEYS)
            if key in original.current
        }
        source = original.source
        if p.has("caption") and "text" not in content:
            source, caption, entities = self._format(p, "caption", "caption_entities")
            _set(content, "caption", caption)
            _set(content, "caption_entities", entities)
        stored = self._new_bot_message(chat, p, content, source)
        return {"message_id": stored.message_id}

    async def forward_message(self, p: Params) -> JSONDict:
        """forwardMessage: the forwarded Message, with forward_origin."""
        source_chat = self.world.chat(p.chat_id("from_chat_id"))
        chat = self.world.writable_chat(p.chat_id())
        original = self.world.find_message(source_chat, self._message_id(p))
        if original is None:
            raise bad_request("message to forward not found")
        if original.service:
            raise bad_request("message can't be forwarded")
        current = original.current
        content = {
            key: copy.deepcopy(current[key])
            for key in ("text", "entities", "caption", "caption_entities", *_MEDIA_KEYS)
            if key in current
        }
        content["forward_origin"] = {
            "type": "user",
            "date": current["date"],
            "sender_user": copy.deepcopy(current.get("from", self.world.bot_user)),
        }
        thread_id = self.world.thread_for_post(chat, p.integer("message_thread_id"))
        message = self.world.message_base(
            chat, self.world.bot_user, thread_id=thread_id, reply_to=None
        )
        message.update(content)
        return self.world.store(chat, message, from_bot=True, source=original.source).snapshot()

    async def send_chat_action(self, p: Params) -> bool:
        """sendChatAction (recorded in ``chat_actions``)."""
        chat = self.world.writable_chat(p.chat_id())
        action = p.text("action", required=True, empty="action is empty")
        if action not in _CHAT_ACTIONS:
            raise bad_request("wrong parameter action in request")
        thread = p.integer("message_thread_id")
        if thread and chat.is_forum:
            self.world.topic(chat, thread)
        self.world.record_action(ChatAction(chat.id, action, thread, time.time()))
        return True

    # -- editing and deleting -------------------------------------------------------------

    async def edit_message_text(self, p: Params) -> JSONDict:
        """editMessageText: omitting reply_markup removes the inline keyboard, as on Telegram."""
        stored = self._editable(p)
        if "text" not in stored.current:
            raise bad_request("there is no text in the message to edit")
        if not p.has("text"):
            raise bad_request("message text is empty")
        source, plain, entities = self._format(p, "text", "entities")
        if not plain:
            raise bad_request("message text is empty")
        if len(plain) > MAX_TEXT_LENGTH:
            raise bad_request("message is too long")
        inline, _ = check_markup(p.json("reply_markup"), inline_only=True)
        new = copy.deepcopy(stored.current)
        new["text"] = plain
        _set(new, "entities", entities)
        _set(new, "reply_markup", _shown_markup(inline))
        preview = p.json_object("link_preview_options")
        if preview is not None:
            new["link_preview_options"] = preview
        return self._commit_edit(stored, new, source)

    async def edit_message_caption(self, p: Params) -> JSONDict:
        """editMessageCaption."""
        stored = self._editable(p)
        if not any(key in stored.current for key in _MEDIA_KEYS):
            raise bad_request("there is no caption in the message to edit")
        source, caption, entities = self._format(p, "caption", "caption_entities")
        if len(caption) > MAX_CAPTION_LENGTH:
            raise bad_request("message caption is too long")
        inline, _ = check_markup(p.json("reply_markup"), inline_only=True)
        new = copy.deepcopy(stored.current)
        _set(new, "caption", caption)
        _set(new, "caption_entities", entities)
        _set(new, "reply_markup", _shown_markup(inline))
        return self._commit_edit(stored, new, source)

    async def edit_message_reply_markup(self, p: Params) -> JSONDict:
        """editMessageReplyMarkup: no markup (or an empty one) removes the keyboard."""
        stored = self._editable(p)
        inline, _ = check_markup(p.json("reply_markup"), inline_only=True)
        new = copy.deepcopy(stored.current)
        _set(new, "reply_markup", _shown_markup(inline))
        return self._commit_edit(stored, new, stored.source)

    async def delete_message(self, p: Params) -> bool:
        """deleteMessage."""
        chat = self.world.chat(p.chat_id())
        stored = self.world.find_message(chat, self._message_id(p))
        if stored is None:
            raise bad_request("message to delete not found")
        if stored.service and stored.message_id in chat.topics:
            raise bad_request("message can't be deleted")
        self.world.delete(stored)
        return True

    # -- callback queries and commands -----------------------------------------------------

    async def answer_callback_query(self, p: Params) -> bool:
        """answerCallbackQuery (recorded in ``callback_answers``); each query answers once."""
        query_id = p.text("callback_query_id", required=True, empty="query_id is empty")
        assert query_id is not None
        query = self.world.callback_queries.get(query_id)
        if query is None or query["answered"]:
            raise bad_request(
                "query is too old and response timeout expired or query ID is invalid"
            )
        text = p.text("text")
        if text is not None and len(text) > 200:
            raise bad_request("MESSAGE_TOO_LONG")
        query["answered"] = True
        self.world.record_answer(
            CallbackAnswer(
                callback_query_id=query_id,
                text=text,
                show_alert=p.flag("show_alert"),
                url=p.text("url"),
                cache_time=p.integer("cache_time") or 0,
                user_id=query["user_id"],
                data=query["data"],
                chat_id=query["chat_id"],
                message_id=query["message_id"],
            )
        )
        return True

    def _command_key(self, p: Params) -> tuple[str, str]:
        scope = p.json_object("scope")
        if scope is not None and scope.get("type") not in _SCOPE_TYPES:
            raise bad_request("can't parse BotCommandScope JSON object")
        return scope_key(scope), p.text("language_code") or ""

    async def set_my_commands(self, p: Params) -> bool:
        """setMyCommands, stored per (scope, language_code)."""
        commands = p.json_list("commands", required=True)
        assert commands is not None
        if len(commands) > 100:
            raise bad_request("too many commands")
        cleaned: list[JSONDict] = []
        for item in commands:
            if not isinstance(item, dict):
                raise bad_request("can't parse BotCommand JSON object")
            command = str(item.get("command", "")).removeprefix("/")
            description = str(item.get("description", "")).strip()
            if not _COMMAND.match(command):
                raise bad_request("BOT_COMMAND_INVALID")
            if not 1 <= len(description) <= 256:
                raise bad_request("BOT_COMMAND_DESCRIPTION_INVALID")
            cleaned.append({"command": command, "description": description})
        self.world.commands[self._command_key(p)] = cleaned
        self.world.notify()
        return True

    async def get_my_commands(self, p: Params) -> list[JSONDict]:
        """getMyCommands for exactly that (scope, language_code)."""
        return copy.deepcopy(self.world.commands.get(self._command_key(p), []))

    async def delete_my_commands(self, p: Params) -> bool:
        """deleteMyCommands."""
        self.world.commands.pop(self._command_key(p), None)
        self.world.notify()
        return True

    # -- chats and members -----------------------------------------------------------------

    async def get_chat(self, p: Params) -> JSONDict:
        """getChat: a ChatFullInfo."""
        return self.world.chat(p.chat_id()).full_info()

    def _user_id(self, p: Params) -> int:
        value = p.integer("user_id", required=True, empty="user not found")
        assert value is not None
        return value

    async def get_chat_member(self, p: Params) -> JSONDict:
        """getChatMember."""
        chat = self.world.chat(p.chat_id())
        return self.world.member(chat, self._user_id(p))

    async def get_chat_administrators(self, p: Params) -> list[JSONDict]:
        """getChatAdministrators: owners and administrators."""
        chat = self.world.chat(p.chat_id())
        if chat.type == "private":
            raise bad_request("there are no administrators in the private chat")
        return [
            copy.deepcopy(member)
            for member in chat.members.values()
            if member["status"] in ("creator", "administrator")
        ]

    async def get_chat_member_count(self, p: Params) -> int:
        """getChatMemberCount: members that did not leave."""
        chat = self.world.chat(p.chat_id())
        return sum(
            1 for member in chat.members.values() if member["status"] not in ("left", "kicked")
        )

    # -- forum topics --------------------------------------------------------------------------

    async def create_forum_topic(self, p: Params) -> JSONDict:
        """createForumTopic: needs a forum and the can_manage_topics right."""
        chat = self._forum(p)
        name = p.text("name") or ""
        if not name:
            raise bad_request("TOPIC_TITLE_EMPTY")
        if len(name) > 128:
            raise bad_request("topic name is too long")
        color = p.integer("icon_color")
        if color is None:
            color = TOPIC_ICON_COLORS[0]
        elif color not in TOPIC_ICON_COLORS:
            raise bad_request("invalid icon_color specified")
        topic = self.world.open_topic(
            chat, name, color, p.text("icon_custom_emoji_id"), creator=self.world.bot_user
        )
        return topic.to_api()

    async def edit_forum_topic(self, p: Params) -> bool:
        """editForumTopic: name (0-128; empty keeps it) and icon_custom_emoji_id."""
        chat = self._forum(p)
        topic = self.world.topic(chat, self._thread_id(p))
        name = p.text("name")
        emoji = p.text("icon_custom_emoji_id")
        if name is not None and len(name) > 128:
            raise bad_request("topic name is too long")
        if name is None and emoji is None and "icon_custom_emoji_id" not in p.raw:
            raise bad_request("TOPIC_NOT_MODIFIED")
        if name:
            topic.name = name
        if "icon_custom_emoji_id" in p.raw:
            topic.icon_custom_emoji_id = emoji or None
        self.world.notify()
        return True

    async def close_forum_topic(self, p: Params) -> bool:
        """closeForumTopic."""
        chat = self._forum(p)
        topic = self.world.topic(chat, self._thread_id(p))
        if topic.closed:
            raise bad_request("TOPIC_NOT_MODIFIED")
        topic.closed = True
        self.world.notify()
        return True

    async def reopen_forum_topic(self, p: Params) -> bool:
        """reopenForumTopic."""
        chat = self._forum(p)
        topic = self.world.topic(chat, self._thread_id(p))
        if not topic.closed:
            raise bad_request("TOPIC_NOT_MODIFIED")
        topic.closed = False
        self.world.notify()
        return True

    async def delete_forum_topic(self, p: Params) -> bool:
        """deleteForumTopic: the topic and its messages."""
        chat = self._forum(p)
        topic = self.world.topic(chat, self._thread_id(p))
        topic.deleted = True
        for stored in chat.messages.values():
            if stored.thread_id == topic.message_thread_id and not stored.deleted:
                stored.deleted = True
        self.world.notify()
        return True

    # -- files -------------------------------------------------------------------------------

    async def get_file(self, p: Params) -> JSONDict:
        """getFile: a File whose file_path is served under /file/bot<token>/."""
        file_id = p.text("file_id", required=True, empty="file_id is empty")
        assert file_id is not None
        stored = self.world.files.get(file_id)
        if stored is None:
            raise bad_request("invalid file_id")
        return stored.to_file()
