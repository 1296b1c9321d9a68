"""The coordinator's desk in Telegram: a topic and a card per case, relays, buttons, commands.

Every command and button press is checked against the configured coordinators here, on the
server; button data only says which case and what to do, never who may do it.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import re
from datetime import datetime, time
from typing import Any, cast

from telegram import (
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    Message,
    ReplyParameters,
    Update,
    User,
)
from telegram.constants import ChatMemberStatus, ParseMode
from telegram.error import BadRequest, Forbidden, TelegramError
from telegram.ext import (
    Application,
    CallbackQueryHandler,
    CommandHandler,
    MessageHandler,
    filters,
)

from bot.app import ConciergeContext, Services, leader_only
from bot.models import Case, CaseStatus
from bot.services import associations, desk, members, rules_admin
from bot.services import cases as case_service
from bot.services.desk import DeskRefused
from bot.texts import (
    Html,
    contact_card,
    department_name,
    format_due,
    language_label,
    split_message,
    text,
)

logger = logging.getLogger(__name__)

DESK_LANGUAGE = "sv"
# How long a member's follow-up waits for its case's card being posted by another instance.
CARD_PATIENCE = 10.0
DESK_COMMANDS = ("queue", "case", "mine", "stats", "close", "associations")
# Row ids are 32-bit (INTEGER on PostgreSQL): a longer number is no row, and looking it up fails.
_BUTTON = re.compile(r"^dk:([chxbe]):(\d{1,9})$")
_HAND_TO = re.compile(r"^dk:t:(\d{1,9}):([a-z0-9_\-]{1,64})$")
_RATE = re.compile(r"^rate:(\d{1,9}):(\d)$")
_COORDINATOR_STATUSES = {
    ChatMemberStatus.OWNER,
    ChatMemberStatus.ADMINISTRATOR,
    ChatMemberStatus.MEMBER,
}


# -- who may act ------------------------------------------------------------------------------


async def is_coordinator(context: ConciergeContext, user: User | None) -> bool:
    """A configured coordinator, or a member of the coordinator group (asked of Telegram)."""
    if user is None or user.is_bot:
        return False
    settings = context.services.settings
    if user.id in settings.coordinator_user_ids:
        return True
    if settings.coordinator_chat_id is None:
        return False
    try:
        member = await context.bot.get_chat_member(settings.coordinator_chat_id, user.id)
    except TelegramError:
        return False
    return member.status in _COORDINATOR_STATUSES


def _in_desk_chat(update: Update, services: Services) -> bool:
    chat = update.effective_chat
    return chat is not None and chat.id == services.settings.coordinator_chat_id


async def _refuse(update: Update, what: str) -> None:
    user = update.effective_user
    logger.warning("refused %s by user %s (not a coordinator)", what, user.id if user else None)
    notice = text("desk_not_coordinator", DESK_LANGUAGE)
    if update.callback_query is not None:
        await update.callback_query.answer(notice, show_alert=True)
    elif update.effective_message is not None:
        await update.effective_message.reply_text(notice)


# -- the card ---------------------------------------------------------------------------------


def _status_line(services: Services, case: Case) -> str:
    name = case.claimed_by_name or (str(case.claimed_by) if case.claimed_by else "")
    if case.status == CaseStatus.CLOSED:
        line = text("desk_status_closed", DESK_LANGUAGE, name=name or "—")
    elif case.status == CaseStatus.HANDED_OVER:
        department = services.routing.table.department_by_id.get(case.handed_to or "")
        line = text(
            "desk_status_handed_over",
            DESK_LANGUAGE,
            department=department.name if department else case.handed_to or "",
            name=name or "—",
        )
    elif case.status == CaseStatus.CLAIMED:
        line = text("desk_status_claimed", DESK_LANGUAGE, name=name)
    else:
        line = text("desk_status_open", DESK_LANGUAGE)
    if case.member_blocked:
        line = Html(line + text("desk_blocked_suffix", DESK_LANGUAGE))
    return line


def card_text(
    services: Services,
    case: Case,
    member_name: str,
    member_language: str,
    association: str = "okänd",
) -> Html:
    zone = services.settings.zone
    department = services.routing.table.department_by_id.get(case.department or "")
    if department is not None:
        contact = department.contact
        reach = " · ".join(v for v in (contact.phone, contact.email) if v) or "—"
        suggestion = text(
            "desk_suggestion",
            DESK_LANGUAGE,
            department=department.name,
            score=f"{case.score:.2f}",
            contact=reach,
        )
    else:
        suggestion = text("desk_no_suggestion", DESK_LANGUAGE)
    return text(
        "desk_card",
        DESK_LANGUAGE,
        reference=case.reference or "",
        status=Html(_status_line(services, case)),
        question=case.question if len(case.question) <= 1500 else case.question[:1499] + "…",
        member=member_name or "—",
        association=association,
        lang=language_label(member_language, DESK_LANGUAGE),
        suggestion=Html(suggestion),
        received=case.created_at.astimezone(zone).strftime("%Y-%m-%d %H:%M"),
        due=format_due(case.due_at, zone, DESK_LANGUAGE),
    )


def card_keyboard(case: Case) -> InlineKeyboardMarkup | None:
    example = [
        InlineKeyboardButton(
            text("desk_button_example", DESK_LANGUAGE), callback_data=f"dk:e:{case.id}"
        )
    ]
    if case.status == CaseStatus.CLOSED:
        return InlineKeyboardMarkup([example])
    rows = []
    if case.claimed_by is None:
        rows.append(
            [
                InlineKeyboardButton(
                    text("desk_button_claim", DESK_LANGUAGE), callback_data=f"dk:c:{case.id}"
                )
            ]
        )
    rows.append(
        [
            InlineKeyboardButton(
                text("desk_button_hand_over", DESK_LANGUAGE), callback_data=f"dk:h:{case.id}"
            )
        ]
    )
    rows.append(
        [
            InlineKeyboardButton(
                text("desk_button_close", DESK_LANGUAGE), callback_data=f"dk:x:{case.id}"
            )
        ]
    )
    rows.append(example)
    return InlineKeyboardMarkup(rows)


def topic_name(case: Case) -> str:
    """`F-2026-0042 · Halltider i hallen · skola_fritid`, within Telegram's 128 characters."""
    subject = " ".join(case.question.split())
    subject = subject if len(subject) <= 40 else subject[:39].rstrip() + "…"
    parts = [case.reference or "", subject or "—"]
    if case.department:
        parts.append(case.department)
    return " · ".join(parts)[:128]


async def _member_of(services: Services, case: Case) -> tuple[str, str]:
    member = await services.call(case_service.member_of, case=case)
    return (member.first_name, member.language) if member else ("", "sv")


async def _association_name(services: Services, case: Case) -> str:
    association = await services.call(associations.association_of, member_id=case.member_id)
    return association.name if association else "okänd"


async def refresh_card(context: ConciergeContext, case: Case) -> None:
    """Show the case's current state on its card."""
    if case.desk_chat_id is None or case.card_message_id is None:
        return
    name, language = await _member_of(context.services, case)
    try:
        await context.bot.edit_message_text(
            chat_id=case.desk_chat_id,
            message_id=case.card_message_id,
            text=card_text(
                context.services,
                case,
                name,
                language,
                await _association_name(context.services, case),
            ),
            parse_mode=ParseMode.HTML,
            reply_markup=card_keyboard(case),
        )
    except BadRequest as exc:  # "message is not modified" and the like: nothing is lost
        logger.info("card of case %s not updated: %s", case.id, exc)


# -- posting on the desk ----------------------------------------------------------------------


async def _desk_is_forum(context: ConciergeContext) -> bool:
    services = context.services
    if services.desk_is_forum is None:
        chat_id = services.settings.coordinator_chat_id
        assert chat_id is not None
        chat = await context.bot.get_chat(chat_id)
        services.desk_is_forum = bool(chat.is_forum)
    return services.desk_is_forum


class _Announcer:
    """Puts new cases on the desk one after another, outside the members' updates.

    Telegram lets a bot post 20 messages a minute in a group, and a card is one or two of them
    (a topic and the card). Posted inside the member's update, the wait for that limit held one
    of the ``CONCURRENT_UPDATES`` slots per case: past about 16 cases a minute every member
    waited for the desk. Here the member gets the case number at once and the card follows;
    what was queued when the process stopped is put on the desk by the deadline job (the case
    is in the database, not on the desk).
    """

    def __init__(self) -> None:
        self._queue: collections.deque[tuple[ConciergeContext, int]] = collections.deque()
        self._queued: set[int] = set()
        self._current: tuple[int, asyncio.Future[None]] | None = None
        self._worker: asyncio.Task[None] | None = None

    def put(self, context: ConciergeContext, case_id: int) -> None:
        if case_id in self._queued:
            return
        self._queue.append((context, case_id))
        self._queued.add(case_id)
        if self._worker is None or self._worker.done():
            self._worker = asyncio.create_task(self._work(), name="desk-announcer")

    async def _work(self) -> None:
        while self._queue:
            context, case_id = self._queue.popleft()
            self._queued.discard(case_id)
            done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._current = (case_id, done)
            try:
                await announce_case(context, case_id)
            except Exception:
                logger.exception(
                    "case %s not put on the desk now; the deadline job tries again", case_id
                )
            finally:
                self._current = None
                done.set_result(None)

    async def finished(self, case_id: int) -> None:
        """Wait while this process is putting the case on the desk right now."""
        current = self._current
        if current is not None and current[0] == case_id:
            await asyncio.shield(current[1])

    async def settled(self) -> None:
        """Until everything queued so far is on the desk (or failed and left to the job)."""
        while self._worker is not None and not self._worker.done():
            await asyncio.shield(self._worker)

    async def stop(self) -> None:
        self._queue.clear()
        self._queued.clear()
        if self._worker is not None and not self._worker.done():
            self._worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._worker


def _announcer(app: Any) -> _Announcer:
    announcer = app.bot_data.get("desk_announcer")
    if announcer is None:
        announcer = app.bot_data["desk_announcer"] = _Announcer()
    return cast(_Announcer, announcer)


def queue_announcement(context: ConciergeContext, case_id: int) -> None:
    """Put the case on the desk soon, without making the member's update wait for it."""
    if context.services.settings.coordinator_chat_id is not None:
        _announcer(context.application).put(context, case_id)


async def announcements_settled(app: Any) -> None:
    """Wait until the cases queued for the desk are on it (tests, and a clean stop)."""
    announcer = app.bot_data.get("desk_announcer")
    if announcer is not None:
        await announcer.settled()


async def stop_announcing(app: Any, patience: float = 5.0) -> None:
    """A few seconds for what is queued; the rest is left to the deadline job (after the
    restart, by whichever instance leads)."""
    announcer = app.bot_data.get("desk_announcer")
    if announcer is None:
        return
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(announcer.settled(), patience)
    await announcer.stop()


async def announce_case(context: ConciergeContext, case_id: int) -> None:
    """Open a topic (or post in the group) with the case card; at most once per case."""
    services = context.services
    chat_id = services.settings.coordinator_chat_id
    if chat_id is None:
        return
    if not await services.call(desk.begin_announcement, case_id=case_id, now=services.clock()):
        return  # on the desk already, or being put there right now
    case = await services.call(desk.get_case, case_id=case_id)
    name, language = await _member_of(services, case)
    thread_id = None
    try:
        if await _desk_is_forum(context):
            topic = await context.bot.create_forum_topic(chat_id, topic_name(case))
            thread_id = topic.message_thread_id
        sent = await context.bot.send_message(
            chat_id,
            card_text(services, case, name, language, await _association_name(services, case)),
            parse_mode=ParseMode.HTML,
            reply_markup=card_keyboard(case),
            message_thread_id=thread_id,
        )
    except TelegramError:
        # The deadline job tries again; the case itself is safe in the database.
        await services.call(desk.abort_announcement, case_id=case_id)
        raise
    await services.call(
        desk.attach_to_desk,
        case_id=case_id,
        chat_id=chat_id,
        thread_id=thread_id,
        card_message_id=sent.message_id,
    )


async def post_on_case(context: ConciergeContext, case: Case, body: str) -> Message | None:
    """Post in the case's topic, or as a reply to its card in a group without topics."""
    if case.desk_chat_id is None or case.id is None:
        return None
    sent: Message | None = None
    for part in split_message(body):
        try:
            sent = await context.bot.send_message(
                case.desk_chat_id,
                part,
                parse_mode=ParseMode.HTML,
                message_thread_id=case.desk_thread_id,
                reply_parameters=(
                    ReplyParameters(
                        message_id=case.card_message_id, allow_sending_without_reply=True
                    )
                    if case.desk_thread_id is None and case.card_message_id is not None
                    else None
                ),
            )
        except BadRequest as exc:
            if "topic_closed" not in str(exc).lower():
                raise
            # A closed case's topic is closed: say it in the group's general chat instead.
            sent = await context.bot.send_message(
                case.desk_chat_id, f"{case.reference}: {part}", parse_mode=ParseMode.HTML
            )
        await context.services.call(
            desk.record_desk_message,
            case_id=case.id,
            chat_id=case.desk_chat_id,
            message_id=sent.message_id,
        )
    return sent


async def relay_member_message(
    context: ConciergeContext, case: Case, member_name: str, body: str, *, reopened: bool = False
) -> None:
    """What the member wrote about the case appears on the desk."""
    if case.desk_chat_id is None:
        # The card first: wait if it is being posted right now, else post it now (ahead of
        # its turn in the queue).
        await _announcer(context.application).finished(case.id or 0)
        await announce_case(context, case.id or 0)
        case = await context.services.call(desk.get_case, case_id=case.id or 0)
        # Another instance may be posting it right now: a few seconds for its card.
        loop = asyncio.get_running_loop()
        until = loop.time() + CARD_PATIENCE
        while case.desk_chat_id is None and case.announcing_since is not None:
            if loop.time() > until:
                logger.warning("case %s: card not up yet; a member's message not posted", case.id)
                break
            await asyncio.sleep(0.2)
            case = await context.services.call(desk.get_case, case_id=case.id or 0)
    if reopened:
        if case.desk_chat_id is not None and case.desk_thread_id is not None:
            try:
                await context.bot.reopen_forum_topic(case.desk_chat_id, case.desk_thread_id)
            except BadRequest as exc:
                logger.info("topic of case %s not reopened: %s", case.id, exc)
        await post_on_case(context, case, text("desk_member_reopened", DESK_LANGUAGE))
        await refresh_card(context, case)
    if body:
        await post_on_case(
            context,
            case,
            text("desk_member_wrote", DESK_LANGUAGE, member=member_name or "—", text=body),
        )


# -- what coordinators write --------------------------------------------------------------------


async def desk_message(update: Update, context: ConciergeContext) -> None:
    """Relay a coordinator's message in a case topic (or reply to a card) to the member."""
    services = context.services
    message = update.effective_message
    if message is None or not _in_desk_chat(update, services):
        return
    reply_to = message.reply_to_message.message_id if message.reply_to_message else None
    thread_id = message.message_thread_id if message.is_topic_message else None
    case = await services.call(
        desk.case_on_desk,
        chat_id=message.chat_id,
        thread_id=thread_id,
        reply_to_message_id=reply_to,
    )
    if case is None or case.id is None:
        return  # talk among coordinators, not about a case
    if not await is_coordinator(context, update.effective_user):
        await _refuse(update, f"a message on case {case.id}")
        return
    user = update.effective_user
    assert user is not None
    body = message.text or message.caption or ""
    internal = body.strip().lower().startswith(services.settings.internal_prefix.lower())
    # Handled before (the update is tried again after a failure): recorded once, and sent
    # again only if it had not reached the member.
    stored = await services.call(case_service.message_of_update, update_id=update.update_id)
    if stored is not None:
        current = await services.call(desk.get_case, case_id=case.id)
        if internal or stored.telegram_message_id != message.message_id:
            await refresh_card(context, current)
            return
    else:
        try:
            current, stored = await services.call(
                desk.record_reply,
                case_id=case.id,
                coordinator_id=user.id,
                name=user.full_name,
                text=body,
                internal=internal,
                telegram_message_id=message.message_id,
                update_id=update.update_id,
                now=services.clock(),
            )
        except DeskRefused as refused:
            await message.reply_text(
                text(f"desk_{_refusal_key(refused)}", DESK_LANGUAGE, name=refused.who)
            )
            return
    if internal:
        await refresh_card(context, current)
        return
    assert stored is not None
    _, language = await _member_of(services, current)
    try:
        if message.text is not None:
            for part in split_message(
                text("member_reply", language, reference=current.reference or "", text=body)
            ):
                delivered = await context.bot.send_message(
                    current.chat_id, part, parse_mode=ParseMode.HTML
                )
            await services.call(
                desk.link_delivered,
                case_message_id=stored.id or 0,
                telegram_message_id=delivered.message_id,
            )
        else:
            await context.bot.send_message(
                current.chat_id,
                text(
                    "member_reply", language, reference=current.reference or "", text=body or "📎"
                ),
                parse_mode=ParseMode.HTML,
            )
            await context.bot.copy_message(current.chat_id, message.chat_id, message.message_id)
    except Forbidden:
        current = await services.call(desk.mark_member_blocked, case_id=current.id)
        await post_on_case(context, current, text("desk_member_blocked", DESK_LANGUAGE))
    await refresh_card(context, current)


def _refusal_key(refused: DeskRefused) -> str:
    return {
        "claimed": "claimed_by_other",
        "closed": "closed_already",
        "already_yours": "already_yours",
    }.get(refused.reason, "unknown_case")


# -- buttons ----------------------------------------------------------------------------------


async def desk_button(update: Update, context: ConciergeContext) -> None:
    """Claim, hand over or close a case from its card."""
    query = update.callback_query
    if query is None:
        return
    if not await is_coordinator(context, update.effective_user):
        await _refuse(update, f"button {query.data!r}")
        return
    user = update.effective_user
    assert user is not None
    services = context.services
    data = query.data or ""
    try:
        if match := _HAND_TO.match(data):
            case_id, token = int(match.group(1)), match.group(2)
            departments = services.routing.table.departments
            # The department's id; its position only when the id did not fit in the button.
            by_id = services.routing.table.department_by_id
            department = by_id.get(token) or (
                departments[int(token)]
                if token.isdigit() and int(token) < len(departments)
                else None
            )
            if department is None:  # the table changed since the buttons were shown
                raise DeskRefused("unknown_case")
            case = await services.call(
                desk.hand_over,
                case_id=case_id,
                department_id=department.id,
                coordinator_id=user.id,
                now=services.clock(),
            )
            await query.answer()
            await _tell_member_handed_over(context, case, department.id)
            await refresh_card(context, case)
            return
        match = _BUTTON.match(data)
        if match is None:
            raise DeskRefused("unknown_case")
        action, case_id = match.group(1), int(match.group(2))
        if action == "c":
            case = await services.call(
                desk.claim_case,
                case_id=case_id,
                coordinator_id=user.id,
                name=user.full_name,
                now=services.clock(),
            )
            await query.answer(text("desk_claimed", DESK_LANGUAGE))
            await refresh_card(context, case)
        elif action == "h":
            case = await services.call(desk.get_case, case_id=case_id)
            if case.status == CaseStatus.CLOSED:
                raise DeskRefused("closed")
            await query.answer()
            await query.edit_message_reply_markup(_department_keyboard(services, case_id))
        elif action == "e":
            try:
                await services.call(
                    rules_admin.add_example, case_id=case_id, coordinator_id=user.id
                )
            except rules_admin.AdminRefused:
                await query.answer(text("desk_example_refused", DESK_LANGUAGE), show_alert=True)
                return
            await query.answer(text("desk_example_added", DESK_LANGUAGE), show_alert=True)
        elif action == "b":
            case = await services.call(desk.get_case, case_id=case_id)
            await query.answer()
            await query.edit_message_reply_markup(card_keyboard(case))
        else:
            case = await services.call(
                desk.close_case,
                case_id=case_id,
                coordinator_id=user.id,
                name=user.full_name,
                now=services.clock(),
            )
            await query.answer()
            await _after_close(context, case)
    except DeskRefused as refused:
        await query.answer(
            text(f"desk_{_refusal_key(refused)}", DESK_LANGUAGE, name=refused.who),
            show_alert=True,
        )


def _hand_to_data(case_id: int, index: int, department_id: str) -> str:
    data = f"dk:t:{case_id}:{department_id}"
    return data if len(data.encode()) <= 64 else f"dk:t:{case_id}:{index}"


def _department_keyboard(services: Services, case_id: int) -> InlineKeyboardMarkup:
    departments = services.routing.table.departments
    rows: list[list[InlineKeyboardButton]] = []
    for index, department in enumerate(departments):
        button = InlineKeyboardButton(
            department.name[:60], callback_data=_hand_to_data(case_id, index, department.id)
        )
        if rows and len(rows[-1]) < 2:
            rows[-1].append(button)
        else:
            rows.append([button])
    rows.append(
        [
            InlineKeyboardButton(
                text("desk_button_back", DESK_LANGUAGE), callback_data=f"dk:b:{case_id}"
            )
        ]
    )
    return InlineKeyboardMarkup(rows)


async def _tell_member_handed_over(
    context: ConciergeContext, case: Case, department_id: str
) -> None:
    department = context.services.routing.table.department_by_id[department_id]
    _, language = await _member_of(context.services, case)
    message = text(
        "member_handed_over",
        language,
        reference=case.reference or "",
        department=department_name(department, language),
        card=contact_card(department, language),
    )
    await _to_member(context, case, message)


async def _to_member(
    context: ConciergeContext,
    case: Case,
    message: str,
    keyboard: InlineKeyboardMarkup | None = None,
) -> None:
    try:
        await context.bot.send_message(
            case.chat_id, message, parse_mode=ParseMode.HTML, reply_markup=keyboard
        )
    except Forbidden:
        case = await context.services.call(desk.mark_member_blocked, case_id=case.id or 0)
        await post_on_case(context, case, text("desk_member_blocked", DESK_LANGUAGE))


async def _after_close(context: ConciergeContext, case: Case) -> None:
    """Tell the member, ask for a rating, close the topic and the card."""
    _, language = await _member_of(context.services, case)
    note = (
        text("member_closed_note", language, note=case.closing_note) if case.closing_note else ""
    )
    keyboard = InlineKeyboardMarkup(
        [[InlineKeyboardButton(str(n), callback_data=f"rate:{case.id}:{n}") for n in range(1, 6)]]
    )
    await _to_member(
        context,
        case,
        text("member_closed", language, reference=case.reference or "", note=Html(note)),
        keyboard,
    )
    await refresh_card(context, case)
    if case.desk_chat_id is not None and case.desk_thread_id is not None:
        try:
            await context.bot.close_forum_topic(case.desk_chat_id, case.desk_thread_id)
        except BadRequest as exc:
            logger.info("topic of case %s not closed: %s", case.id, exc)


async def rating_pressed(update: Update, context: ConciergeContext) -> None:
    """The member rates a closed case 1–5."""
    query = update.callback_query
    user = update.effective_user
    if query is None or user is None:
        return
    match = _RATE.match(query.data or "")
    member = await context.services.call(
        members.touch_member,
        user_id=user.id,
        first_name=user.first_name or "",
        language_code=user.language_code,
    )
    language = member.language
    if match is None:
        await query.answer(text("button_stale", language), show_alert=True)
        return
    try:
        case = await context.services.call(
            desk.rate_case,
            case_id=int(match.group(1)),
            member_id=user.id,
            rating=int(match.group(2)),
        )
    except DeskRefused as refused:
        if refused.reason == "not_yours":
            logger.warning("user %s pressed a rating button of another member's case", user.id)
        key = {"not_yours": "button_not_yours", "already_rated": "button_already_rated"}.get(
            refused.reason, "button_stale"
        )
        await query.answer(text(key, language), show_alert=True)
        return
    await query.answer(text("member_rated", language))
    try:
        await query.edit_message_reply_markup(reply_markup=None)
    except BadRequest as exc:
        logger.info("rating buttons not removed: %s", exc)
    await post_on_case(context, case, text("desk_rating", DESK_LANGUAGE, rating=case.rating))


# -- commands ---------------------------------------------------------------------------------


async def _desk_command_allowed(update: Update, context: ConciergeContext, name: str) -> bool:
    if not _in_desk_chat(update, context.services):
        return False
    if not await is_coordinator(context, update.effective_user):
        await _refuse(update, f"/{name}")
        return False
    return True


def _queue_lines(services: Services, cases: list[Case], now: datetime) -> list[str]:
    settings = services.settings
    lines: list[str] = []
    for case in cases:
        state = desk.deadline_state(
            case, now, settings.office_hours, settings.reminder_hours_before
        )
        emoji = {"overdue": "🔴", "due_soon": "🟠", "answered": "✅"}.get(state, "🟢")
        age_hours = (now - case.created_at).total_seconds() / 3600
        age = f"{age_hours / 24:.0f} d" if age_hours >= 48 else f"{age_hours:.0f} h"
        question = case.question if len(case.question) <= 50 else case.question[:49] + "…"
        lines.append(
            text(
                "desk_queue_line",
                DESK_LANGUAGE,
                state=emoji,
                reference=case.reference,
                age=age,
                status=Html(_status_line(services, case)),
                question=question,
            )
        )
    return lines


async def _reply(update: Update, context: ConciergeContext, body: str) -> None:
    message = update.effective_message
    assert message is not None
    for part in split_message(body):
        await context.bot.send_message(
            message.chat_id,
            part,
            parse_mode=ParseMode.HTML,
            message_thread_id=message.message_thread_id if message.is_topic_message else None,
        )


async def queue_command(update: Update, context: ConciergeContext) -> None:
    """List open cases, oldest first, with age and deadline state."""
    if not await _desk_command_allowed(update, context, "queue"):
        return
    cases = await context.services.call_long(desk.open_cases)
    await _reply(update, context, _queue_text(context.services, cases))


def _queue_text(services: Services, cases: list[Case], header: str | None = None) -> Html:
    if not cases:
        return text("desk_queue_empty", DESK_LANGUAGE)
    lines: list[str] = [header or text("desk_queue_header", DESK_LANGUAGE, count=len(cases))]
    lines.extend(_queue_lines(services, cases, services.clock()))
    return Html("\n".join(lines))


async def case_command(update: Update, context: ConciergeContext) -> None:
    """Show one case's card: /case F-2026-0042."""
    if not await _desk_command_allowed(update, context, "case"):
        return
    if not context.args:
        await _reply(update, context, text("desk_case_usage", DESK_LANGUAGE))
        return
    case = await context.services.call(desk.find_case, reference=context.args[0])
    if case is None:
        await _reply(update, context, text("desk_unknown_case", DESK_LANGUAGE))
        return
    name, language = await _member_of(context.services, case)
    await _reply(
        update,
        context,
        card_text(
            context.services, case, name, language, await _association_name(context.services, case)
        ),
    )


async def mine_command(update: Update, context: ConciergeContext) -> None:
    """The open cases the coordinator holds."""
    if not await _desk_command_allowed(update, context, "mine"):
        return
    user = update.effective_user
    assert user is not None
    cases = await context.services.call_long(desk.cases_of_coordinator, coordinator_id=user.id)
    if not cases:
        await _reply(update, context, text("desk_mine_empty", DESK_LANGUAGE))
        return
    await _reply(update, context, _queue_text(context.services, cases))


async def stats_command(update: Update, context: ConciergeContext) -> None:
    """Cases, response times, self-service share, feedback and ratings for a period."""
    if not await _desk_command_allowed(update, context, "stats"):
        return
    now = context.services.clock()
    period = desk.parse_period(" ".join(context.args or []), now)
    if period is None:
        await _reply(update, context, text("desk_stats_usage", DESK_LANGUAGE))
        return
    settings = context.services.settings
    found = await context.services.call_long(
        desk.desk_stats, since=period[0], until=period[1], hours=settings.office_hours
    )

    def hours(value: float | None) -> str:
        return "—" if value is None else f"{value:.1f} h"

    zone = settings.zone
    body = text(
        "desk_stats",
        DESK_LANGUAGE,
        since=max(found.since, now.replace(year=2000)).astimezone(zone).strftime("%Y-%m-%d"),
        until=now.astimezone(zone).strftime("%Y-%m-%d"),
        cases=found.cases,
        statuses=", ".join(f"{k} {v}" for k, v in sorted(found.by_status.items())) or "—",
        departments=", ".join(f"{k} {v}" for k, v in found.by_department.most_common()) or "—",
        first=hours(found.median_first_response_hours),
        close=hours(found.median_close_hours),
        questions=found.questions,
        without="—"
        if found.resolved_without_person is None
        else f"{100 * found.resolved_without_person:.0f} %",
        helpful=found.helpful,
        not_helpful=found.not_helpful,
        rating="—"
        if found.mean_rating is None
        else f"{found.mean_rating:.1f} ({len(found.ratings)})",
    )
    await _reply(update, context, body)


async def associations_command(update: Update, context: ConciergeContext) -> None:
    """The register: counts by category and matching entries (stale ones marked)."""
    if not await _desk_command_allowed(update, context, "associations"):
        return
    counts, found = await context.services.call_long(
        associations.search, query=" ".join(context.args or []), now=context.services.clock()
    )
    lines = [
        text(
            "desk_associations",
            DESK_LANGUAGE,
            total=sum(counts.values()),
            counts=", ".join(f"{k} {v}" for k, v in sorted(counts.items())) or "—",
        )
    ]
    for association, stale in found:
        lines.append(
            text(
                "desk_association_line",
                DESK_LANGUAGE,
                name=association.name,
                org=association.org_number,
                category=association.category.value,
                stale=" · ⚠️ inaktuell" if stale else "",
            )
        )
    await _reply(update, context, Html("\n".join(lines)))


async def close_command(update: Update, context: ConciergeContext) -> None:
    """Close the case of this topic (or of the replied-to card), with an optional note."""
    if not await _desk_command_allowed(update, context, "close"):
        return
    message = update.effective_message
    user = update.effective_user
    assert message is not None and user is not None
    reply_to = message.reply_to_message.message_id if message.reply_to_message else None
    thread_id = message.message_thread_id if message.is_topic_message else None
    case = await context.services.call(
        desk.case_on_desk,
        chat_id=message.chat_id,
        thread_id=thread_id,
        reply_to_message_id=reply_to,
    )
    if case is None or case.id is None:
        await _reply(update, context, text("desk_close_where", DESK_LANGUAGE))
        return
    note = message.text.split(maxsplit=1)[1] if message.text and " " in message.text else None
    try:
        case = await context.services.call(
            desk.close_case,
            case_id=case.id,
            coordinator_id=user.id,
            name=user.full_name,
            note=note,
            now=context.services.clock(),
        )
    except DeskRefused as refused:
        await _reply(
            update, context, text(f"desk_{_refusal_key(refused)}", DESK_LANGUAGE, name=refused.who)
        )
        return
    await _after_close(context, case)


# -- scheduled work ---------------------------------------------------------------------------


async def check_deadlines(context: ConciergeContext) -> None:
    """Put unannounced cases on the desk; remind it of deadlines, once per case and level."""
    services = context.services
    if services.settings.coordinator_chat_id is None:
        return
    for case in await services.call_long(desk.unannounced_cases, now=services.clock()):
        if case.id is not None:
            await announce_case(context, case.id)
    settings = services.settings
    due = await services.call_long(
        desk.reminders_due,
        now=context.services.clock(),
        hours=settings.office_hours,
        before_hours=settings.reminder_hours_before,
    )
    for case, level in due:
        if case.id is None or case.desk_chat_id is None:
            continue
        if not await services.call(desk.claim_reminder, case_id=case.id, level=level):
            continue  # sent before, by this process or another
        body = text(
            f"desk_reminder_{level}",
            DESK_LANGUAGE,
            reference=case.reference,
            due=format_due(case.due_at, settings.zone, DESK_LANGUAGE),
        )
        await post_on_case(context, case, body)


async def morning_digest(context: ConciergeContext) -> None:
    """On business-day mornings, the queue in the desk's general chat; once per day."""
    services = context.services
    settings = services.settings
    if settings.coordinator_chat_id is None:
        return
    today = context.services.clock().astimezone(settings.zone).date()
    if not settings.office_hours.is_business_day(today):
        return
    if not await services.call(desk.claim_digest, day=today.isoformat()):
        return
    cases = await services.call_long(desk.open_cases)
    header = text("desk_digest_header", DESK_LANGUAGE)
    body = (
        _queue_text(services, cases, header)
        if cases
        else Html(header + "\n" + text("desk_queue_empty", DESK_LANGUAGE))
    )
    for part in split_message(body):
        await context.bot.send_message(
            settings.coordinator_chat_id, part, parse_mode=ParseMode.HTML
        )


def schedule_jobs(app: Application[Any, Any, Any, Any, Any, Any], services: Services) -> None:
    """Deadline checks every two minutes and the morning digest; state is in the database."""
    if app.job_queue is None:
        logger.warning("no job queue: reminders and digests are off")
        return
    app.job_queue.run_repeating(
        leader_only(check_deadlines), interval=120, first=5, name="deadlines"
    )
    digest_at = time(
        services.settings.digest_time.hour,
        services.settings.digest_time.minute,
        tzinfo=services.settings.zone,
    )
    app.job_queue.run_daily(
        leader_only(morning_digest), time=digest_at, days=(1, 2, 3, 4, 5), name="digest"
    )


def register(app: Application[Any, Any, Any, Any, Any, Any]) -> None:
    groups = filters.ChatType.GROUPS
    app.add_handler(CommandHandler("queue", queue_command, filters=groups))
    app.add_handler(CommandHandler("case", case_command, filters=groups))
    app.add_handler(CommandHandler("mine", mine_command, filters=groups))
    app.add_handler(CommandHandler("stats", stats_command, filters=groups))
    app.add_handler(CommandHandler("close", close_command, filters=groups))
    app.add_handler(CommandHandler("associations", associations_command, filters=groups))
    app.add_handler(CallbackQueryHandler(desk_button, pattern=r"^dk:"))
    app.add_handler(CallbackQueryHandler(rating_pressed, pattern=r"^rate:"))
    app.add_handler(
        MessageHandler(groups & ~filters.COMMAND & ~filters.StatusUpdate.ALL, desk_message)
    )
