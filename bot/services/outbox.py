"""The persistent outbox: announcements and reminders queued in the database, sent once.

Each message moves pending → sending → sent (or blocked/failed) with a compare-and-set, so two
senders (instances) never take the same one. A message found in ``sending`` after a crash may
have reached the member; it is marked ``uncertain`` and never sent again — nobody gets a
message twice — and the coordinator sees how many.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlmodel import Session, col, select

from bot.models import (
    Broadcast,
    Event,
    EventSignup,
    Member,
    OutboxMessage,
    OutboxStatus,
    Subscription,
    utcnow,
)

MAX_ATTEMPTS = 5


def create_broadcast(
    *,
    session: Session,
    kind: str,
    topic: str,
    title: str,
    text: str,
    markup: str = "",
    created_by: int | None = None,
    event_id: int | None = None,
    recipients: list[int] | None = None,
    now: datetime | None = None,
) -> Broadcast:
    """Queue one message per recipient (the topic's subscribers unless given), atomically."""
    now = now or utcnow()
    if recipients is None:
        recipients = [
            row.member_id
            for row in session.exec(select(Subscription).where(Subscription.topic == topic))
        ]
    unreachable = {m.id for m in session.exec(select(Member).where(col(Member.unreachable)))}
    broadcast = Broadcast(
        kind=kind,
        topic=topic,
        title=title,
        event_id=event_id,
        created_by=created_by,
        created_at=now,
    )
    session.add(broadcast)
    session.flush()
    assert broadcast.id is not None
    for chat_id in sorted(set(recipients)):
        status = OutboxStatus.BLOCKED if chat_id in unreachable else OutboxStatus.PENDING
        session.add(
            OutboxMessage(
                broadcast_id=broadcast.id,
                chat_id=chat_id,
                text=text,
                markup=markup,
                status=status,
                next_attempt_at=now,
            )
        )
    session.commit()
    return broadcast


def set_progress_message(
    *, session: Session, broadcast_id: int, chat_id: int, message_id: int
) -> bool:
    """Remember the desk's progress message; ``True`` if the broadcast had already finished.

    The sender may finish a small broadcast before its progress message is even posted; then
    nobody else will show the final count, so the caller must. One statement (the row is
    locked while it is written), so that this and :func:`mark_finished` see each other.
    """
    finished_at = session.execute(
        sa.update(Broadcast)
        .where(col(Broadcast.id) == broadcast_id)
        .values(progress_chat_id=chat_id, progress_message_id=message_id)
        .returning(col(Broadcast.finished_at))
    ).scalar_one_or_none()
    session.commit()
    return finished_at is not None


def recover_after_crash(*, session: Session) -> int:
    """At start: what was in flight when the process died is uncertain, never resent."""
    result = session.execute(
        sa.update(OutboxMessage)
        .where(col(OutboxMessage.status) == OutboxStatus.SENDING)
        .values(status=OutboxStatus.UNCERTAIN)
    )
    session.commit()
    return int(result.rowcount)  # type: ignore[attr-defined]


def due(*, session: Session, now: datetime, limit: int = 50) -> list[OutboxMessage]:
    return list(
        session.exec(
            select(OutboxMessage)
            .where(
                OutboxMessage.status == OutboxStatus.PENDING, OutboxMessage.next_attempt_at <= now
            )
            .order_by(col(OutboxMessage.id))
            .limit(limit)
        )
    )


def claim(*, session: Session, message_id: int) -> bool:
    """Take a message for sending; ``False`` if another sender has it."""
    result = session.execute(
        sa.update(OutboxMessage)
        .where(
            col(OutboxMessage.id) == message_id, col(OutboxMessage.status) == OutboxStatus.PENDING
        )
        .values(status=OutboxStatus.SENDING, attempts=OutboxMessage.attempts + 1)
    )
    session.commit()
    return bool(result.rowcount == 1)  # type: ignore[attr-defined]


def finish(
    *,
    session: Session,
    message_id: int,
    status: OutboxStatus,
    now: datetime,
    retry_in: float | None = None,
    error: str = "",
) -> None:
    message = session.get(OutboxMessage, message_id)
    if message is None:
        return
    if error == "429":
        # Telegram asked to wait: not a failure of this message, so no attempt is used up.
        message.attempts = max(0, message.attempts - 1)
    if retry_in is not None and message.attempts < MAX_ATTEMPTS:
        message.status = OutboxStatus.PENDING
        message.next_attempt_at = now + timedelta(seconds=retry_in)
    elif retry_in is not None:
        message.status = OutboxStatus.FAILED
    else:
        message.status = status
    if message.status == OutboxStatus.SENT:
        message.sent_at = now
    if message.status == OutboxStatus.BLOCKED:
        member = session.get(Member, message.chat_id)
        if member is not None:
            member.unreachable = True
            session.add(member)
    message.error = error[:200]
    session.add(message)
    session.commit()


@dataclass(frozen=True)
class Progress:
    broadcast: Broadcast
    counts: dict[str, int]

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    @property
    def done(self) -> bool:
        return self.counts.get("pending", 0) == 0 and self.counts.get("sending", 0) == 0


def progress(*, session: Session, broadcast_id: int) -> Progress:
    """How far a broadcast has come (counted in the database, not row by row)."""
    broadcast = session.get(Broadcast, broadcast_id)
    assert broadcast is not None
    rows = session.execute(
        sa.select(OutboxMessage.status, sa.func.count())  # type: ignore[call-overload]
        .where(col(OutboxMessage.broadcast_id) == broadcast_id)
        .group_by(OutboxMessage.status)
    ).all()
    counts = {OutboxStatus(status).value: int(number) for status, number in rows}
    return Progress(broadcast, counts)


def open_broadcasts(*, session: Session) -> list[Broadcast]:
    return list(session.exec(select(Broadcast).where(col(Broadcast.finished_at).is_(None))))


def mark_finished(*, session: Session, broadcast_id: int, now: datetime) -> tuple[int, int] | None:
    """Mark the broadcast finished; the progress message (chat, message) as it is now, if any.

    Read in the same statement that marks it: a progress message posted after the sender
    looked is shown the final count either here or by :func:`set_progress_message`'s caller.
    """
    row = session.execute(
        sa.update(Broadcast)
        .where(col(Broadcast.id) == broadcast_id, col(Broadcast.finished_at).is_(None))
        .values(finished_at=now)
        .returning(col(Broadcast.progress_chat_id), col(Broadcast.progress_message_id))
    ).one_or_none()
    session.commit()
    if row is None or row[0] is None or row[1] is None:
        return None
    return int(row[0]), int(row[1])


# -- events -----------------------------------------------------------------------------------


def create_event(
    *,
    session: Session,
    topic: str,
    title: str,
    starts_at: datetime,
    place: str,
    text: str,
    created_by: int | None,
) -> Event:
    event = Event(
        topic=topic,
        title=title,
        starts_at=starts_at,
        place=place,
        text=text,
        created_by=created_by,
    )
    session.add(event)
    session.commit()
    return event


def upcoming_events(*, session: Session, now: datetime) -> list[Event]:
    return list(
        session.exec(select(Event).where(Event.starts_at >= now).order_by(col(Event.starts_at)))
    )


def sign_up(*, session: Session, event_id: int, member_id: int, now: datetime) -> bool:
    """``False`` when already signed up (or the event is past or unknown)."""
    event = session.get(Event, event_id)
    if event is None or event.starts_at < now:
        raise LookupError("stale")
    exists = session.exec(
        select(EventSignup).where(
            EventSignup.event_id == event_id, EventSignup.member_id == member_id
        )
    ).first()
    if exists is not None:
        return False
    session.add(EventSignup(event_id=event_id, member_id=member_id, created_at=now))
    session.commit()
    return True


def events_to_remind(*, session: Session, now: datetime) -> list[tuple[Event, list[int]]]:
    """Events starting within a day with sign-ups not reminded yet (claimed: once, by one)."""
    found = []
    for event in session.exec(
        select(Event).where(
            col(Event.reminded_at).is_(None),
            Event.starts_at > now,
            Event.starts_at <= now + timedelta(days=1),
        )
    ):
        signed = [
            s.member_id
            for s in session.exec(select(EventSignup).where(EventSignup.event_id == event.id))
        ]
        if not signed:
            continue  # nobody yet: a later sign-up is still reminded
        claimed = session.execute(
            sa.update(Event)
            .where(col(Event.id) == event.id, col(Event.reminded_at).is_(None))
            .values(reminded_at=now)
        )
        session.commit()
        if claimed.rowcount == 1:  # type: ignore[attr-defined]
            found.append((event, signed))
    return found


def markup_json(rows: list[list[tuple[str, str]]]) -> str:
    return json.dumps(
        {"inline_keyboard": [[{"text": t, "callback_data": d} for t, d in row] for row in rows]},
        ensure_ascii=False,
    )
