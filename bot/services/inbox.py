"""The inbox: every Telegram update stored before it is acknowledged, handled at least once.

Telegram forgets an update once the bot acknowledges it (the next ``getUpdates`` offset, or a 200
answer to a webhook). Storing it first, in the same database as the cases, means a process killed
in the middle loses nothing: the update is still here, and whichever instance is alive takes it
again when its lease runs out. Rows are claimed by compare-and-set, so two instances never handle
the same update at once, and a repeat delivery of a stored update creates nothing.
"""

from __future__ import annotations

import functools
import json
import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from bot.models import InboxState, InboxUpdate, UTCDateTime, utcnow

logger = logging.getLogger(__name__)

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


def who(payload: Mapping[str, Any]) -> tuple[int | None, int | None]:
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
    *, session: Session, updates: Iterable[Mapping[str, Any]], now: datetime | None = None
) -> list[int]:
    """Store updates not seen before (waiting); returns their ids. Repeats are dropped.

    One transaction for the whole batch: when it commits, every update in it is safe.
    """
    fresh, _ = store_and_claim(session=session, updates=updates, owner=None, now=now)
    return fresh


def store_and_claim(
    *,
    session: Session,
    updates: Iterable[Mapping[str, Any]],
    owner: str | None,
    now: datetime | None = None,
    room: int | None = None,
) -> tuple[list[int], list[Claimed]]:
    """Store updates not seen before and, for ``owner``, take those that may be handled at once
    (first in their chat), in one transaction: one commit (one disk sync) for both.

    ``room``: take at most this many (the instance has no room for more); the rest wait in the
    inbox for whichever instance has room first. Returns the stored ids and what ``owner``
    took. Repeats are dropped.
    """
    now = now or utcnow()
    by_id: dict[int, Mapping[str, Any]] = {}
    for payload in updates:
        update_id = payload.get("update_id")
        if isinstance(update_id, int) and update_id not in by_id:
            by_id[update_id] = payload
    if not by_id:
        return [], []
    seen = set(session.execute(_seen_statement(), {"ids": list(by_id)}).scalars())
    rows: list[dict[str, Any]] = []
    fresh: list[int] = []
    for update_id, payload in by_id.items():
        if update_id in seen:
            continue
        user_id, chat_id = who(payload)
        rows.append(
            {
                "update_id": update_id,
                "user_id": user_id,
                "chat_id": chat_id,
                # ASCII escapes: a lone surrogate in a text must not make the batch unstorable.
                "payload": json.dumps(payload, ensure_ascii=True),
                "state": InboxState.PENDING,
                "attempts": 0,
                "received_at": now,
            }
        )
        fresh.append(update_id)
    if not rows:
        return [], []
    try:
        session.execute(sa.insert(_table()), rows)
        wanted = fresh if room is None else fresh[: max(room, 0)]
        taken = _take(session, wanted, owner, now) if owner is not None else []
        session.commit()
    except IntegrityError:
        # Another instance stored one of them at the same moment: store one by one.
        session.rollback()
        if len(rows) <= 1:
            return [], []
        kept: list[int] = []
        claimed: list[Claimed] = []
        for update_id in fresh:
            one, took = store_and_claim(
                session=session,
                updates=[by_id[update_id]],
                owner=owner,
                now=now,
                room=None if room is None else room - len(claimed),
            )
            kept.extend(one)
            claimed.extend(took)
        return kept, claimed
    return fresh, taken


# --- the statements every update goes through, built once (SQLAlchemy then reuses their cache
# key and compiled form; building and keying them again cost ~1 ms of CPU per update) ---


def _table() -> sa.Table:
    table: sa.Table = InboxUpdate.__table__  # type: ignore[attr-defined]
    return table


def _due_clause(table: sa.Table, now: sa.ColumnElement[Any]) -> sa.ColumnElement[bool]:
    """Waiting (its retry time come), or held by an instance whose lease ran out."""
    return sa.or_(
        sa.and_(
            table.c.state == InboxState.PENDING,
            sa.or_(table.c.available_at.is_(None), table.c.available_at <= now),
        ),
        sa.and_(table.c.state == InboxState.WORKING, table.c.lease_until < now),
    )


def _first_in_chat(table: sa.Table) -> sa.ColumnElement[bool]:
    """No earlier update of the same chat is still waiting or in hand: one member's updates
    are handled one after another, in order, whichever instance holds them."""
    earlier = table.alias("earlier")
    return ~sa.exists().where(
        earlier.c.chat_id == table.c.chat_id,
        earlier.c.update_id < table.c.update_id,
        earlier.c.state.in_((InboxState.PENDING, InboxState.WORKING)),
    )


def _now() -> sa.BindParameter[datetime]:
    return sa.bindparam("now", type_=UTCDateTime())


@functools.cache
def _seen_statement() -> sa.Select[tuple[int]]:
    table = _table()
    return sa.select(table.c.update_id).where(
        table.c.update_id.in_(sa.bindparam("ids", expanding=True))
    )


@functools.cache
def _take_statement() -> sa.Update:
    """Take the updates ``ids`` (where due and first in their chat) for ``taker`` until
    ``lease``; returns what was taken."""
    table = _table()
    return (
        sa.update(table)
        .where(
            table.c.update_id.in_(sa.bindparam("ids", expanding=True)),
            table.c.attempts < MAX_ATTEMPTS,
            _due_clause(table, _now()),
            _first_in_chat(table),
        )
        .values(
            state=InboxState.WORKING,
            owner=sa.bindparam("taker"),
            lease_until=sa.bindparam("lease", type_=UTCDateTime()),
            attempts=table.c.attempts + 1,
        )
        .returning(table.c.update_id, table.c.payload, table.c.attempts)
    )


@functools.cache
def _next_statement() -> sa.Select[tuple[int]]:
    """Each of the chats' ``chats`` first update that is due."""
    table = _table()
    return (
        sa.select(sa.func.min(table.c.update_id))
        .where(
            table.c.chat_id.in_(sa.bindparam("chats", expanding=True)),
            _due_clause(table, _now()),
        )
        .group_by(table.c.chat_id)
    )


@functools.cache
def _finish_statement() -> sa.Update:
    """Handled: the payload forgotten, for the rows ``ids`` still in ``taker``'s hands."""
    table = _table()
    return (
        sa.update(table)
        .where(
            table.c.update_id.in_(sa.bindparam("ids", expanding=True)),
            table.c.state == InboxState.WORKING,
            table.c.owner == sa.bindparam("taker"),
        )
        .values(state=InboxState.DONE, payload="", lease_until=None)
    )


def claim(
    *, session: Session, update_ids: Sequence[int], owner: str, now: datetime | None = None
) -> list[Claimed]:
    """Take these updates for ``owner`` where they are due and first in their chat.

    Compare-and-set: the conditions are in the UPDATE itself, so of two instances trying at
    once only one takes an update.
    """
    taken = _take(session, update_ids, owner, now or utcnow())
    session.commit()
    return taken


def _take(session: Session, update_ids: Sequence[int], owner: str, now: datetime) -> list[Claimed]:
    """``claim`` within the caller's transaction: one statement for the whole batch."""
    if not update_ids:
        return []
    rows = session.execute(
        _take_statement(),
        {"ids": list(update_ids), "now": now, "taker": owner, "lease": now + LEASE},
    ).all()
    taken = [Claimed(row.update_id, json.loads(row.payload or "{}"), row.attempts) for row in rows]
    return sorted(taken, key=lambda claimed: claimed.update_id)


def claim_next(
    *, session: Session, chat_id: int, owner: str, now: datetime | None = None
) -> Claimed | None:
    """The chat's next waiting update, right after the one before it was finished."""
    taken = _take_next(session, [chat_id], owner, now or utcnow())
    session.commit()
    return taken[0] if taken else None


def _take_next(
    session: Session, chat_ids: Iterable[int], owner: str, now: datetime
) -> list[Claimed]:
    """Each chat's first waiting update, taken for ``owner`` (within the caller's transaction)."""
    chats = sorted(set(chat_ids))
    if not chats:
        return []
    following = session.execute(_next_statement(), {"chats": chats, "now": now}).scalars()
    waiting = [update_id for update_id in following if update_id is not None]
    return _take(session, waiting, owner, now)


def claim_due(
    *,
    session: Session,
    owner: str,
    limit: int = 100,
    now: datetime | None = None,
    give_up: bool = True,
) -> list[Claimed]:
    """Take over what waits for a retry, was never taken, or whose instance stopped.

    ``give_up``: first mark what was tried as often as allowed as failed (a write; instances
    looking for work often skip it between their regular rounds).
    """
    now = now or utcnow()
    if give_up:
        # Tried as often as allowed and still not finished (it hangs or kills its instance):
        # given up, so that it cannot take every instance down in turn.
        table = _table()
        given_up = session.execute(
            sa.update(table)
            .where(
                table.c.attempts >= MAX_ATTEMPTS,
                _due_clause(table, sa.literal(now, UTCDateTime())),
            )
            .values(state=InboxState.FAILED, lease_until=None)
        )
        session.commit()
        if given_up.rowcount:  # type: ignore[attr-defined]
            logger.error("%s updates given up after %s attempts", given_up.rowcount, MAX_ATTEMPTS)  # type: ignore[attr-defined]
    if limit <= 0:
        return []
    taken = _take_waiting(session, owner, now, limit)
    session.commit()
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
    finished = _finish(session, list(update_ids), owner)
    session.commit()
    return finished


def finish_and_take_next(
    *,
    session: Session,
    update_ids: Sequence[int],
    chat_ids: Iterable[int],
    owner: str,
    now: datetime | None = None,
    room: int = 0,
) -> list[Claimed]:
    """Finish these updates and take what waited behind them in their chats, in one
    transaction (the chat's next update need not wait for the next recovery round).

    ``room``: how many more the instance can take now; as many of the oldest waiting updates
    of other chats are taken too (left by an instance that had no room when they came).
    """
    now = now or utcnow()
    _finish(session, update_ids, owner)
    taken = _take_next(session, chat_ids, owner, now)
    if room > len(taken):
        taken += _take_waiting(session, owner, now, room - len(taken))
    session.commit()
    return taken


def _take_waiting(session: Session, owner: str, now: datetime, limit: int) -> list[Claimed]:
    """The oldest waiting updates (up to ``limit``) that may be handled now, for ``owner``."""
    waiting = session.execute(_waiting_statement(), {"now": now, "limit": limit}).scalars()
    return _take(session, list(waiting), owner, now)


@functools.cache
def _waiting_statement() -> sa.Select[tuple[int]]:
    table = _table()
    return (
        sa.select(table.c.update_id)
        .where(table.c.attempts < MAX_ATTEMPTS, _due_clause(table, _now()), _first_in_chat(table))
        .order_by(table.c.update_id)
        .limit(sa.bindparam("limit"))
    )


def _finish(session: Session, update_ids: Sequence[int], owner: str) -> int:
    """Handled: forget the payload. Only rows still in ``owner``'s hands."""
    if not update_ids:
        return 0
    result = session.execute(_finish_statement(), {"ids": list(update_ids), "taker": owner})
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
    *,
    session: Session,
    update_id: int,
    retry: bool,
    owner: str | None = None,
    now: datetime | None = None,
) -> bool:
    """Handling raised. Returns whether the update will be tried again by itself.

    From the inbox (``owner``: the instance handling it): tried again later with a growing wait
    when ``retry`` (Telegram or the database away) and attempts are left, else given up — only
    while the row is still that instance's. Handed in directly (no owner): forgotten, so that
    a repeat delivery gets another chance.
    """
    now = now or utcnow()
    if owner is None:
        row = session.get(InboxUpdate, update_id)
        if row is not None and row.state == InboxState.DONE and not row.payload:
            session.delete(row)
            session.commit()
        return False
    row = session.get(InboxUpdate, update_id)
    if row is None:
        return False
    again = retry and row.attempts < MAX_ATTEMPTS
    wait = BACKOFF[min(max(row.attempts, 1), len(BACKOFF)) - 1]
    result = session.execute(
        sa.update(InboxUpdate)
        .where(
            col(InboxUpdate.update_id) == update_id,
            col(InboxUpdate.owner) == owner,
            col(InboxUpdate.state) == InboxState.WORKING,
        )
        .values(
            state=InboxState.PENDING if again else InboxState.FAILED,
            owner=None if again else owner,
            lease_until=None,
            available_at=now + wait if again else None,
        )
        .execution_options(synchronize_session=False)
    )
    session.commit()
    # Given up: the member was told. The update is kept (for the retention period of
    # bookkeeping) so that nothing they sent is lost before someone has looked.
    return again and result.rowcount == 1  # type: ignore[attr-defined]


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
