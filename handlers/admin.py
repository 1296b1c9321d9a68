"""Admins change the routing table live: /reload, /rules, /rollback and a file watcher.

Every change is checked against the project's question set beside the live table before it goes
live; an invalid one never does. Admin rights come from ``ADMIN_USER_IDS``, checked here on every
command.
"""

from __future__ import annotations

import asyncio
import html
import json
import logging
from datetime import time, timedelta
from typing import Any

from telegram import Update
from telegram.constants import ParseMode
from telegram.error import TelegramError
from telegram.ext import Application, CommandHandler, filters

from bot.app import ConciergeContext, Services, leader_only
from bot.services import desk as desk_service
from bot.services import rules_admin, suggestions
from bot.services.rules_admin import ReloadPlan
from bot.texts import Html, split_message, text
from knowledge.evaluation import evaluate
from knowledge.regression import Bars
from knowledge.rules import RulesInvalid
from knowledge.suggest import suggest

logger = logging.getLogger(__name__)
_PRIVATE = filters.ChatType.PRIVATE


def _bars(services: Services) -> Bars:
    settings = services.settings
    return Bars(
        min_correct=settings.min_correct,
        min_answer_precision=settings.min_answer_precision,
        max_drop=settings.max_drop,
    )


async def _plan(services: Services) -> ReloadPlan:
    settings = services.settings
    return await services.call_long(
        rules_admin.plan_reload,
        current=services.routing,
        rules_path=settings.rules_path,
        knowledge_path=settings.knowledge_path,
        questions_path=settings.questions_path,
        bars=_bars(services),
    )


async def go_live(services: Services, plan: ReloadPlan, source: str, by: int | None) -> None:
    """Swap in the new table; questions already being routed finish on the old one."""
    services.routing = plan.candidate
    services.watched_fingerprint = plan.content_hash
    services.live_fingerprint = plan.content_hash
    await services.call(
        rules_admin.record_live,
        content_hash=plan.content_hash,
        rules_text=plan.rules_text,
        source=source,
        by=by,
        summary=plan.changes.describe(),
        figures=plan.figures(),
    )
    logger.info("routing table %s live (%s by %s)", plan.content_hash[:12], source, by)


def _pre(body: str) -> Html:
    return Html(f"<pre>{html.escape(body, quote=False)}</pre>")


async def _tell(context: ConciergeContext, chat_ids: list[int], *parts: str) -> None:
    message = Html("\n\n".join(parts))
    for chat_id in chat_ids:
        for part in split_message(message):
            try:
                await context.bot.send_message(chat_id, part, parse_mode=ParseMode.HTML)
            except TelegramError as exc:
                logger.warning("could not tell admin %s: %s", chat_id, exc)


async def reload_rules(
    context: ConciergeContext, *, force: bool, by: int | None, source: str, tell: list[int]
) -> None:
    """Check the files on disk and, when they pass (or ``force``), make them live."""
    services = context.services
    async with services.reload_lock:
        try:
            plan = await _plan(services)
        except RulesInvalid as exc:
            services.watched_fingerprint = await services.call_plain(
                rules_admin.fingerprint,
                services.settings.rules_path,
                services.settings.knowledge_path,
            )
            errors = "\n".join(str(error) for error in exc.errors)
            await _tell(context, tell, text("admin_invalid", "sv"), _pre(errors))
            return
        if plan.changes.empty and plan.content_hash == services.live_fingerprint:
            services.watched_fingerprint = plan.content_hash
            await _tell(context, tell, text("admin_no_change", "sv"))
            return
        if plan.held and not force:
            services.watched_fingerprint = plan.content_hash
            await _tell(context, tell, text("admin_held", "sv"), _pre(plan.describe()))
            return
        await go_live(services, plan, "force" if force and plan.held else source, by)
        await _tell(context, tell, text("admin_live", "sv"), _pre(plan.describe()))


def is_admin(context: ConciergeContext, user_id: int | None) -> bool:
    return user_id is not None and user_id in context.services.settings.admin_user_ids


async def _admin_only(update: Update, context: ConciergeContext, command: str) -> int | None:
    user = update.effective_user
    if user is None or not is_admin(context, user.id):
        logger.warning("refused /%s by user %s (not an admin)", command, user.id if user else None)
        if update.effective_message is not None:
            await update.effective_message.reply_text(text("admin_refused", "sv"))
        return None
    return user.id


async def reload_command(update: Update, context: ConciergeContext) -> None:
    """Load the routing table and knowledge base from disk: /reload, or /reload force."""
    user_id = await _admin_only(update, context, "reload")
    if user_id is None or update.effective_chat is None:
        return
    arguments = context.args or []
    force = bool(arguments) and arguments[0].lower() in ("force", "tvinga")
    await reload_rules(
        context, force=force, by=user_id, source="chat", tell=[update.effective_chat.id]
    )


async def rules_command(update: Update, context: ConciergeContext) -> None:
    """Show the live routing table's version."""
    user_id = await _admin_only(update, context, "rules")
    if user_id is None or update.effective_chat is None:
        return
    version = await context.services.call(rules_admin.live_version)
    table = context.services.routing.table
    if version is None:
        await _tell(context, [update.effective_chat.id], text("admin_no_history", "sv"))
        return
    figures = json.loads(version.figures or "{}")
    body = text(
        "admin_rules",
        "sv",
        hash=version.content_hash[:12],
        when=version.activated_at.astimezone(context.services.settings.zone).strftime(
            "%Y-%m-%d %H:%M"
        ),
        source=version.source,
        by=version.activated_by or "—",
        departments=len(table.departments),
        rules=len(table.rules),
        correct=f"{figures.get('correct', 0):.3f}",
        precision=f"{figures.get('answer_precision', 0):.3f}",
        summary=version.summary,
    )
    await _tell(context, [update.effective_chat.id], body)


async def rollback_command(update: Update, context: ConciergeContext) -> None:
    """Restore the routing table that was live before the current one."""
    user_id = await _admin_only(update, context, "rollback")
    if user_id is None or update.effective_chat is None:
        return
    services = context.services
    previous = await services.call(rules_admin.previous_version)
    if previous is None:
        await _tell(context, [update.effective_chat.id], text("admin_no_previous", "sv"))
        return
    # The file on disk becomes the previous table, so that the watcher agrees with what is live.
    await asyncio.to_thread(
        rules_admin.write_rules, services.settings.rules_path, previous.rules_text
    )
    await reload_rules(
        context, force=True, by=user_id, source="rollback", tell=[update.effective_chat.id]
    )


async def watch_rules(context: ConciergeContext) -> None:
    """Notice a changed rules file or article and reload it, telling the admins."""
    services = context.services
    settings = services.settings
    current = await services.call_plain(
        rules_admin.fingerprint, settings.rules_path, settings.knowledge_path
    )
    if current == services.watched_fingerprint:
        return
    # Every instance watches its own copy of the files and swaps its own table; the admins are
    # told by the leading instance only (once, not once per instance).
    tell = list(settings.admin_user_ids) if services.is_leader else []
    await reload_rules(context, force=False, by=None, source="file", tell=tell)


async def record_start(services: Services) -> None:
    """Record the table the bot starts with, if it is not the last one recorded."""
    settings = services.settings
    content_hash = await services.call_plain(
        rules_admin.fingerprint, settings.rules_path, settings.knowledge_path
    )
    services.watched_fingerprint = content_hash
    services.live_fingerprint = content_hash
    live = await services.call(rules_admin.live_version)
    if live is not None and live.content_hash == content_hash:
        return
    questions = await services.call_long(
        rules_admin.regression_questions, path=settings.questions_path
    )
    figures = evaluate(questions, services.routing.router.route).as_dict()
    rules_text = (
        settings.rules_path.read_text(encoding="utf-8-sig")
        if settings.rules_path.is_file()
        else ""
    )
    await services.call(
        rules_admin.record_live,
        content_hash=content_hash,
        rules_text=rules_text,
        source="start",
        by=None,
        summary="started",
        figures=figures,
    )


def schedule_watch(app: Application[Any, Any, Any, Any, Any, Any], services: Services) -> None:
    """Check the files on disk every few seconds (``RULES_WATCH_SECONDS``)."""
    if app.job_queue is None:
        logger.warning("no job queue: changed rules are picked up by /reload only")
        return
    seconds = services.settings.rules_watch_seconds
    app.job_queue.run_repeating(watch_rules, interval=seconds, first=seconds, name="watch-rules")
    monday_morning = time(8, 15, tzinfo=services.settings.zone)
    app.job_queue.run_daily(
        leader_only(weekly_suggestions), time=monday_morning, days=(1,), name="weekly-suggestions"
    )


async def weekly_suggestions(context: ConciergeContext) -> None:
    """On Monday mornings, the admins get this week's rule suggestions (once a week)."""
    services = context.services
    settings = services.settings
    if not settings.admin_user_ids:
        return
    now = services.clock()
    week = now.astimezone(settings.zone).strftime("suggest-%G-W%V")
    if not await services.call(desk_service.claim_digest, day=week):
        return
    log = await services.call_long(suggestions.traffic, since=now - timedelta(days=7))
    questions = await services.call_long(
        rules_admin.regression_questions, path=settings.questions_path
    )
    routing = services.routing
    found = await services.call_plain(suggest, routing.table, routing.router, log, questions)
    await _tell(
        context,
        list(settings.admin_user_ids),
        text("admin_suggestions", "sv"),
        _pre(found.describe()),
    )


def register(app: Application[Any, Any, Any, Any, Any, Any]) -> None:
    app.add_handler(CommandHandler("reload", reload_command, filters=_PRIVATE))
    app.add_handler(CommandHandler("rules", rules_command, filters=_PRIVATE))
    app.add_handler(CommandHandler("rollback", rollback_command, filters=_PRIVATE))
