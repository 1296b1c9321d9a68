"""Announcements and events: published from the desk, delivered through the outbox.

The sender loop takes due messages from the database one at a time (compare-and-set), sends
them within Telegram's limits (python-telegram-bot's AIORateLimiter paces and honours
``RetryAfter``), and records each result; the coordinator's progress message follows along.
"""

from __future__ import annotations

import asyncio
import html
import json
import logging
import re
from datetime import datetime
from typing import Any

from telegram import Bot, InlineKeyboardButton, InlineKeyboardMarkup, Update
from telegram.constants import ParseMode
from telegram.error import BadRequest, Forbidden, NetworkError, RetryAfter, TelegramError
from telegram.ext import Application, CallbackQueryHandler, CommandHandler, filters

from bot.app import ConciergeContext, Services, leader_only
from bot.models import OutboxStatus
from bot.retrying import without_network_retries
from bot.services import associations, outbox
from bot.texts import TELEGRAM_LIMIT, Html, format_due, text
from handlers.common import current_member, send
from handlers.desk import DESK_LANGUAGE, _desk_command_allowed, _reply

logger = logging.getLogger(__name__)
# At most 9 digits: a longer number is no event id (32-bit), and looking it up fails.
_SIGN_UP = re.compile(r"^ev:(\d{1,9})$")
_PROGRESS_EVERY = 2.0  # seconds between progress updates on the desk
_BATCH = 400
CONCURRENT_SENDS = 8  # sends under way at once; the pacer sets the rate


def _parts(update: Update, count: int) -> list[str] | None:
    message = update.effective_message
    body = (message.text or "") if message else ""
    body = body.split(maxsplit=1)[1] if " " in body else ""
    parts = [part.strip() for part in body.split("|", count - 1)]
    if len(parts) != count or not all(parts[: count - 1]):
        return None
    return parts


async def announce_command(update: Update, context: ConciergeContext) -> None:
    """/announce topic | title | text — to every subscriber of the topic."""
    if not await _desk_command_allowed(update, context, "announce"):
        return
    parts = _parts(update, 3)
    if parts is None or parts[0] not in associations.TOPICS:
        await _reply(
            update,
            context,
            text("announce_usage", DESK_LANGUAGE, topics=", ".join(associations.TOPICS)),
        )
        return
    topic, title, body = parts
    user = update.effective_user
    message = Html(f"📣 <b>{_escape(title)}</b>\n\n{_escape(body)}")
    if len(message) > TELEGRAM_LIMIT:
        await _reply(
            update, context, text("announce_too_long", DESK_LANGUAGE, limit=TELEGRAM_LIMIT)
        )
        return
    broadcast = await context.services.call_long(
        outbox.create_broadcast,
        kind="announcement",
        topic=topic,
        title=title,
        text=message,
        created_by=user.id if user else None,
        now=context.services.clock(),
    )
    await _start_progress(update, context, broadcast.id or 0)


async def event_command(update: Update, context: ConciergeContext) -> None:
    """/event topic | title | 2026-12-10 18:00 | place | text — an invitation with sign-up."""
    if not await _desk_command_allowed(update, context, "event"):
        return
    services = context.services
    parts = _parts(update, 5)
    starts_at = _parse_time(parts[2], services) if parts else None
    if (
        parts is None
        or parts[0] not in associations.TOPICS
        or starts_at is None
        or starts_at <= services.clock()
    ):
        await _reply(
            update,
            context,
            text("event_usage", DESK_LANGUAGE, topics=", ".join(associations.TOPICS)),
        )
        return
    topic, title, _, place, body = parts
    user = update.effective_user
    event = await services.call(
        outbox.create_event,
        topic=topic,
        title=title,
        starts_at=starts_at,
        place=place,
        text=body,
        created_by=user.id if user else None,
    )
    when = format_due(starts_at, services.settings.zone, "sv")
    message = Html(f"📅 <b>{_escape(title)}</b>\n{when} · {_escape(place)}\n\n{_escape(body)}")
    markup = outbox.markup_json([[("Anmäl mig / Sign up", f"ev:{event.id}")]])
    broadcast = await services.call_long(
        outbox.create_broadcast,
        kind="event",
        topic=topic,
        title=title,
        text=message,
        markup=markup,
        event_id=event.id,
        created_by=user.id if user else None,
        now=services.clock(),
    )
    await _start_progress(update, context, broadcast.id or 0)


def _parse_time(value: str, services: Services) -> datetime | None:
    try:
        moment = datetime.strptime(value.strip(), "%Y-%m-%d %H:%M").replace(
            tzinfo=services.settings.zone
        )
    except ValueError:
        return None
    return moment


def _escape(value: str) -> str:
    return html.escape(value, quote=False)


async def _start_progress(update: Update, context: ConciergeContext, broadcast_id: int) -> None:
    message = update.effective_message
    assert message is not None
    state = await context.services.call(outbox.progress, broadcast_id=broadcast_id)
    sent = await context.bot.send_message(
        message.chat_id,
        _progress_text(state),
        parse_mode=ParseMode.HTML,
        message_thread_id=message.message_thread_id if message.is_topic_message else None,
    )
    finished = await context.services.call(
        outbox.set_progress_message,
        broadcast_id=broadcast_id,
        chat_id=message.chat_id,
        message_id=sent.message_id,
    )
    if finished:  # every member had it before the progress message was up
        state = await context.services.call(outbox.progress, broadcast_id=broadcast_id)
        await _show_progress(context.bot, state, message.chat_id, sent.message_id)


def _progress_text(state: outbox.Progress) -> Html:
    counts = state.counts
    return text(
        "broadcast_done" if state.done else "broadcast_progress",
        DESK_LANGUAGE,
        title=state.broadcast.title,
        sent=counts.get("sent", 0),
        total=state.total,
        blocked=counts.get("blocked", 0),
        failed=counts.get("failed", 0),
        uncertain=counts.get("uncertain", 0),
    )


# -- members ----------------------------------------------------------------------------------


async def events_command(update: Update, context: ConciergeContext) -> None:
    """List what is coming, with a sign-up button for each."""
    member = await current_member(update, context)
    if member is None or update.effective_chat is None:
        return
    services = context.services
    events = await services.call(outbox.upcoming_events, now=services.clock())
    if not events:
        await send(context, update.effective_chat.id, text("events_none", member.language))
        return
    for event in events[:10]:
        when = format_due(event.starts_at, services.settings.zone, member.language)
        keyboard = InlineKeyboardMarkup(
            [
                [
                    InlineKeyboardButton(
                        text("button_sign_up", member.language), callback_data=f"ev:{event.id}"
                    )
                ]
            ]
        )
        await send(
            context,
            update.effective_chat.id,
            Html(f"📅 <b>{_escape(event.title)}</b>\n{when} · {_escape(event.place)}"),
            keyboard=keyboard,
        )


async def sign_up_pressed(update: Update, context: ConciergeContext) -> None:
    query = update.callback_query
    member = await current_member(update, context)
    match = _SIGN_UP.match(query.data or "") if query else None
    if query is None or member is None or match is None:
        return
    try:
        new = await context.services.call(
            outbox.sign_up,
            event_id=int(match.group(1)),
            member_id=member.id,
            now=context.services.clock(),
        )
    except LookupError:
        await query.answer(text("button_stale", member.language), show_alert=True)
        return
    await query.answer(
        text("signed_up" if new else "already_signed_up", member.language), show_alert=True
    )


# -- sending ----------------------------------------------------------------------------------


class Pacer:
    """At least ``1/rate`` seconds between two releases, measured when each is released.

    A schedule of slots would let several late slots fire at once after the loop was busy — a
    burst that breaks Telegram's one-second window; spacing actual releases cannot burst.
    """

    def __init__(self, rate: float) -> None:
        self.interval = 1.0 / rate
        self._target = -1e9
        self._last = -1e9
        self._lock = asyncio.Lock()

    async def wait(self) -> None:
        async with self._lock:
            loop = asyncio.get_running_loop()
            # On schedule (a late wake-up is made up by the next one), but never two releases
            # closer than half an interval: catching up cannot become a burst.
            target = max(self._target + self.interval, self._last + self.interval / 2)
            delay = target - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            # Behind by more than two intervals (a pause): forgive the rest rather than hurry,
            # so that a window never holds more than rate + 2.
            self._target = max(target, loop.time() - 2 * self.interval)
            self._last = loop.time()


async def send_due(context_app: Application[Any, Any, Any, Any, Any, Any]) -> int:
    """Send what is due now, a few at a time, each in its own slot of the pace."""
    services: Services = context_app.bot_data["services"]
    due = await services.call_long(outbox.due, now=services.clock(), limit=_BATCH)
    pacer: Pacer = context_app.bot_data.setdefault(
        "outbox_pacer", Pacer(services.settings.telegram_rate)
    )
    gate = asyncio.Semaphore(CONCURRENT_SENDS)

    async def one(message: Any) -> int:
        async with gate:
            return await _send_one(context_app, services, message, pacer)

    return sum(await asyncio.gather(*(one(message) for message in due)))


async def _send_one(
    context_app: Application[Any, Any, Any, Any, Any, Any],
    services: Services,
    message: Any,
    pacer: Pacer,
) -> int:
    assert message.id is not None
    if not await services.call(outbox.claim, message_id=message.id):
        return 0
    markup = (
        InlineKeyboardMarkup.de_json(json.loads(message.markup), context_app.bot)
        if message.markup
        else None
    )
    now = services.clock()
    status, retry_in, error = OutboxStatus.SENT, None, ""
    try:
        await pacer.wait()  # right before the request, so that slots are what Telegram sees
        with without_network_retries():  # a timeout is "uncertain", never sent twice
            await context_app.bot.send_message(
                message.chat_id, message.text, parse_mode=ParseMode.HTML, reply_markup=markup
            )
    except Forbidden as exc:
        status, error = OutboxStatus.BLOCKED, str(exc)
    except RetryAfter as exc:
        wait = exc.retry_after
        seconds = wait if isinstance(wait, int | float) else wait.total_seconds()
        status, retry_in, error = OutboxStatus.PENDING, float(seconds), "429"
    except BadRequest as exc:  # refused for good (chat not found, bad text): never delivered
        status, error = OutboxStatus.FAILED, str(exc)
    except NetworkError as exc:
        # A timeout or a broken connection: the message may have reached Telegram. Sending it
        # again could give the member a duplicate, so it is kept as uncertain instead.
        status, error = OutboxStatus.UNCERTAIN, str(exc)
    except TelegramError as exc:
        status, retry_in, error = (
            OutboxStatus.PENDING,
            min(60.0, 2.0**message.attempts),
            str(exc),
        )
    await services.call(
        outbox.finish,
        message_id=message.id,
        status=status,
        now=now,
        retry_in=retry_in,
        error=error,
    )
    return 1


async def update_progress(app: Application[Any, Any, Any, Any, Any, Any]) -> None:
    services: Services = app.bot_data["services"]
    for broadcast in await services.call(outbox.open_broadcasts):
        assert broadcast.id is not None
        state = await services.call(outbox.progress, broadcast_id=broadcast.id)
        shown = state.broadcast.progress_chat_id, state.broadcast.progress_message_id
        if shown[0] is not None and shown[1] is not None:
            await _show_progress(app.bot, state, shown[0], shown[1])
        if state.done:
            now_shown = await services.call(
                outbox.mark_finished, broadcast_id=broadcast.id, now=services.clock()
            )
            if now_shown is not None and now_shown != shown:  # posted while we counted
                await _show_progress(app.bot, state, *now_shown)


async def _show_progress(bot: Bot, state: outbox.Progress, chat_id: int, message_id: int) -> None:
    try:
        await bot.edit_message_text(
            _progress_text(state),
            chat_id=chat_id,
            message_id=message_id,
            parse_mode=ParseMode.HTML,
        )
    except BadRequest as exc:  # not modified, or the message was deleted on the desk
        logger.debug("progress not updated: %s", exc)


async def outbox_loop(app: Application[Any, Any, Any, Any, Any, Any]) -> None:
    """Runs while the bot runs: send what is due, show progress, idle briefly when empty."""
    loop = asyncio.get_running_loop()
    services: Services = app.bot_data["services"]
    last_progress = 0.0
    term: int | None = None
    while app.running:
        if not services.is_leader:
            await asyncio.sleep(1)
            continue
        leadership = services.leadership
        if leadership is None or leadership.term != term:
            # Leading anew (a start, or taking over from a dead leader): settle first what the
            # one before left in flight.
            term = leadership.term if leadership is not None else 0
            uncertain = await services.call(outbox.recover_after_crash)
            if uncertain:
                logger.warning("%s outbox messages were in flight; not resent", uncertain)
        try:
            handled = await send_due(app)
            if loop.time() - last_progress >= _PROGRESS_EVERY or not handled:
                await update_progress(app)
                last_progress = loop.time()
        except Exception:
            logger.exception("outbox round failed; trying again")
            handled = 0
        if not handled:
            await asyncio.sleep(0.2)


async def remind_events(context: ConciergeContext) -> None:
    """The day before an event, those signed up get a reminder (once, through the outbox)."""
    services = context.services
    for event, members in await services.call_long(outbox.events_to_remind, now=services.clock()):
        if not members:
            continue
        when = format_due(event.starts_at, services.settings.zone, "sv")
        await services.call_long(
            outbox.create_broadcast,
            kind="reminder",
            topic=event.topic,
            title=f"Påminnelse: {event.title}",
            text=Html(
                f"⏰ <b>I morgon: {_escape(event.title)}</b>\n{when} · {_escape(event.place)}"
            ),
            event_id=event.id,
            recipients=members,
            now=services.clock(),
        )


async def _start_loop(context: ConciergeContext) -> None:
    context.application.create_task(outbox_loop(context.application), name="outbox")


async def start_outbox(app: Application[Any, Any, Any, Any, Any, Any]) -> None:
    """Run the sender loop (on the leading instance; it settles what a crash left first)."""
    if app.job_queue is not None:
        # Started once the application runs, so that stopping it waits for the loop.
        app.job_queue.run_once(_start_loop, when=0, name="outbox-start")
    if app.job_queue is not None:
        app.job_queue.run_repeating(
            leader_only(remind_events), interval=600, first=30, name="event-reminders"
        )


def register(app: Application[Any, Any, Any, Any, Any, Any]) -> None:
    groups = filters.ChatType.GROUPS
    app.add_handler(CommandHandler("announce", announce_command, filters=groups))
    app.add_handler(CommandHandler("event", event_command, filters=groups))
    app.add_handler(CommandHandler("events", events_command, filters=filters.ChatType.PRIVATE))
    # Other "ev:" data falls through to the catch-all, which says the button is stale.
    app.add_handler(CallbackQueryHandler(sign_up_pressed, pattern=_SIGN_UP))
