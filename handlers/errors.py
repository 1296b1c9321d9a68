"""The one error handler: log with the traceback, tell the member, lose nothing."""

from __future__ import annotations

import logging
from typing import Any

import sqlalchemy as sa
from telegram import Update
from telegram.constants import ParseMode
from telegram.error import BadRequest, Forbidden, NetworkError, RetryAfter, TelegramError
from telegram.ext import Application, ApplicationHandlerStop

from bot.app import ConciergeContext
from bot.ingress import HANDLING_OWNER
from bot.services import inbox, members
from bot.texts import text

logger = logging.getLogger(__name__)


def _passing(error: object) -> bool:
    """Trouble that goes away by itself: Telegram or the database away for a while."""
    if isinstance(error, BadRequest):
        return False  # refused for good
    return isinstance(error, NetworkError | RetryAfter | sa.exc.OperationalError)


def _member_blocked(error: object) -> bool:
    """A 403 for the member's own chat (blocked, deactivated) — not, say, the bot removed from
    the coordinators' group while handling the member's question."""
    message = str(error).lower()
    return isinstance(error, Forbidden) and ("blocked" in message or "deactivated" in message)


async def on_error(update: object, context: ConciergeContext) -> None:
    """Log the failure, leave the update to the inbox (retry or give up), tell the member.

    Ends with ``ApplicationHandlerStop``: handlers of later groups must not handle an update
    whose handling just failed.
    """
    error = context.error
    user = update.effective_user if isinstance(update, Update) else None
    user_id = user.id if user is not None else None
    services = context.services
    if _member_blocked(error) and user_id is not None:
        logger.warning("user %s blocked the bot; marked unreachable", user_id)
        await services.call(members.mark_unreachable, user_id=user_id)
        raise ApplicationHandlerStop
    # Ids only: message texts are personal data and stay out of the logs.
    logger.error(
        "error handling update %s (user %s)",
        update.update_id if isinstance(update, Update) else None,
        user_id,
        exc_info=error,
    )
    if not isinstance(update, Update):
        raise ApplicationHandlerStop
    # Passing trouble: the inbox tries again later and the member hears nothing yet. Anything
    # else (a bug): not tried again by itself, and the member is told now.
    retried = await services.call(
        inbox.handling_failed,
        update_id=update.update_id,
        retry=_passing(error),
        owner=HANDLING_OWNER.get(),
        now=services.clock(),
    )
    if retried:
        logger.warning("update %s will be tried again", update.update_id)
        raise ApplicationHandlerStop
    chat = update.effective_chat
    if chat is None or chat.type != "private" or user_id is None:
        raise ApplicationHandlerStop
    language = await services.call(
        members.language_of,
        user_id=user_id,
        fallback=members.language_for(user.language_code if user else None),
    )
    try:
        await context.bot.send_message(chat.id, text("error", language), parse_mode=ParseMode.HTML)
    except TelegramError as exc:
        logger.warning("could not tell user %s about the error: %s", user_id, exc)
    raise ApplicationHandlerStop


def register(app: Application[Any, Any, Any, Any, Any, Any]) -> None:
    app.add_error_handler(on_error)
