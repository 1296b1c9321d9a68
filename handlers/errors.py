"""The one error handler: log with the traceback, tell the member, lose nothing."""

from __future__ import annotations

import logging
from typing import Any

from telegram import Update
from telegram.constants import ParseMode
from telegram.error import Forbidden, TelegramError
from telegram.ext import Application

from bot.app import ConciergeContext
from bot.services import members
from bot.texts import text

logger = logging.getLogger(__name__)


async def on_error(update: object, context: ConciergeContext) -> None:
    """Log the failure and tell the member something useful."""
    error = context.error
    user_id = (
        update.effective_user.id if isinstance(update, Update) and update.effective_user else None
    )
    if isinstance(error, Forbidden) and user_id is not None:
        logger.warning("user %s blocked the bot; marked unreachable", user_id)
        await context.services.call(members.mark_unreachable, user_id=user_id)
        return
    # Ids only: message texts are personal data and stay out of the logs.
    logger.error(
        "error handling update %s (user %s)",
        update.update_id if isinstance(update, Update) else None,
        user_id,
        exc_info=error,
    )
    if not isinstance(update, Update) or update.effective_chat is None:
        return
    if update.effective_chat.type != "private":
        return
    language = (
        "en"
        if update.effective_user and (update.effective_user.language_code or "").startswith("en")
        else "sv"
    )
    try:
        await context.bot.send_message(
            update.effective_chat.id, text("error", language), parse_mode=ParseMode.HTML
        )
    except TelegramError as exc:
        logger.warning("could not tell user %s about the error: %s", user_id, exc)


def register(app: Application[Any, Any, Any, Any, Any, Any]) -> None:
    app.add_error_handler(on_error)
