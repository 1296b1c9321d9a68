"""The member's commands: /start, /help, /language and /mycases."""

from __future__ import annotations

import logging
from typing import Any

from telegram import InlineKeyboardButton, InlineKeyboardMarkup, Update
from telegram.constants import ParseMode
from telegram.ext import (
    Application,
    CallbackQueryHandler,
    CommandHandler,
    MessageHandler,
    filters,
)

from bot.app import ConciergeContext
from bot.services import cases, members
from bot.texts import Html, languages, locale, text
from handlers.common import current_member, send

logger = logging.getLogger(__name__)
_PRIVATE = filters.ChatType.PRIVATE


async def start(update: Update, context: ConciergeContext) -> None:
    """Welcome the member and tell them how their data is handled."""
    member = await current_member(update, context)
    if member is None or update.effective_chat is None:
        return
    settings = context.services.settings
    privacy = text(
        "privacy",
        member.language,
        responsible=settings.responsible,
        url=settings.privacy_url,
        question_days=settings.question_retention_days,
        case_days=settings.case_retention_days,
    )
    await send(
        context,
        update.effective_chat.id,
        text("start", member.language, name=member.first_name or "", privacy=privacy),
    )


async def show_help(update: Update, context: ConciergeContext) -> None:
    """Explain what the bot can do."""
    member = await current_member(update, context)
    if member is None or update.effective_chat is None:
        return
    await send(context, update.effective_chat.id, text("help", member.language))


async def choose_language(update: Update, context: ConciergeContext) -> None:
    """Offer every supported language, each named in itself."""
    member = await current_member(update, context)
    if member is None or update.effective_chat is None:
        return
    buttons = [
        InlineKeyboardButton(locale(code).name, callback_data=f"lang:{code}")
        for code in languages()
    ]
    keyboard = InlineKeyboardMarkup([buttons[i : i + 3] for i in range(0, len(buttons), 3)])
    await send(
        context,
        update.effective_chat.id,
        text("language_choose", member.language),
        keyboard=keyboard,
    )


async def language_chosen(update: Update, context: ConciergeContext) -> None:
    """Store the chosen language; detection leaves it alone from now on."""
    query = update.callback_query
    if query is None or query.data is None:
        return
    language = query.data.removeprefix("lang:")
    if language not in languages():
        await query.answer()
        return
    member = await current_member(update, context)
    if member is None:
        await query.answer()
        return
    await context.services.call(members.set_language, user_id=member.id, language=language)
    await query.answer()
    await query.edit_message_text(text("language_set", language), parse_mode=ParseMode.HTML)


async def my_cases(update: Update, context: ConciergeContext) -> None:
    """List the member's cases with their status."""
    member = await current_member(update, context)
    if member is None or update.effective_chat is None:
        return
    found = await context.services.call(cases.cases_of, member_id=member.id)
    language = member.language
    if not found:
        await send(context, update.effective_chat.id, text("no_cases", language))
        return
    lines = [text("cases_header", language)]
    for case in found:
        question = case.question if len(case.question) <= 80 else case.question[:79] + "…"
        lines.append(
            text(
                "case_line",
                language,
                reference=case.reference or "",
                status=text(f"status_{case.status.value}", language),
                question=question,
            )
        )
    await send(context, update.effective_chat.id, Html("\n".join(lines)))


async def unknown_command(update: Update, context: ConciergeContext) -> None:
    """Point to /help when a command is not one of ours."""
    member = await current_member(update, context)
    if member is None or update.effective_chat is None:
        return
    await send(context, update.effective_chat.id, text("unknown_command", member.language))


def register_fallbacks(app: Application[Any, Any, Any, Any, Any, Any]) -> None:
    """Handlers that catch what no other handler took; registered last."""
    app.add_handler(MessageHandler(_PRIVATE & filters.COMMAND, unknown_command))


def register(app: Application[Any, Any, Any, Any, Any, Any]) -> None:
    app.add_handler(CommandHandler("start", start, filters=_PRIVATE))
    app.add_handler(CommandHandler("help", show_help, filters=_PRIVATE))
    app.add_handler(CommandHandler("language", choose_language, filters=_PRIVATE))
    app.add_handler(CommandHandler("mycases", my_cases, filters=_PRIVATE))
    app.add_handler(CallbackQueryHandler(language_chosen, pattern=r"^lang:"))
