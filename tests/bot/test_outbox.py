"""The outbox: who gets a broadcast, claiming, retries, and what a crash leaves behind."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlmodel import Session, select

from bot.models import Member, OutboxMessage, OutboxStatus
from bot.services import associations, members, outbox

NOW = datetime(2026, 11, 25, 9, 0, tzinfo=UTC)


def subscribers(session: Session, ids: range, topic: str = "nyheter") -> None:
    for member_id in ids:
        members.touch_member(
            session=session, user_id=member_id, first_name="M", language_code="sv"
        )
        associations.set_subscription(session=session, member_id=member_id, topic=topic, on=True)


def test_a_broadcast_reaches_the_topics_subscribers_and_skips_the_unreachable(
    session: Session,
) -> None:
    subscribers(session, range(1, 6))
    subscribers(session, range(10, 12), topic="utbildning")
    blocked = session.get(Member, 3)
    assert blocked is not None
    blocked.unreachable = True
    session.add(blocked)
    session.commit()
    broadcast = outbox.create_broadcast(
        session=session, kind="announcement", topic="nyheter", title="Nytt", text="Hej", now=NOW
    )
    assert broadcast.id is not None
    state = outbox.progress(session=session, broadcast_id=broadcast.id)
    assert state.counts == {"pending": 4, "blocked": 1} and not state.done
    assert sorted(m.chat_id for m in outbox.due(session=session, now=NOW)) == [1, 2, 4, 5]


def test_claiming_is_exclusive_and_a_crash_leaves_uncertain_not_resent(session: Session) -> None:
    subscribers(session, range(1, 4))
    outbox.create_broadcast(
        session=session, kind="announcement", topic="nyheter", title="T", text="x", now=NOW
    )
    first, second, third = outbox.due(session=session, now=NOW)
    assert first.id and second.id and third.id
    assert outbox.claim(session=session, message_id=first.id)
    assert not outbox.claim(session=session, message_id=first.id)
    outbox.finish(session=session, message_id=first.id, status=OutboxStatus.SENT, now=NOW)
    assert outbox.claim(session=session, message_id=second.id)  # in flight when "killed"
    assert outbox.recover_after_crash(session=session) == 1
    statuses = {m.chat_id: m.status for m in session.exec(select(OutboxMessage))}
    assert statuses == {1: OutboxStatus.SENT, 2: OutboxStatus.UNCERTAIN, 3: OutboxStatus.PENDING}
    assert [m.chat_id for m in outbox.due(session=session, now=NOW)] == [3]


def test_retry_after_waits_without_using_attempts_and_errors_give_up(session: Session) -> None:
    subscribers(session, range(1, 2))
    outbox.create_broadcast(
        session=session, kind="announcement", topic="nyheter", title="T", text="x", now=NOW
    )
    (message,) = outbox.due(session=session, now=NOW)
    assert message.id is not None
    for _ in range(outbox.MAX_ATTEMPTS + 2):  # 429s: wait, never give up
        assert outbox.claim(session=session, message_id=message.id)
        outbox.finish(
            session=session,
            message_id=message.id,
            status=OutboxStatus.PENDING,
            now=NOW,
            retry_in=3.0,
            error="429",
        )
        assert outbox.due(session=session, now=NOW) == []
        assert outbox.due(session=session, now=NOW + timedelta(seconds=3))
    stored = session.get(OutboxMessage, message.id)
    assert stored is not None and stored.status == OutboxStatus.PENDING
    for _ in range(outbox.MAX_ATTEMPTS):  # other errors: back off, then give up
        if not outbox.claim(session=session, message_id=message.id):
            break
        outbox.finish(
            session=session,
            message_id=message.id,
            status=OutboxStatus.PENDING,
            now=NOW,
            retry_in=3.0,
            error="Bad Gateway",
        )
    session.refresh(stored)
    assert stored.status == OutboxStatus.FAILED


def test_events_remind_those_signed_up_once(session: Session) -> None:
    subscribers(session, range(1, 4), topic="dialogmoten")
    event = outbox.create_event(
        session=session,
        topic="dialogmoten",
        title="Dialogmöte",
        starts_at=NOW + timedelta(days=3),
        place="Stadshuset",
        text="",
        created_by=None,
    )
    assert event.id is not None
    assert outbox.sign_up(session=session, event_id=event.id, member_id=1, now=NOW)
    assert not outbox.sign_up(session=session, event_id=event.id, member_id=1, now=NOW)
    assert outbox.events_to_remind(session=session, now=NOW) == []
    day_before = NOW + timedelta(days=2, hours=1)
    found = outbox.events_to_remind(session=session, now=day_before)
    assert [(e.id, signed) for e, signed in found] == [(event.id, [1])]
    assert outbox.events_to_remind(session=session, now=day_before) == []


def test_whoever_comes_second_shows_the_final_count_on_the_desk(session: Session) -> None:
    # The sender finishing a broadcast and the desk posting its progress message race; the
    # second of the two learns it must show the final count.
    subscribers(session, range(1, 3))
    early = outbox.create_broadcast(
        session=session, kind="announcement", topic="nyheter", title="A", text="x", now=NOW
    )
    late = outbox.create_broadcast(
        session=session, kind="announcement", topic="nyheter", title="B", text="y", now=NOW
    )
    assert early.id is not None and late.id is not None
    # Posted first, finished later: the sender is told where the message is.
    assert not outbox.set_progress_message(
        session=session, broadcast_id=early.id, chat_id=-100, message_id=7
    )
    assert outbox.mark_finished(session=session, broadcast_id=early.id, now=NOW) == (-100, 7)
    assert outbox.mark_finished(session=session, broadcast_id=early.id, now=NOW) is None
    # Finished first, posted later: the poster is told it is over.
    assert outbox.mark_finished(session=session, broadcast_id=late.id, now=NOW) is None
    assert outbox.set_progress_message(
        session=session, broadcast_id=late.id, chat_id=-100, message_id=8
    )
