"""The association register in Telegram: /register, /cancel, joining, /find, /subscribe."""

from __future__ import annotations

import logging
import re
from typing import Any

from telegram import InlineKeyboardButton, InlineKeyboardMarkup, Update
from telegram.constants import ParseMode
from telegram.error import TelegramError
from telegram.ext import Application, CallbackQueryHandler, CommandHandler, filters

from bot.app import ConciergeContext, leader_only
from bot.models import AssociationCategory
from bot.services import associations
from bot.services.associations import Prompt
from bot.texts import Html, text
from handlers.common import current_member, send

logger = logging.getLogger(__name__)
_PRIVATE = filters.ChatType.PRIVATE
_STEP = re.compile(r"^rg:(\w{1,20}):(\w{1,20})$")
# At most 9 digits: longer numbers are no row id (32-bit), and looking them up fails.
_JOIN = re.compile(r"^aj:(\d{1,9}):([yn])$")
_FIND = re.compile(r"^fd:(\w{1,20})$")
_TOPIC = re.compile(r"^sb:(\w{1,20})$")
_ENTRY = re.compile(r"^ac:(\d{1,9}):(ok|up)$")


def _keyboard(prompt: Prompt, language: str) -> InlineKeyboardMarkup | None:
    if not prompt.buttons:
        return None
    buttons = [
        InlineKeyboardButton(text(key, language), callback_data=data)
        for key, data in prompt.buttons
    ]
    rows = [buttons[i : i + 2] for i in range(0, len(buttons), 2)]
    return InlineKeyboardMarkup(rows)


async def show_prompt(
    context: ConciergeContext, chat_id: int, prompt: Prompt, language: str
) -> None:
    """Say the registration's next step; a finished join request goes to the contact."""
    values = {k: v for k, v in prompt.values.items() if k not in ("link_id", "contact_id")}
    await send(
        context,
        chat_id,
        text(prompt.key, language, **values),
        keyboard=_keyboard(prompt, language),
    )
    if prompt.step == "joined" and prompt.values.get("link_id"):
        await _ask_contact(context, prompt, chat_id)


async def _ask_contact(context: ConciergeContext, prompt: Prompt, member_id: int) -> None:
    contact_id = int(prompt.values["contact_id"])
    name = await context.services.call(associations.member_name, member_id=member_id)
    language = "sv"
    keyboard = InlineKeyboardMarkup(
        [
            [
                InlineKeyboardButton(
                    text("button_yes", language), callback_data=f"aj:{prompt.values['link_id']}:y"
                ),
                InlineKeyboardButton(
                    text("button_no", language), callback_data=f"aj:{prompt.values['link_id']}:n"
                ),
            ]
        ]
    )
    try:
        await context.bot.send_message(
            contact_id,
            text("join_request", language, member=name or "—", name=prompt.values["name"]),
            parse_mode=ParseMode.HTML,
            reply_markup=keyboard,
        )
    except TelegramError as exc:
        logger.warning("could not ask contact %s about a join: %s", contact_id, exc)


async def register_command(update: Update, context: ConciergeContext) -> None:
    """Start the guided registration of the member's association."""
    member = await current_member(update, context)
    if member is None or update.effective_chat is None:
        return
    prompt = await context.services.call(
        associations.start, member_id=member.id, now=context.services.clock()
    )
    await show_prompt(context, update.effective_chat.id, prompt, member.language)


async def cancel_command(update: Update, context: ConciergeContext) -> None:
    """Leave the registration at any step."""
    member = await current_member(update, context)
    if member is None or update.effective_chat is None:
        return
    cancelled = await context.services.call(associations.cancel, member_id=member.id)
    await send(
        context,
        update.effective_chat.id,
        text("register_cancelled" if cancelled else "nothing_to_cancel", member.language),
    )


async def answer_registration(
    context: ConciergeContext, member_id: int, chat_id: int, typed: str, language: str
) -> None:
    """``typed`` is the answer to the registration's current step."""
    prompt = await context.services.call_long(associations.answer, member_id=member_id, text=typed)
    await show_prompt(context, chat_id, prompt, language)


async def registration_button(update: Update, context: ConciergeContext) -> None:
    """A button answer in the registration (category, yes/no, skip)."""
    query = update.callback_query
    member = await current_member(update, context)
    if query is None or member is None or query.message is None:
        return
    match = _STEP.match(query.data or "")
    await query.answer()
    if match is None:
        return
    prompt = await context.services.call_long(
        associations.answer,
        member_id=member.id,
        choice=match.group(2),
        button_step=match.group(1),
    )
    try:
        await query.edit_message_reply_markup(reply_markup=None)
    except TelegramError as exc:
        logger.info("registration buttons not removed: %s", exc)
    await show_prompt(context, query.message.chat.id, prompt, member.language)


async def join_decision(update: Update, context: ConciergeContext) -> None:
    """The association's contact approves or refuses a join request."""
    query = update.callback_query
    user = update.effective_user
    match = _JOIN.match(query.data or "") if query else None
    if query is None or user is None or match is None:
        return
    try:
        link, association = await context.services.call(
            associations.decide_join,
            link_id=int(match.group(1)),
            contact_id=user.id,
            approve=match.group(2) == "y",
        )
    except PermissionError as refused:
        logger.warning("user %s decided a join they do not own (%s)", user.id, refused)
        await query.answer(
            text("button_not_yours" if str(refused) == "not_yours" else "button_stale", "sv"),
            show_alert=True,
        )
        return
    await query.answer(text("join_decided", "sv"))
    await query.edit_message_reply_markup(reply_markup=None)
    key = "join_approved" if match.group(2) == "y" else "join_refused"
    try:
        await context.bot.send_message(
            link.member_id, text(key, "sv", name=association.name), parse_mode=ParseMode.HTML
        )
    except TelegramError as exc:
        logger.warning("could not tell member %s about the join: %s", link.member_id, exc)


async def find_command(update: Update, context: ConciergeContext) -> None:
    """Search the network: /find words, or categories as buttons."""
    member = await current_member(update, context)
    if member is None or update.effective_chat is None:
        return
    words = " ".join(context.args or [])
    if not words:
        keyboard = InlineKeyboardMarkup(
            [
                [
                    InlineKeyboardButton(
                        text(f"category_{c.value}", member.language), callback_data=f"fd:{c.value}"
                    )
                ]
                for c in AssociationCategory
            ]
        )
        await send(
            context,
            update.effective_chat.id,
            text("find_choose", member.language),
            keyboard=keyboard,
        )
        return
    found = await context.services.call_long(associations.find, query=words)
    await send(context, update.effective_chat.id, _found_text(found, member.language))


async def find_button(update: Update, context: ConciergeContext) -> None:
    query = update.callback_query
    member = await current_member(update, context)
    match = _FIND.match(query.data or "") if query else None
    if query is None or member is None or match is None or query.message is None:
        return
    await query.answer()
    found = await context.services.call_long(associations.find, category=match.group(1))
    await send(context, query.message.chat.id, _found_text(found, member.language))


def _found_text(found: list[Any], language: str) -> Html:
    if not found:
        return text("find_none", language)
    lines = []
    for association in found:
        contact = " · ".join(v for v in (association.email, association.phone) if v)
        lines.append(
            text(
                "find_line",
                language,
                name=association.name,
                category=text(f"category_{association.category.value}", language),
                contact=contact,
            )
        )
    return Html("\n".join(lines))


async def subscribe_command(update: Update, context: ConciergeContext) -> None:
    """Choose what to get announcements about (/subscribe and /unsubscribe)."""
    member = await current_member(update, context)
    if member is None or update.effective_chat is None:
        return
    current = await context.services.call(associations.subscriptions_of, member_id=member.id)
    await send(
        context,
        update.effective_chat.id,
        text("subscribe_choose", member.language),
        keyboard=_topic_keyboard(current, member.language),
    )


def _topic_keyboard(current: set[str], language: str) -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup(
        [
            [
                InlineKeyboardButton(
                    ("✅ " if topic in current else "⬜️ ") + text(f"topic_{topic}", language),
                    callback_data=f"sb:{topic}",
                )
            ]
            for topic in associations.TOPICS
        ]
    )


async def topic_button(update: Update, context: ConciergeContext) -> None:
    query = update.callback_query
    member = await current_member(update, context)
    match = _TOPIC.match(query.data or "") if query else None
    if query is None or member is None or match is None:
        return
    topic = match.group(1)
    if topic not in associations.TOPICS:
        await query.answer(text("button_stale", member.language), show_alert=True)
        return
    current = await context.services.call(associations.subscriptions_of, member_id=member.id)
    await context.services.call(
        associations.set_subscription, member_id=member.id, topic=topic, on=topic not in current
    )
    await query.answer()
    current ^= {topic}
    await query.edit_message_reply_markup(_topic_keyboard(current, member.language))


async def entry_button(update: Update, context: ConciergeContext) -> None:
    """The yearly question to the contact: the entry is right, or update it."""
    query = update.callback_query
    member = await current_member(update, context)
    match = _ENTRY.match(query.data or "") if query else None
    if query is None or member is None or match is None or query.message is None:
        return
    if match.group(2) == "up":
        await query.answer()
        await register_command(update, context)
        return
    try:
        await context.services.call(
            associations.confirm,
            association_id=int(match.group(1)),
            member_id=member.id,
            now=context.services.clock(),
        )
    except PermissionError:
        await query.answer(text("button_not_yours", member.language), show_alert=True)
        return
    await query.answer(text("entry_confirmed", member.language))
    await query.edit_message_reply_markup(reply_markup=None)


async def remind_entries(context: ConciergeContext) -> None:
    """Daily: contacts whose entry was confirmed a year ago are asked to confirm it."""
    services = context.services
    now = services.clock()
    for association in await services.call_long(associations.due_for_confirmation, now=now):
        assert association.id is not None
        keyboard = InlineKeyboardMarkup(
            [
                [
                    InlineKeyboardButton(
                        text("button_entry_ok", "sv"), callback_data=f"ac:{association.id}:ok"
                    ),
                    InlineKeyboardButton(
                        text("button_entry_update", "sv"), callback_data=f"ac:{association.id}:up"
                    ),
                ]
            ]
        )
        await services.call(associations.mark_reminded, association_id=association.id, now=now)
        try:
            await context.bot.send_message(
                association.contact_member_id,
                text("confirm_entry", "sv", name=association.name),
                parse_mode=ParseMode.HTML,
                reply_markup=keyboard,
            )
        except TelegramError as exc:
            logger.warning("could not remind contact of association %s: %s", association.id, exc)


def register(app: Application[Any, Any, Any, Any, Any, Any]) -> None:
    app.add_handler(CommandHandler("register", register_command, filters=_PRIVATE))
    app.add_handler(CommandHandler("cancel", cancel_command, filters=_PRIVATE))
    app.add_handler(CommandHandler("find", find_command, filters=_PRIVATE))
    app.add_handler(
        CommandHandler(["subscribe", "unsubscribe"], subscribe_command, filters=_PRIVATE)
    )
    # Only data our buttons carry; anything else (forged, or from an older version) falls
    # through to the catch-all in handlers.question, which tells the member it is stale.
    app.add_handler(CallbackQueryHandler(registration_button, pattern=_STEP))
    app.add_handler(CallbackQueryHandler(join_decision, pattern=_JOIN))
    app.add_handler(CallbackQueryHandler(find_button, pattern=_FIND))
    app.add_handler(CallbackQueryHandler(topic_button, pattern=_TOPIC))
    app.add_handler(CallbackQueryHandler(entry_button, pattern=_ENTRY))
    if app.job_queue is not None:
        app.job_queue.run_repeating(
            leader_only(remind_entries), interval=6 * 3600, first=60, name="entry-reminders"
        )
