"""Small helpers shared by the handlers: sending split HTML messages, the member's language."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from telegram import InlineKeyboardMarkup, ReplyParameters, Update
from telegram.constants import ParseMode

from bot.app import ConciergeContext
from bot.models import Member
from bot.services import members
from bot.texts import split_message


async def current_member(update: Update, context: ConciergeContext) -> Member | None:
    """The member who sent ``update``, created or refreshed (first name and language only)."""
    user = update.effective_user
    if user is None:
        return None
    return await context.services.call(
        members.touch_member,
        user_id=user.id,
        first_name=user.first_name or "",
        language_code=user.language_code,
    )


@dataclass(frozen=True, slots=True)
class Sent:
    """What the bot needs to know of a message it sent: where it is and what it says."""

    message_id: int
    text: str


async def send(
    context: ConciergeContext,
    chat_id: int,
    html_text: str,
    *,
    keyboard: InlineKeyboardMarkup | None = None,
    reply_to: int | None = None,
) -> Sent:
    """Send HTML in as many messages as Telegram's limit needs; buttons go on the last one.

    Sent as a raw Bot API call: PTB's ``send_message`` would build a whole ``Message`` from
    Telegram's answer (about a tenth of the bot's CPU per question under load), and only its
    id and text are ever used. The rate limiter, retries and error mapping are the same, as
    ``do_api_request`` goes through the same request path.
    """
    parts = split_message(html_text)
    sent: Sent | None = None
    for index, part in enumerate(parts):
        last = index == len(parts) - 1
        parameters: dict[str, Any] = {
            "chat_id": chat_id,
            "text": part,
            "parse_mode": ParseMode.HTML,
        }
        if last and keyboard is not None:
            parameters["reply_markup"] = keyboard
        if reply_to is not None and index == 0:
            parameters["reply_parameters"] = ReplyParameters(
                message_id=reply_to, allow_sending_without_reply=True
            )
        result = await context.bot.do_api_request("sendMessage", api_kwargs=parameters)
        sent = Sent(message_id=int(result["message_id"]), text=str(result.get("text", "")))
    assert sent is not None
    return sent
