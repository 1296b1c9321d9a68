"""The desk's services: race-free claiming (SQLite and PostgreSQL), replies, closing, rating,
reopening, reminders once, statistics."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from sqlmodel import Session, select

from bot.models import Case, CaseMessage, CaseStatus, Direction
from bot.services import cases, conversation, desk, members
from bot.services.conversation import AddedToCase, AskWhichCase, ConversationPolicy
from bot.services.desk import DeskRefused
from knowledge.loading import Routing

NOW = datetime(2026, 11, 25, 9, 0, tzinfo=UTC)  # a Wednesday morning


def new_case(session: Session, policy: ConversationPolicy, member_id: int = 11) -> Case:
    members.touch_member(session=session, user_id=member_id, first_name="Ana", language_code="sv")
    case, _ = cases.create_case(
        session=session,
        member_id=member_id,
        chat_id=member_id,
        question="Hjälp med lokal",
        hours=policy.hours,
        business_days=2,
        department="fastighet",
        now=NOW,
    )
    return case


def test_claiming_at_the_same_moment_gives_the_case_to_exactly_one(
    any_engine: sa.Engine, policy: ConversationPolicy
) -> None:
    with Session(any_engine, expire_on_commit=False) as session:
        case = new_case(session, policy)
    assert case.id is not None
    contenders = 8
    barrier = threading.Barrier(contenders)
    outcomes: list[tuple[str, str]] = []
    lock = threading.Lock()

    def attempt(index: int) -> None:
        with Session(any_engine, expire_on_commit=False) as session:
            barrier.wait()
            try:
                desk.claim_case(
                    session=session,
                    case_id=case.id,
                    coordinator_id=100 + index,
                    name=f"Samordnare {index}",
                )
                result = ("won", f"Samordnare {index}")
            except DeskRefused as refused:
                result = (refused.reason, refused.who)
        with lock:
            outcomes.append(result)

    threads = [threading.Thread(target=attempt, args=(i,)) for i in range(contenders)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    winners = [who for reason, who in outcomes if reason == "won"]
    assert len(winners) == 1
    assert all(outcome == ("claimed", winners[0]) for outcome in outcomes if outcome[0] != "won")
    with Session(any_engine) as session:
        stored = session.get(Case, case.id)
        assert stored is not None and stored.claimed_by_name == winners[0]
        assert stored.status == CaseStatus.CLAIMED


def test_reply_sets_first_response_and_internal_notes_stay_internal(
    session: Session, policy: ConversationPolicy
) -> None:
    case = new_case(session, policy)
    assert case.id is not None
    desk.record_reply(
        session=session,
        case_id=case.id,
        coordinator_id=7,
        name="Kim",
        text="#intern ring fastighet",
        internal=True,
        now=NOW,
    )
    assert desk.get_case(session=session, case_id=case.id).first_response_at is None
    later = NOW + timedelta(hours=3)
    answered, _ = desk.record_reply(
        session=session,
        case_id=case.id,
        coordinator_id=7,
        name="Kim",
        text="Hej! Vi hjälper er.",
        internal=False,
        now=later,
    )
    assert answered.first_response_at == later and answered.claimed_by == 7
    directions = [m.direction for m in session.exec(select(CaseMessage))]
    assert directions == [Direction.FROM_MEMBER, Direction.INTERNAL, Direction.TO_MEMBER]


def test_hand_over_close_and_rate(session: Session, policy: ConversationPolicy) -> None:
    case = new_case(session, policy)
    assert case.id is not None
    handed = desk.hand_over(
        session=session, case_id=case.id, department_id="fastighet", coordinator_id=7, now=NOW
    )
    assert handed.status == CaseStatus.HANDED_OVER and handed.handed_to == "fastighet"
    closed = desk.close_case(
        session=session,
        case_id=case.id,
        coordinator_id=7,
        note="Fastighet har lagat taket.",
        now=NOW,
    )
    assert (
        closed.status == CaseStatus.CLOSED and closed.closing_note == "Fastighet har lagat taket."
    )
    with pytest.raises(DeskRefused):
        desk.close_case(session=session, case_id=case.id, coordinator_id=7)
    with pytest.raises(DeskRefused) as refused:
        desk.rate_case(session=session, case_id=case.id, member_id=999, rating=5)
    assert refused.value.reason == "not_yours"
    assert desk.rate_case(session=session, case_id=case.id, member_id=11, rating=4).rating == 4
    with pytest.raises(DeskRefused):
        desk.rate_case(session=session, case_id=case.id, member_id=11, rating=5)


def test_writing_after_closing_reopens_on_request(
    session: Session, shipped_routing: Routing, policy: ConversationPolicy
) -> None:
    case = new_case(session, policy)
    assert case.id is not None
    desk.close_case(session=session, case_id=case.id, coordinator_id=7, now=NOW)
    asked = conversation.receive_text(
        session=session,
        routing=shipped_routing,
        policy=policy,
        member_id=11,
        chat_id=11,
        text="Taket läcker igen!",
        language="sv",
        now=NOW + timedelta(days=2),
    )
    assert isinstance(asked, AskWhichCase) and asked.case.id == case.id
    assert asked.pending.id is not None
    reopened = conversation.resolve_pending(
        session=session,
        routing=shipped_routing,
        policy=policy,
        member_id=11,
        pending_id=asked.pending.id,
        belongs_to_case=True,
        language="sv",
        now=NOW + timedelta(days=2),
    )
    assert isinstance(reopened, AddedToCase) and reopened.reopened
    stored = desk.get_case(session=session, case_id=case.id)
    # Back with the coordinator who had it.
    assert stored.status == CaseStatus.CLAIMED and stored.claimed_by == 7
    assert stored.reopened_count == 1
    # Long after closing, a message is a new question.
    desk.close_case(session=session, case_id=case.id, coordinator_id=7, now=NOW)
    fresh = conversation.receive_text(
        session=session,
        routing=shipped_routing,
        policy=policy,
        member_id=11,
        chat_id=11,
        text="Hur bokar vi träningstider i en idrottshall?",
        language="sv",
        now=NOW + timedelta(days=policy.reopen_days + 1),
    )
    assert not isinstance(fresh, AskWhichCase | AddedToCase)


def test_reminders_go_out_once_per_case_and_level(
    engine: sa.Engine, policy: ConversationPolicy
) -> None:
    with Session(engine, expire_on_commit=False) as session:
        case = new_case(session, policy)
    assert case.id is not None
    hours = policy.hours
    just_before = case.due_at - timedelta(hours=1)
    with Session(engine) as session:
        due = desk.reminders_due(session=session, now=just_before, hours=hours, before_hours=4)
        assert [(c.id, level) for c, level in due] == [(case.id, desk.DUE_SOON)]
        assert desk.claim_reminder(session=session, case_id=case.id, level=desk.DUE_SOON)
    # A restart, or a second instance: a new session on the same database.
    with Session(engine) as session:
        assert (
            desk.reminders_due(session=session, now=just_before, hours=hours, before_hours=4) == []
        )
        assert not desk.claim_reminder(session=session, case_id=case.id, level=desk.DUE_SOON)
        overdue = desk.reminders_due(
            session=session, now=case.due_at + timedelta(minutes=1), hours=hours, before_hours=4
        )
        assert [level for _, level in overdue] == [desk.OVERDUE]


def test_stats_count_cases_times_and_feedback(
    session: Session, shipped_routing: Routing, policy: ConversationPolicy
) -> None:
    case = new_case(session, policy)
    assert case.id is not None
    desk.record_reply(
        session=session,
        case_id=case.id,
        coordinator_id=7,
        name="Kim",
        text="Hej",
        internal=False,
        now=NOW + timedelta(hours=2),
    )
    desk.close_case(
        session=session, case_id=case.id, coordinator_id=7, now=NOW + timedelta(hours=5)
    )
    desk.rate_case(session=session, case_id=case.id, member_id=11, rating=5)
    members.touch_member(session=session, user_id=12, first_name="Bo", language_code="sv")
    conversation.receive_text(
        session=session,
        routing=shipped_routing,
        policy=policy,
        member_id=12,
        chat_id=12,
        text="Hur söker vi LOK-stöd?",
        language="sv",
        now=NOW,
    )
    found = desk.desk_stats(
        session=session,
        since=NOW - timedelta(days=1),
        until=NOW + timedelta(days=1),
        hours=policy.hours,
    )
    assert found.cases == 1 and found.by_status["closed"] == 1
    assert found.median_first_response_hours == 2.0 and found.median_close_hours == 5.0
    assert found.questions == 1 and found.resolved_without_person == 1.0
    assert found.mean_rating == 5


def test_period_parsing() -> None:
    assert desk.parse_period("7d", NOW) == (NOW - timedelta(days=7), NOW + timedelta(seconds=1))
    assert desk.parse_period("", NOW) is not None
    assert desk.parse_period("2w", NOW) is not None
    assert desk.parse_period("banan", NOW) is None


def test_new_telegram_ids_over_two_billion_and_nul_work_on_every_database(
    any_engine: sa.Engine, shipped_routing: Routing, policy: ConversationPolicy
) -> None:
    big = 7_123_456_789
    with Session(any_engine, expire_on_commit=False) as session:
        members.touch_member(session=session, user_id=big, first_name="Ny", language_code="sv")
        outcome = conversation.receive_text(
            session=session,
            routing=shipped_routing,
            policy=policy,
            member_id=big,
            chat_id=big,
            text="Jag vill prata med en\x00 människa",
            language="sv",
            update_id=2**40,
            now=NOW,
        )
        assert isinstance(outcome, conversation.Escalated)
        assert outcome.case.member_id == big and "\x00" not in outcome.case.question
