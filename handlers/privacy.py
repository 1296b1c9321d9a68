"""The member's personal data: /mydata (everything stored, as JSON) and /forget."""

from __future__ import annotations

import io
import json
import logging
from datetime import time
from typing import Any

from telegram import InlineKeyboardButton, InlineKeyboardMarkup, Update
from telegram.error import BadRequest
from telegram.ext import Application, CallbackQueryHandler, CommandHandler, filters

from bot.app import ConciergeContext, leader_only
from bot.services import desk as desk_service
from bot.services import members, privacy, retention
from bot.texts import Html, text
from handlers.common import current_member, send

logger = logging.getLogger(__name__)
_PRIVATE = filters.ChatType.PRIVATE


async def mydata_command(update: Update, context: ConciergeContext) -> None:
    """Send everything stored about the member as a JSON document."""
    member = await current_member(update, context)
    if member is None or update.effective_chat is None:
        return
    document = await context.services.call_long(privacy.export_member, member_id=member.id)
    data = json.dumps(document, ensure_ascii=False, indent=2).encode()
    await context.bot.send_document(
        update.effective_chat.id,
        io.BytesIO(data),
        filename="mina-uppgifter.json",
        caption=text("mydata_caption", member.language),
    )


async def forget_command(update: Update, context: ConciergeContext) -> None:
    """Ask before deleting anything."""
    member = await current_member(update, context)
    if member is None or update.effective_chat is None:
        return
    keyboard = InlineKeyboardMarkup(
        [
            [
                InlineKeyboardButton(text("forget_yes", member.language), callback_data="fg:yes"),
                InlineKeyboardButton(text("forget_no", member.language), callback_data="fg:no"),
            ]
        ]
    )
    await send(
        context,
        update.effective_chat.id,
        text("forget_confirm", member.language),
        keyboard=keyboard,
    )


async def forget_pressed(update: Update, context: ConciergeContext) -> None:
    """Forget the member who pressed (never anyone named in the button)."""
    query = update.callback_query
    user = update.effective_user
    if query is None or user is None or query.message is None:
        return
    # Read before the profile is gone: the goodbye comes in the member's own language.
    language = await context.services.call(
        members.language_of, user_id=user.id, fallback=members.language_for(user.language_code)
    )
    await query.answer()
    try:
        await query.edit_message_reply_markup(reply_markup=None)
    except BadRequest as exc:  # gone, too old or never ours to edit: the answer still counts
        logger.info("could not remove the /forget buttons: %s", exc)
    if query.data != "fg:yes":
        await send(context, query.message.chat.id, text("forget_cancelled", language))
        return
    services = context.services
    report = await services.call_long(
        privacy.forget_member,
        member_id=user.id,
        retention_days=services.settings.case_retention_days,
        now=services.clock(),
    )
    logger.info(
        "member %s forgotten; %s case(s) kept as restricted records",
        user.id,
        len(report.kept_cases),
    )
    if report.kept_cases:
        kept = "\n".join(
            f"• {reference} – {until.astimezone(services.settings.zone):%Y-%m-%d}"
            for reference, until in report.kept_cases
        )
        body = text("forgotten_kept", language, kept=kept)
    else:
        body = text("forgotten", language)
    await send(context, query.message.chat.id, Html(body))


async def nightly_retention(context: ConciergeContext) -> None:
    """Remove what is past its retention period, once a night (whichever instance runs it)."""
    services = context.services
    settings = services.settings
    now = services.clock()
    day = now.astimezone(settings.zone).strftime("retention-%Y-%m-%d")
    if not await services.call(desk_service.claim_digest, day=day):
        return
    removed = await services.call_long(
        retention.run,
        now=now,
        question_days=settings.question_retention_days,
        case_days=settings.case_retention_days,
    )
    logger.info("retention: removed %s", removed)


def schedule_retention(app: Application[Any, Any, Any, Any, Any, Any], zone: Any) -> None:
    if app.job_queue is not None:
        app.job_queue.run_daily(
            leader_only(nightly_retention), time=time(2, 30, tzinfo=zone), name="retention"
        )


def register(app: Application[Any, Any, Any, Any, Any, Any]) -> None:
    app.add_handler(CommandHandler("mydata", mydata_command, filters=_PRIVATE))
    app.add_handler(CommandHandler("forget", forget_command, filters=_PRIVATE))
    app.add_handler(CallbackQueryHandler(forget_pressed, pattern=r"^fg:"))
