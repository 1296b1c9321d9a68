"""Before everything else: set aside updates in a shape Telegram never sends.

python-telegram-bot reads such updates without complaint (a message without a chat becomes a
``Message`` whose ``chat`` is ``None``), and then its own filters and every handler that asks
where the message came from fail on them, or (a button press without data) the first handler
with any pattern takes it and does nothing. They are logged and not handled.
"""

from __future__ import annotations

import logging
from typing import Any

from telegram import Update
from telegram.ext import Application, ApplicationHandlerStop, TypeHandler

from bot.app import ConciergeContext

logger = logging.getLogger(__name__)


def malformed(update: Update) -> str | None:
    """What is wrong with ``update``, or ``None`` when it can be handled."""
    message = update.effective_message
    if message is not None and getattr(message, "chat", None) is None:
        return "a message without a chat"
    query = update.callback_query
    if query is not None and query.data is None and query.game_short_name is None:
        # Every CallbackQueryHandler with a pattern would take it (PTB matches a press without
        # data to any pattern), and the first one would make nothing of it.
        return "a button press without data"
    if query is not None and query.message is None:
        # Inline mode, which this bot does not offer: there is no chat to answer in.
        return "a button press on no message"
    return None


async def set_aside(update: Update, _context: ConciergeContext) -> None:
    """Stop handling an update that no handler can make sense of."""
    problem = malformed(update)
    if problem is not None:
        logger.warning("update %s ignored: %s", update.update_id, problem)
        raise ApplicationHandlerStop


def register(app: Application[Any, Any, Any, Any, Any, Any]) -> None:
    app.add_handler(TypeHandler(Update, set_aside), group=-2)
