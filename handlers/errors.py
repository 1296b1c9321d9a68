"""The one error handler: log with the traceback, tell the member, lose nothing."""

from __future__ import annotations

import logging
from typing import Any

from telegram import Update
from telegram.constants import ParseMode
from telegram.error import BadRequest, Forbidden, NetworkError, TelegramError
from telegram.ext import Application

from bot.app import ConciergeContext
from bot.services import inbox, members
from bot.texts import text

logger = logging.getLogger(__name__)


async def on_error(update: object, context: ConciergeContext) -> None:
    """Log the failure, let a redelivery be handled again, and tell the member."""
    error = context.error
    user = update.effective_user if isinstance(update, Update) else None
    user_id = user.id if user is not None else None
    services = context.services
    if isinstance(error, Forbidden) and user_id is not None:
        logger.warning("user %s blocked the bot; marked unreachable", user_id)
        await services.call(members.mark_unreachable, user_id=user_id)
        return
    # Ids only: message texts are personal data and stay out of the logs.
    logger.error(
        "error handling update %s (user %s)",
        update.update_id if isinstance(update, Update) else None,
        user_id,
        exc_info=error,
    )
    if not isinstance(update, Update):
        return
    # Not handled. Telegram unreachable: the inbox tries again later, the member hears nothing
    # yet. Anything else: a repeat delivery gets another chance, and the member is told now.
    retried = await services.call(
        inbox.handling_failed,
        update_id=update.update_id,
        retry=isinstance(error, NetworkError) and not isinstance(error, BadRequest),
        now=services.clock(),
    )
    if retried:
        logger.warning("update %s will be tried again", update.update_id)
        return
    chat = update.effective_chat
    if chat is None or chat.type != "private" or user_id is None:
        return
    language = await services.call(
        members.language_of,
        user_id=user_id,
        fallback=members.language_for(user.language_code if user else None),
    )
    try:
        await context.bot.send_message(chat.id, text("error", language), parse_mode=ParseMode.HTML)
    except TelegramError as exc:
        logger.warning("could not tell user %s about the error: %s", user_id, exc)


def register(app: Application[Any, Any, Any, Any, Any, Any]) -> None:
    app.add_error_handler(on_error)
