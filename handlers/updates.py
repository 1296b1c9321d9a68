"""Before any other handler: drop repeat deliveries and slow down a member who floods the bot."""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

from telegram import Update
from telegram.constants import ParseMode
from telegram.ext import Application, ApplicationHandlerStop, TypeHandler

from bot.app import ConciergeContext
from bot.ingress import HANDLING_OWNER
from bot.services import inbox, members
from bot.texts import text

logger = logging.getLogger(__name__)


async def drop_repeats(update: Update, context: ConciergeContext) -> None:
    """Stop handling an update seen before, or one over the member's per-minute limit."""
    user = update.effective_user
    # Taken from the inbox by this instance: the claim already made sure it is not a repeat.
    # Handed to the Application directly: recorded here, at most once.
    first = HANDLING_OWNER.get() is not None or await context.services.call(
        inbox.first_delivery,
        update_id=update.update_id,
        user_id=user.id if user is not None else None,
        now=context.services.clock(),
    )
    if not first:
        logger.info("update %s delivered again; ignored", update.update_id)
        raise ApplicationHandlerStop
    await _limit_rate(update, context)


async def _limit_rate(update: Update, context: ConciergeContext) -> None:
    """A member's messages past the limit within a minute are not handled; told once."""
    message = update.message
    user = update.effective_user
    limit = context.services.settings.member_messages_per_minute
    if message is None or user is None or message.chat.type != "private" or not limit:
        return
    now = context.services.clock()
    # Counted up to this update: a batch that arrived at once is judged message by message.
    sent = await context.services.call(
        inbox.sent_recently,
        user_id=user.id,
        since=now - timedelta(minutes=1),
        up_to=update.update_id,
    )
    if sent <= limit:
        return
    logger.info(
        "user %s over %s messages a minute; update %s not handled",
        user.id,
        limit,
        update.update_id,
    )
    if sent == limit + 1:
        language = await context.services.call(
            members.language_of, user_id=user.id, fallback=members.language_for(user.language_code)
        )
        await context.bot.send_message(
            message.chat_id, text("rate_limited", language), parse_mode=ParseMode.HTML
        )
    raise ApplicationHandlerStop


def register(app: Application[Any, Any, Any, Any, Any, Any]) -> None:
    app.add_handler(TypeHandler(Update, drop_repeats), group=-1)
