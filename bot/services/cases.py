"""Cases: created when a question goes to the coordinator, with every message kept."""

from __future__ import annotations

import functools
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm.attributes import set_committed_value
from sqlmodel import Session, col, select

from bot.db import get_row, insert_row
from bot.models import Case, CaseMessage, CaseStatus, Direction, Member, utcnow
from bot.services.office_hours import OfficeHours


def make_reference(case_id: int, created_at: datetime, zone: ZoneInfo) -> str:
    return f"F-{created_at.astimezone(zone).year}-{case_id:04d}"


def create_case(
    *,
    session: Session,
    member_id: int,
    chat_id: int,
    question: str,
    hours: OfficeHours,
    business_days: int,
    department: str | None = None,
    score: float = 0.0,
    reason: str = "",
    question_id: int | None = None,
    source_update_id: int | None = None,
    question_is_new: bool = False,
    now: datetime | None = None,
) -> tuple[Case, bool]:
    """Open a case (committed before returning) and return it with ``True`` when it is new.

    The same Telegram update, or the same routed question, never opens a second case: the
    existing one is returned with ``False``. ``question_is_new``: the question was stored by
    this very handling, so no case can be about it yet (nothing to look for).
    """
    if not question_is_new:
        existing = _existing_case(session, source_update_id, question_id)
        if existing is not None:
            return existing, False
    now = now or utcnow()
    case = Case(
        member_id=member_id,
        chat_id=chat_id,
        question=question,
        department=department,
        score=score,
        reason=reason,
        question_id=question_id,
        source_update_id=source_update_id,
        created_at=now,
        updated_at=now,
        due_at=hours.deadline(now, business_days),
    )
    try:
        case_id = insert_row(session, case)
    except IntegrityError:
        # Another delivery of the same update won the race; use its case.
        session.rollback()
        existing = _existing_case(session, source_update_id, question_id)
        if existing is None:
            raise
        return existing, False
    reference = make_reference(case_id, now, hours.zone)
    session.connection().execute(
        _set_statement("reference"), {"case": case_id, "value": reference}
    )
    set_committed_value(case, "reference", reference)
    insert_row(
        session,
        CaseMessage(
            case_id=case_id,
            direction=Direction.FROM_MEMBER,
            text=question,
            update_id=source_update_id,
            created_at=now,
        ),
    )
    session.commit()
    return case, True


def _existing_case(
    session: Session, source_update_id: int | None, question_id: int | None
) -> Case | None:
    if source_update_id is not None:
        found = session.exec(select(Case).where(Case.source_update_id == source_update_id)).first()
        if found is not None:
            return found
    if question_id is not None:
        return session.exec(select(Case).where(Case.question_id == question_id)).first()
    return None


def add_message(
    *,
    session: Session,
    case: Case,
    direction: Direction,
    text: str,
    telegram_message_id: int | None = None,
    attachment_file_id: str | None = None,
    attachment_name: str | None = None,
    update_id: int | None = None,
    now: datetime | None = None,
) -> CaseMessage:
    now = now or utcnow()
    assert case.id is not None
    message = CaseMessage(
        case_id=case.id,
        direction=direction,
        text=text,
        telegram_message_id=telegram_message_id,
        attachment_file_id=attachment_file_id,
        attachment_name=attachment_name,
        update_id=update_id,
        created_at=now,
    )
    case.updated_at = now
    session.add(case)
    try:
        insert_row(session, message)
        session.commit()
    except IntegrityError:
        # The same update handled at the same moment elsewhere: its message is the one.
        session.rollback()
        if update_id is None:
            raise
        return session.exec(select(CaseMessage).where(CaseMessage.update_id == update_id)).one()
    return message


def message_of_update(*, session: Session, update_id: int) -> CaseMessage | None:
    """The case message an update already left (when it is handled again)."""
    return session.exec(select(CaseMessage).where(CaseMessage.update_id == update_id)).first()


def record_confirmation(
    *, session: Session, case: Case, message_id: int, text: str, now: datetime | None = None
) -> None:
    """Keep the confirmation the member got, so that a reply to it joins the case."""
    assert case.id is not None
    session.connection().execute(
        _set_statement("confirmation_message_id"), {"case": case.id, "value": message_id}
    )
    insert_row(
        session,
        CaseMessage(
            case_id=case.id,
            direction=Direction.TO_MEMBER,
            text=text,
            telegram_message_id=message_id,
            created_at=now or utcnow(),
        ),
    )
    session.commit()
    set_committed_value(case, "confirmation_message_id", message_id)


@functools.cache
def _set_statement(column: str) -> sa.Update:
    """``UPDATE case SET <column> = :value WHERE id = :case``, built once per column."""
    table: sa.Table = Case.__table__  # type: ignore[attr-defined]
    return (
        sa.update(table)
        .where(table.c.id == sa.bindparam("case"))
        .values({column: sa.bindparam("value")})
    )


def open_case_of(*, session: Session, member_id: int) -> Case | None:
    """The member's most recent case that is not closed."""
    return session.exec(
        select(Case)
        .where(Case.member_id == member_id, Case.status != CaseStatus.CLOSED)
        .order_by(col(Case.created_at).desc(), col(Case.id).desc())
    ).first()


def open_or_recently_closed(
    *, session: Session, member_id: int, since: datetime
) -> tuple[Case | None, Case | None]:
    """The member's most recent case that is not closed, and the one closed latest after
    ``since`` (it can still be reopened).

    Asked for nearly every message, and most members have no such case: one statement built
    once finds which (if any), and only those are loaded as cases.
    """
    found = (
        session.connection()
        .execute(_open_or_recent_statement(), {"member": member_id, "since": since})
        .all()
    )
    if not found:
        return None, None
    open_rows = [row for row in found if row.status != CaseStatus.CLOSED]
    closed_rows = [row for row in found if row.status == CaseStatus.CLOSED]
    newest_open = max(open_rows, key=lambda row: (row.created_at, row.id), default=None)
    latest_closed = max(closed_rows, key=lambda row: row.closed_at or since, default=None)
    return (
        None if newest_open is None else get_row(session, Case, newest_open.id),
        None if latest_closed is None else get_row(session, Case, latest_closed.id),
    )


@functools.cache
def _open_or_recent_statement() -> sa.Select[Any]:
    table: sa.Table = Case.__table__  # type: ignore[attr-defined]
    return sa.select(table.c.id, table.c.status, table.c.created_at, table.c.closed_at).where(
        table.c.member_id == sa.bindparam("member"),
        sa.or_(
            table.c.status != CaseStatus.CLOSED,
            table.c.closed_at >= sa.bindparam("since", type_=table.c.closed_at.type),
        ),
    )


def recently_closed_case_of(*, session: Session, member_id: int, since: datetime) -> Case | None:
    """The member's case closed after ``since`` (it can still be reopened)."""
    return session.exec(
        select(Case)
        .where(
            Case.member_id == member_id,
            Case.status == CaseStatus.CLOSED,
            col(Case.closed_at) >= since,
        )
        .order_by(col(Case.closed_at).desc())
    ).first()


def cases_of(*, session: Session, member_id: int, limit: int = 10) -> list[Case]:
    return list(
        session.exec(
            select(Case)
            .where(Case.member_id == member_id)
            .order_by(col(Case.created_at).desc(), col(Case.id).desc())
            .limit(limit)
        )
    )


def case_of_message(*, session: Session, member_id: int, message_id: int) -> Case | None:
    """The member's case in which the bot sent message ``message_id``."""
    return session.exec(
        select(Case)
        .join(CaseMessage, col(CaseMessage.case_id) == col(Case.id))
        .where(
            Case.member_id == member_id,
            CaseMessage.direction == Direction.TO_MEMBER,
            CaseMessage.telegram_message_id == message_id,
        )
    ).first()


def last_outgoing_at(*, session: Session, case_id: int) -> datetime | None:
    """When the bot last said something to the member in the case."""
    message = session.exec(
        select(CaseMessage)
        .where(CaseMessage.case_id == case_id, CaseMessage.direction == Direction.TO_MEMBER)
        .order_by(col(CaseMessage.created_at).desc())
    ).first()
    return message.created_at if message else None


def member_of(*, session: Session, case: Case) -> Member | None:
    return session.get(Member, case.member_id)
