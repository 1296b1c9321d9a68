"""End to end: announcements through the outbox, in process and across a SIGKILL."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections import Counter
from datetime import datetime, time, timedelta
from pathlib import Path
from typing import Any

from conftest import ROOT, TOKEN
from conftest import running_bot as running
from sqlmodel import Session, select

from bot.app import Services, build_services
from bot.config import Settings
from bot.loopback import LoopbackBotApi
from bot.models import OutboxMessage, OutboxStatus
from bot.services import associations, members, outbox
from handlers.announce import CONCURRENT_SENDS


def add_subscribers(services: Services, api: LoopbackBotApi, ids: range, topic: str) -> None:
    with Session(services.engine) as session:
        for member_id in ids:
            api.person(member_id, f"M{member_id}")
            members.touch_member(
                session=session, user_id=member_id, first_name="M", language_code="sv"
            )
            associations.set_subscription(
                session=session, member_id=member_id, topic=topic, on=True
            )


def desk_with_subscribers(
    api: LoopbackBotApi, settings: Settings, routing: Any, ids: range
) -> tuple[Any, dict[str, Any], Settings, Services]:
    """Coordinator Kim in a desk group, and ``ids`` subscribed to "nyheter"."""
    kim = api.person(9001, "Kim")
    group = api.create_supergroup("Samordnare", forum=False, members=[kim.id])
    fast = settings.model_copy(update={"coordinator_chat_id": group["id"], "telegram_rate": 500.0})
    services = build_services(fast, routing=routing)
    add_subscribers(services, api, ids, "nyheter")
    return kim, group, fast, services


def received(api: LoopbackBotApi, ids: range, needle: str) -> Counter[int]:
    return Counter(
        {
            member_id: sum(needle in m.get("text", "") for m in api.messages(member_id))
            for member_id in ids
        }
    )


async def wait_until(check: Any, patience: float = 60.0, every: float = 0.1) -> None:
    for _ in range(int(patience / every)):
        if check():
            return
        await asyncio.sleep(every)
    assert check()


async def test_an_announcement_with_429s_and_blocked_members(
    api: LoopbackBotApi, settings: Settings, shipped_routing: Any
) -> None:
    ids = range(20_001, 20_201)
    kim, group, fast, services = desk_with_subscribers(api, settings, shipped_routing, ids)
    for member_id in (20_005, 20_050):
        api.block(member_id)
    api.fail_next("sendMessage", error_code=429, retry_after=1, times=3)
    async with running(fast, services):
        await kim.send("/announce nyheter | Nytt bidrag | Ansök senast 1 mars.", chat=group["id"])
        progress = await api.wait_for_message(
            group["id"], lambda m: "«Nytt bidrag»" in m["text"], timeout=10
        )
        await wait_until(
            lambda: "klart" in api.message(group["id"], progress["message_id"])["text"]
        )
        final = api.message(group["id"], progress["message_id"])["text"]
    assert "198/200 skickade · 2 blockerade · 0 misslyckade" in final
    counts = received(api, ids, "Nytt bidrag")
    assert {member_id for member_id, n in counts.items() if n == 0} == {20_005, 20_050}
    assert max(counts.values()) == 1


async def test_a_broadcast_done_before_its_progress_message_is_posted_still_says_so(
    api: LoopbackBotApi, settings: Settings, shipped_routing: Any
) -> None:
    # The progress message is held until every member has the announcement: the desk must
    # still see the final count, not a "0/20" that never moves.
    ids = range(20_301, 20_321)
    kim, group, fast, services = desk_with_subscribers(api, settings, shipped_routing, ids)
    api.delay("sendMessage", 3.0, chat_id=group["id"])
    async with running(fast, services):
        await kim.send("/announce nyheter | Städdag | Lördag kl 10.", chat=group["id"])
        await wait_until(lambda: sum(received(api, ids, "Städdag").values()) == len(ids))
        progress = await api.wait_for_message(
            group["id"], lambda m: "«Städdag»" in m["text"], timeout=10
        )
        await wait_until(
            lambda: "klart" in api.message(group["id"], progress["message_id"])["text"],
            patience=10,
        )
        final = api.message(group["id"], progress["message_id"])["text"]
    assert "20/20 skickade · 0 blockerade · 0 misslyckade" in final


async def test_an_event_invitation_sign_up_and_the_reminder_the_day_before(
    api: LoopbackBotApi, settings: Settings, shipped_routing: Any
) -> None:
    kim = api.person(9001, "Kim")
    group = api.create_supergroup("Samordnare", forum=False, members=[kim.id])
    fast = settings.model_copy(update={"coordinator_chat_id": group["id"], "telegram_rate": 500.0})
    services = build_services(fast, routing=shipped_routing)
    add_subscribers(services, api, range(30_001, 30_004), "dialogmoten")
    ana = api.person(30_001, "Ana")
    async with running(fast, services) as app:
        start = (services.clock() + timedelta(days=5)).astimezone(fast.zone)
        await kim.send(
            f"/event dialogmoten | Dialogmöte om lokaler | {start:%Y-%m-%d} 18:00 | "
            "Stadshuset | Välkomna!",
            chat=group["id"],
        )
        invitation = await api.wait_for_message(ana.chat_id, timeout=10)
        assert "Dialogmöte om lokaler" in invitation["text"]
        query = await ana.press(invitation, "Anmäl mig / Sign up")
        answer = await api.wait_for_callback_answer(query["id"], timeout=10)
        assert "anmäld" in (answer.text or "")
        listing = await ana.ask("/events", timeout=10)
        assert "Dialogmöte om lokaler" in listing["text"]
        # The morning before the event (18:00 local), whatever the time of day the test runs
        # (it used to add 4 days 6 hours to now: more than a day before the event when run
        # before noon in Stockholm, and then no reminder was due).
        begins = datetime.combine(start.date(), time(18, 0), tzinfo=fast.zone)
        later = begins - timedelta(hours=12)
        services.clock = lambda: later
        from bot.app import ConciergeContext
        from handlers.announce import remind_events

        await remind_events(ConciergeContext(app))
        await remind_events(ConciergeContext(app))
        await wait_until(lambda: any("I morgon" in m["text"] for m in api.messages(ana.chat_id)))
        await asyncio.sleep(0.5)
    reminders = [m for m in api.messages(ana.chat_id) if "I morgon" in m["text"]]
    assert len(reminders) == 1
    assert not any("I morgon" in m["text"] for m in api.messages(30_002))  # not signed up


async def test_a_broadcast_survives_sigkill_and_nobody_gets_it_twice(
    api: LoopbackBotApi, settings: Settings, tmp_path: Path
) -> None:
    """The bot runs as `concierge run` in its own process and is killed halfway."""
    ids = range(40_001, 42_001)  # 2,000 subscribers
    services = build_services(settings)
    add_subscribers(services, api, ids, "nyheter")
    for member_id in (40_010, 40_200, 41_999):
        api.block(member_id)
    api.fail_next("sendMessage", error_code=429, retry_after=1, times=5)
    with Session(services.engine) as session:
        outbox.create_broadcast(
            session=session,
            kind="announcement",
            topic="nyheter",
            title="Stort utskick",
            text="📣 Stort utskick till alla",
        )
    env = {
        **os.environ,
        "TELEGRAM_BOT_TOKEN": TOKEN,
        "TELEGRAM_API_URL": api.base_url,
        "TELEGRAM_FILE_URL": api.base_file_url,
        "DATABASE_URL": settings.database_url,
        "RULES_PATH": str(ROOT / "routing_rules.yaml"),
        "KNOWLEDGE_PATH": str(ROOT / "knowledge" / "articles"),
        "TELEGRAM_RATE": "400",
        "CONCIERGE_CACHE_DIR": str(tmp_path / "cache"),
    }
    command = [sys.executable, "-c", "from bot.cli import main; main(['run'])"]

    def delivered() -> int:  # cheap enough to ask often: the server's request log
        return sum(1 for r in api.requests if r.method == "sendMessage" and r.status == 200)

    first = await asyncio.create_subprocess_exec(*command, env=env, cwd=tmp_path)
    try:
        await wait_until(lambda: delivered() >= 800, patience=90, every=0.25)
    finally:
        first.send_signal(signal.SIGKILL)
        await first.wait()
    at_kill = delivered()
    assert at_kill < 1990, "the broadcast finished before the kill; make it longer"
    second = await asyncio.create_subprocess_exec(*command, env=env, cwd=tmp_path)
    try:

        def finished() -> bool:
            with Session(services.engine) as session:
                statuses = [m.status for m in session.exec(select(OutboxMessage))]
            return OutboxStatus.PENDING not in statuses and OutboxStatus.SENDING not in statuses

        await wait_until(finished, patience=120, every=0.5)
    finally:
        second.send_signal(signal.SIGTERM)
        await asyncio.wait_for(second.wait(), timeout=30)
    counts = received(api, ids, "Stort utskick")
    assert max(counts.values()) == 1, "someone got the announcement twice"
    with Session(services.engine) as session:
        rows = {m.chat_id: m.status for m in session.exec(select(OutboxMessage))}
    missing = {member_id for member_id, n in counts.items() if n == 0}
    blocked = {chat for chat, status in rows.items() if status == OutboxStatus.BLOCKED}
    uncertain = {chat for chat, status in rows.items() if status == OutboxStatus.UNCERTAIN}
    assert blocked == {40_010, 40_200, 41_999}
    # Only blocked members, and at most the few in flight at the kill, did not get it.
    # At most the sends under way at once can have been in flight.
    assert missing - blocked <= uncertain and len(uncertain) <= CONCURRENT_SENDS
    # A message in flight at the kill may have arrived; it is "uncertain" and was not resent.
    assert all(
        rows[chat] in (OutboxStatus.SENT, OutboxStatus.UNCERTAIN)
        for chat, n in counts.items()
        if n == 1
    )
