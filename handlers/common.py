"""Small helpers shared by the handlers: sending split HTML messages, the member's language."""

from __future__ import annotations

from telegram import InlineKeyboardMarkup, Message, ReplyParameters, Update
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


async def send(
    context: ConciergeContext,
    chat_id: int,
    html_text: str,
    *,
    keyboard: InlineKeyboardMarkup | None = None,
    reply_to: int | None = None,
) -> Message:
    """Send HTML in as many messages as Telegram's limit needs; buttons go on the last one."""
    parts = split_message(html_text)
    sent: Message | None = None
    for index, part in enumerate(parts):
        last = index == len(parts) - 1
        sent = await context.bot.send_message(
            chat_id=chat_id,
            text=part,
            parse_mode=ParseMode.HTML,
            reply_markup=keyboard if last else None,
            reply_parameters=(
                ReplyParameters(message_id=reply_to, allow_sending_without_reply=True)
                if reply_to is not None and index == 0
                else None
            ),
            link_preview_options=None,
        )
    assert sent is not None
    return sent
