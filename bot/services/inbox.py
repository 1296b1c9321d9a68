"""The inbox: every Telegram update stored before it is acknowledged, handled at least once.

Telegram forgets an update once the bot acknowledges it (the next ``getUpdates`` offset, or a 200
answer to a webhook). Storing it first, in the same database as the cases, means a process killed
in the middle loses nothing: the update is still here, and whichever instance is alive takes it
again when its lease runs out. Rows are claimed by compare-and-set, so two instances never handle
the same update at once, and a repeat delivery of a stored update creates nothing.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from bot.models import InboxState, InboxUpdate, utcnow

# An instance holds the updates it handles for this long and renews the hold while it lives
# (``renew``, every few seconds): when it dies, another takes them over within the lease.
LEASE = timedelta(seconds=30)
# Waits before a failed update (Telegram unreachable, say) is tried again.
BACKOFF = (
    timedelta(seconds=5),
    timedelta(seconds=30),
    timedelta(minutes=2),
    timedelta(minutes=10),
)
MAX_ATTEMPTS = len(BACKOFF) + 1


@dataclass(frozen=True)
class Claimed:
    update_id: int
    payload: dict[str, Any]
    attempts: int


def _who(payload: Mapping[str, Any]) -> tuple[int | None, int | None]:
    """The sender and chat of an update, for ordering and per-member limits."""
    for kind in ("message", "edited_message", "callback_query", "my_chat_member"):
        part = payload.get(kind)
        if not isinstance(part, dict):
            continue
        sender = part.get("from")
        user_id = sender.get("id") if isinstance(sender, dict) else None
        message = part.get("message") if kind == "callback_query" else part
        chat = message.get("chat") if isinstance(message, dict) else None
        chat_id = chat.get("id") if isinstance(chat, dict) else None
        return (
            user_id if isinstance(user_id, int) else None,
            chat_id if isinstance(chat_id, int) else None,
        )
    return None, None


def store(
    *,
    session: Session,
    updates: Iterable[Mapping[str, Any]],
    owner: str,
    now: datetime | None = None,
) -> list[Claimed]:
    """Store updates as taken by ``owner``; returns those not seen before (repeats are dropped).

    One transaction for the whole batch: when it commits, every update in it is safe.
    """
    now = now or utcnow()
    fresh: list[Claimed] = []
    seen: set[int] = set()
    for payload in updates:
        update_id = payload.get("update_id")
        if not isinstance(update_id, int) or update_id in seen:
            continue
        seen.add(update_id)
        if session.get(InboxUpdate, update_id) is not None:
            continue
        user_id, chat_id = _who(payload)
        session.add(
            InboxUpdate(
                update_id=update_id,
                user_id=user_id,
                chat_id=chat_id,
                payload=json.dumps(payload, ensure_ascii=False),
                state=InboxState.WORKING,
                owner=owner,
                lease_until=now + LEASE,
                attempts=1,
                received_at=now,
            )
        )
        fresh.append(Claimed(update_id, dict(payload), 1))
    try:
        session.commit()
    except IntegrityError:
        # Another instance stored one of them at the same moment: store one by one.
        session.rollback()
        if len(fresh) <= 1:
            return []
        kept: list[Claimed] = []
        for claimed in fresh:
            kept.extend(store(session=session, updates=[claimed.payload], owner=owner, now=now))
        return kept
    return fresh


def _due(now: datetime) -> sa.ColumnElement[bool]:
    """Waiting for a retry whose time has come, or held by an instance whose lease ran out."""
    return sa.or_(
        sa.and_(
            col(InboxUpdate.state) == InboxState.PENDING,
            sa.or_(col(InboxUpdate.available_at).is_(None), col(InboxUpdate.available_at) <= now),
        ),
        sa.and_(col(InboxUpdate.state) == InboxState.WORKING, col(InboxUpdate.lease_until) < now),
    )


def claim_due(
    *, session: Session, owner: str, limit: int = 100, now: datetime | None = None
) -> list[Claimed]:
    """Take over updates that wait for a retry or whose instance stopped (lease run out)."""
    now = now or utcnow()
    waiting = session.exec(
        select(InboxUpdate.update_id)
        .where(_due(now))
        .order_by(col(InboxUpdate.update_id))
        .limit(limit)
    ).all()
    taken: list[Claimed] = []
    for update_id in waiting:
        # Compare-and-set: the condition again, in the UPDATE itself, so that of two instances
        # looking at once only one takes it.
        result = session.execute(
            sa.update(InboxUpdate)
            .where(col(InboxUpdate.update_id) == update_id, _due(now))
            .values(
                state=InboxState.WORKING,
                owner=owner,
                lease_until=now + LEASE,
                attempts=InboxUpdate.attempts + 1,
            )
        )
        session.commit()
        if result.rowcount != 1:  # type: ignore[attr-defined]
            continue
        row = session.get(InboxUpdate, update_id)
        if row is not None and row.payload:
            taken.append(Claimed(update_id, json.loads(row.payload), row.attempts))
    return taken


def renew(
    *, session: Session, owner: str, update_ids: Sequence[int], now: datetime | None = None
) -> int:
    """Still alive: extend the lease on the updates this instance is handling."""
    now = now or utcnow()
    renewed = 0
    for start in range(0, len(update_ids), 500):
        result = session.execute(
            sa.update(InboxUpdate)
            .where(
                col(InboxUpdate.owner) == owner,
                col(InboxUpdate.state) == InboxState.WORKING,
                col(InboxUpdate.update_id).in_(update_ids[start : start + 500]),
            )
            .values(lease_until=now + LEASE)
        )
        renewed += int(result.rowcount)  # type: ignore[attr-defined]
    session.commit()
    return renewed


def release_dead(
    *, session: Session, alive: Callable[[str], bool | None], now: datetime | None = None
) -> int:
    """Free at once what owners known to be dead held (a restart on the same machine), instead
    of waiting for their leases. ``alive(owner)`` is ``None`` when it cannot tell."""
    now = now or utcnow()
    owners = session.exec(
        select(InboxUpdate.owner)
        .where(col(InboxUpdate.state) == InboxState.WORKING, col(InboxUpdate.lease_until) >= now)
        .distinct()
    ).all()
    dead = [owner for owner in owners if owner is not None and alive(owner) is False]
    if not dead:
        return 0
    result = session.execute(
        sa.update(InboxUpdate)
        .where(col(InboxUpdate.owner).in_(dead), col(InboxUpdate.state) == InboxState.WORKING)
        .values(lease_until=now - timedelta(seconds=1))
    )
    session.commit()
    return int(result.rowcount)  # type: ignore[attr-defined]


def finish(*, session: Session, update_id: int, owner: str) -> bool:
    """Handled: forget the payload. ``False`` when the row was no longer ours."""
    return finish_many(session=session, update_ids=[update_id], owner=owner) == 1


def finish_many(*, session: Session, update_ids: Iterable[int], owner: str) -> int:
    """Several handled, in one transaction; returns how many of them were still ours."""
    result = session.execute(
        sa.update(InboxUpdate)
        .where(
            col(InboxUpdate.update_id).in_(list(update_ids)),
            col(InboxUpdate.state) == InboxState.WORKING,
            col(InboxUpdate.owner) == owner,
        )
        .values(state=InboxState.DONE, payload="", lease_until=None)
    )
    session.commit()
    return int(result.rowcount)  # type: ignore[attr-defined]


def first_delivery(
    *, session: Session, update_id: int, user_id: int | None = None, now: datetime | None = None
) -> bool:
    """Whether an update may be handled now; ``False`` for a repeat delivery.

    Updates the inbox stored are in ``working`` state while their instance handles them. An update
    that did not come through the inbox (handed to the Application directly) is recorded as done
    at once: seen, at most once.
    """
    row = session.get(InboxUpdate, update_id)
    if row is not None:
        return row.state == InboxState.WORKING
    session.add(InboxUpdate(update_id=update_id, user_id=user_id, received_at=now or utcnow()))
    try:
        session.commit()
    except IntegrityError:
        session.rollback()
        return False
    return True


def handling_failed(
    *, session: Session, update_id: int, retry: bool, now: datetime | None = None
) -> bool:
    """Handling raised. Returns whether the update will be tried again by itself.

    From the inbox: tried again later with a growing wait when ``retry`` (Telegram unreachable)
    and attempts are left, else given up. Handed in directly: forgotten, so that a repeat
    delivery gets another chance.
    """
    now = now or utcnow()
    row = session.get(InboxUpdate, update_id)
    if row is None:
        return False
    if row.state != InboxState.WORKING or not row.payload:
        session.delete(row)
        session.commit()
        return False
    if retry and row.attempts < MAX_ATTEMPTS:
        row.state = InboxState.PENDING
        row.owner = None
        row.lease_until = None
        row.available_at = now + BACKOFF[min(row.attempts, len(BACKOFF)) - 1]
        session.add(row)
        session.commit()
        return True
    # Given up: the member was told. The update is kept (for the retention period of
    # bookkeeping) so that nothing they sent is lost before someone has looked.
    row.state = InboxState.FAILED
    row.lease_until = None
    session.add(row)
    session.commit()
    return False


def sent_recently(
    *, session: Session, user_id: int, since: datetime, up_to: int | None = None
) -> int:
    """How many updates a person sent since then, up to update ``up_to`` (the per-member
    limit)."""
    query = (
        select(sa.func.count())
        .select_from(InboxUpdate)
        .where(col(InboxUpdate.user_id) == user_id, col(InboxUpdate.received_at) >= since)
    )
    if up_to is not None:
        query = query.where(col(InboxUpdate.update_id) <= up_to)
    found = session.exec(query).one()
    return int(found)


def counts(*, session: Session) -> dict[str, int]:
    rows = session.exec(
        select(InboxUpdate.state, sa.func.count()).group_by(col(InboxUpdate.state))
    ).all()
    return {str(state): int(number) for state, number in rows}
