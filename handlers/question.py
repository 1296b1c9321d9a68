"""A member's question: routed, answered, clarified or handed to the coordinator."""

from __future__ import annotations

import asyncio
import contextlib
import html
import logging
import re
from collections.abc import AsyncIterator
from typing import Any

from telegram import InlineKeyboardButton, InlineKeyboardMarkup, Update
from telegram.constants import ChatAction
from telegram.error import BadRequest, TelegramError
from telegram.ext import Application, CallbackQueryHandler, MessageHandler, filters

from bot.app import ConciergeContext
from bot.ingress import FIRST_ATTEMPT
from bot.services import cases as case_service
from bot.services import conversation
from bot.services.conversation import (
    AddedToCase,
    AlreadyDone,
    Answered,
    AskWhichCase,
    ButtonRefused,
    Clarify,
    Escalated,
    Outcome,
    SmallTalk,
)
from bot.texts import (
    Html,
    contact_card,
    department_name,
    format_due,
    language_name,
    markdown_to_html,
    text,
)
from handlers import desk, registry
from handlers.common import current_member, send

logger = logging.getLogger(__name__)

# Button data (at most 64 bytes): what to do and with which stored row — never who may do it.
# Row ids are 32-bit (INTEGER on PostgreSQL): a longer number is no row, and looking it up fails.
_FEEDBACK = re.compile(r"^fb:(\d{1,9}):([yn])$")
_CHOICE = re.compile(r"^cl:(\d{1,9}):(\d{1,2}|none)$")
_PENDING = re.compile(r"^pm:(\d{1,9}):([cn])$")
_EASY_READ = re.compile(r"^ll:(\d{1,9})$")
# "typing…" is shown only when the answer takes longer than this (seconds): most come within
# a fraction of a second, and each chat action is one more request to Telegram. With the
# database work on the event loop's thread (SQLite's default, ``Services.call``), it is shown
# while the answer waits for its turn, not while the loop itself is working it out.
TYPING_AFTER = 1.0


async def question_received(update: Update, context: ConciergeContext) -> None:
    """Route a text message, or add it to the member's open case (or to a registration)."""
    message = update.effective_message
    user = update.effective_user
    if message is None or user is None or message.text is None:
        return
    reply_to = message.reply_to_message.message_id if message.reply_to_message else None
    async with typing_if_slow(context, message.chat_id):
        taken = await context.services.call(
            conversation.take_text,
            routing=context.services.routing,
            policy=context.services.policy,
            detector=context.services.language_detector,
            user_id=user.id,
            first_name=user.first_name or "",
            language_code=user.language_code,
            chat_id=message.chat_id,
            text=message.text,
            reply_to_message_id=reply_to,
            update_id=update.update_id,
            first_attempt=FIRST_ATTEMPT.get(),
            now=context.services.clock(),
        )
    member = taken.member
    if taken.outcome is None:
        await registry.answer_registration(
            context, member.id, message.chat_id, message.text, member.language
        )
        return
    await reply_with(context, message.chat_id, taken.outcome, member.language, member.first_name)


@contextlib.asynccontextmanager
async def typing_if_slow(context: ConciergeContext, chat_id: int) -> AsyncIterator[None]:
    """Show "typing…" in the chat if the block is still running after ``TYPING_AFTER``.

    A timer, not a task per message: nearly every answer comes before it is due.
    """

    async def show() -> None:
        try:
            await context.bot.send_chat_action(chat_id, ChatAction.TYPING)
        except TelegramError as exc:  # only a courtesy: the answer still comes
            logger.info("could not show typing in chat %s: %s", chat_id, exc)

    shown: list[asyncio.Task[None]] = []
    timer = asyncio.get_running_loop().call_later(
        TYPING_AFTER, lambda: shown.append(asyncio.create_task(show(), name=f"typing-{chat_id}"))
    )
    try:
        yield
    finally:
        timer.cancel()
        for typing in shown:
            typing.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await typing


async def reply_with(
    context: ConciergeContext,
    chat_id: int,
    outcome: Outcome,
    language: str,
    member_name: str = "",
) -> None:
    """Tell the member what happened, and the desk what it needs to know."""
    if isinstance(outcome, Answered):
        assert outcome.question.id is not None
        article = outcome.article
        body = (
            markdown_to_html(article.body, article.meta.language)
            if article is not None
            else Html(html.escape(outcome.department.description, quote=False))
        )
        if article is not None and article.meta.language != language:
            written_in = language_name(article.meta.language, language)
            body = Html(
                f"{text('article_other_language', language, language=written_in)}\n\n{body}"
            )
        intro = text(
            "answer_intro", language, department=department_name(outcome.department, language)
        )
        keyboard = InlineKeyboardMarkup(
            [
                [
                    InlineKeyboardButton(
                        text("button_helped", language),
                        callback_data=f"fb:{outcome.question.id}:y",
                    )
                ],
                [
                    InlineKeyboardButton(
                        text("button_not_helped", language),
                        callback_data=f"fb:{outcome.question.id}:n",
                    )
                ],
            ]
            + (
                [
                    [
                        InlineKeyboardButton(
                            text("button_easy_read", language),
                            callback_data=f"ll:{outcome.question.id}",
                        )
                    ]
                ]
                if outcome.easy_read
                else []
            )
        )
        card = contact_card(outcome.department, language)
        await send(context, chat_id, Html(f"{intro}\n\n{body}\n\n{card}"), keyboard=keyboard)
    elif isinstance(outcome, Clarify):
        assert outcome.question.id is not None
        rows = [
            [
                InlineKeyboardButton(
                    department_name(department, language),
                    callback_data=f"cl:{outcome.question.id}:{index}",
                )
            ]
            for index, department in enumerate(outcome.departments)
        ]
        rows.append(
            [
                InlineKeyboardButton(
                    text("button_none", language), callback_data=f"cl:{outcome.question.id}:none"
                )
            ]
        )
        await send(
            context, chat_id, text("clarify", language), keyboard=InlineKeyboardMarkup(rows)
        )
    elif isinstance(outcome, Escalated):
        await confirm_case(context, outcome, language)
    elif isinstance(outcome, AddedToCase):
        case = outcome.case
        if outcome.reopened:
            due = format_due(case.due_at, context.services.settings.zone, language)
            reopened = text("member_reopened", language, reference=case.reference or "", due=due)
            await send(context, chat_id, reopened)
        else:
            added = text("added_to_case", language, reference=case.reference or "")
            await send(context, chat_id, added)
        await desk.relay_member_message(
            context, case, member_name, outcome.text, reopened=outcome.reopened
        )
    elif isinstance(outcome, AskWhichCase):
        reference = outcome.case.reference or ""
        keyboard = InlineKeyboardMarkup(
            [
                [
                    InlineKeyboardButton(
                        text("button_belongs", language, reference=reference),
                        callback_data=f"pm:{outcome.pending.id}:c",
                    )
                ],
                [
                    InlineKeyboardButton(
                        text("button_new_question", language),
                        callback_data=f"pm:{outcome.pending.id}:n",
                    )
                ],
            ]
        )
        await send(
            context,
            chat_id,
            text("ask_which_case", language, reference=reference),
            keyboard=keyboard,
        )
    elif isinstance(outcome, SmallTalk):
        await send(context, chat_id, text(f"small_talk_{outcome.kind}", language))
    elif isinstance(outcome, AlreadyDone):
        await send(context, chat_id, text("already_done", language))


async def confirm_case(context: ConciergeContext, outcome: Escalated, language: str) -> None:
    """Give the member the case number and the promise; remember the confirmation message."""
    case = outcome.case
    # Not new but never confirmed: the first attempt died before telling the member.
    if not outcome.new and case.confirmation_message_id is not None:
        await send(
            context,
            case.chat_id,
            text("escalated_again", language, reference=case.reference or ""),
        )
        return
    settings = context.services.settings
    due = format_due(case.due_at, settings.zone, language)
    now = context.services.clock()
    hours = settings.office_hours
    out_of_hours = (
        text(
            "out_of_hours",
            language,
            opening=format_due(hours.next_opening(now), settings.zone, language),
        )
        if not hours.is_open(now)
        else ""
    )
    body = text(
        "escalated",
        language,
        reference=case.reference or "",
        due=due,
        out_of_hours=Html(out_of_hours),
    )
    sent = await send(context, case.chat_id, body)
    services = context.services
    await services.call(
        case_service.record_confirmation,
        case=case,
        message_id=sent.message_id,
        text=sent.text or "",
        now=services.clock(),
    )
    if case.id is not None:
        desk.queue_announcement(context, case.id)


async def button_pressed(update: Update, context: ConciergeContext) -> None:
    """Handle the answer, clarification and follow-up buttons; re-check who pressed."""
    query = update.callback_query
    member = await current_member(update, context)
    if query is None or member is None or query.message is None:
        return
    data = query.data or ""
    language = member.language
    services = context.services
    chat_id = query.message.chat.id
    try:
        if match := _FEEDBACK.match(data):
            helpful = match.group(2) == "y"
            outcome: Outcome = await services.call(
                conversation.give_feedback,
                policy=services.policy,
                member_id=member.id,
                question_id=int(match.group(1)),
                helpful=helpful,
                now=services.clock(),
            )
            await query.answer(text("thanks_feedback", language) if helpful else None)
            await _remove_buttons(query)
            if not helpful:
                await reply_with(context, chat_id, outcome, language, member.first_name)
        elif match := _CHOICE.match(data):
            question_id = int(match.group(1))
            if match.group(2) == "none":
                outcome = await services.call(
                    conversation.choose_coordinator,
                    policy=services.policy,
                    member_id=member.id,
                    question_id=question_id,
                    now=services.clock(),
                )
            else:
                outcome = await services.call(
                    conversation.choose_department,
                    routing=services.routing,
                    member_id=member.id,
                    question_id=question_id,
                    choice=int(match.group(2)),
                    language=language,
                    now=services.clock(),
                )
            await query.answer()
            await _remove_buttons(query)
            await reply_with(context, chat_id, outcome, language, member.first_name)
        elif match := _EASY_READ.match(data):
            easy = await services.call(
                conversation.easy_read_version,
                routing=services.routing,
                member_id=member.id,
                question_id=int(match.group(1)),
            )
            await query.answer()
            title = text("easy_read_title", language, title=easy.meta.title)
            await send(context, chat_id, Html(f"{title}\n\n{markdown_to_html(easy.body)}"))
        elif match := _PENDING.match(data):
            outcome = await services.call(
                conversation.resolve_pending,
                routing=services.routing,
                policy=services.policy,
                member_id=member.id,
                pending_id=int(match.group(1)),
                belongs_to_case=match.group(2) == "c",
                language=language,
                now=services.clock(),
            )
            await query.answer()
            await _remove_buttons(query)
            await reply_with(context, chat_id, outcome, language, member.first_name)
        else:
            raise ButtonRefused("stale")
    except ButtonRefused as refused:
        if refused.reason == "not_yours":
            logger.warning("user %s pressed a button of another member's question", member.id)
        await query.answer(text(f"button_{refused.reason}", language), show_alert=True)


async def _remove_buttons(query: Any) -> None:
    try:
        await query.edit_message_reply_markup(reply_markup=None)
    except BadRequest as exc:  # already removed, or too old to edit: nothing is lost
        logger.info("could not remove buttons: %s", exc)


def register(app: Application[Any, Any, Any, Any, Any, Any]) -> None:
    app.add_handler(
        MessageHandler(
            filters.ChatType.PRIVATE & filters.TEXT & ~filters.COMMAND, question_received
        )
    )
    app.add_handler(CallbackQueryHandler(button_pressed, pattern=r"^(fb|cl|pm|ll):"))
    app.add_handler(CallbackQueryHandler(button_pressed))
