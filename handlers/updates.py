"""Drops updates Telegram delivers twice, before any other handler sees them."""

from __future__ import annotations

import logging
from typing import Any

from telegram import Update
from telegram.ext import Application, ApplicationHandlerStop, TypeHandler

from bot.app import ConciergeContext
from bot.services import members

logger = logging.getLogger(__name__)


async def drop_repeats(update: Update, context: ConciergeContext) -> None:
    """Stop handling an update whose id was processed before."""
    first = await context.services.call(members.first_delivery, update_id=update.update_id)
    if not first:
        logger.info("update %s delivered again; ignored", update.update_id)
        raise ApplicationHandlerStop


def register(app: Application[Any, Any, Any, Any, Any, Any]) -> None:
    app.add_handler(TypeHandler(Update, drop_repeats), group=-1)
