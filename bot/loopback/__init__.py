"""A Telegram-compatible Bot API server on 127.0.0.1, for end-to-end tests and a sandbox.

Telegram is out of reach from where the bot is developed, so this package plays its
part: the real python-telegram-bot ``Bot``/``Application`` talks HTTP to it exactly as it
would to ``api.telegram.org``, while a test acts as the people on the other side::

    async with LoopbackBotApi() as api:
        app = (
            ApplicationBuilder().token(api.token)
            .base_url(api.base_url).base_file_url(api.base_file_url).build()
        )
        ...  # start polling (or a webhook), then:
        ana = api.person(1001, "Ana")
        reply = await ana.ask("Hej!")
        await ana.press(reply, "Yes")

What the server covers: getMe, getUpdates (offset, limit, long poll, 409 while a webhook
is set), setWebhook/deleteWebhook/getWebhookInfo (in-order webhook delivery with the
secret header and retries), sendMessage, sendDocument, sendPhoto, editMessageText,
editMessageCaption, editMessageReplyMarkup, deleteMessage, copyMessage, forwardMessage,
answerCallbackQuery, sendChatAction, set/get/deleteMyCommands, getChat, getChatMember,
getChatAdministrators, getChatMemberCount, create/edit/close/reopen/deleteForumTopic and
getFile with file downloads. Texts are checked like Telegram checks them: HTML parse mode
(tdlib's parser and error messages), the 4096/1024 character limits, whitespace
trimming, inline keyboards (callback_data of 1-64 bytes). Any other method answers 404,
as an unknown method does on Telegram. Markdown parse modes are accepted but not parsed.
"""

from ._errors import ApiError, LoopbackError
from ._person import Person
from ._server import DEFAULT_TOKEN, LoopbackBotApi
from ._state import (
    BotEvent,
    CallbackAnswer,
    ChatAction,
    ChatState,
    DelayRule,
    FailureRule,
    RequestRecord,
    StoredMessage,
    TopicState,
    WebhookDelivery,
)
from ._text import parse_html

__all__ = [
    "DEFAULT_TOKEN",
    "ApiError",
    "BotEvent",
    "CallbackAnswer",
    "ChatAction",
    "ChatState",
    "DelayRule",
    "FailureRule",
    "LoopbackBotApi",
    "LoopbackError",
    "Person",
    "RequestRecord",
    "StoredMessage",
    "TopicState",
    "WebhookDelivery",
    "parse_html",
]
