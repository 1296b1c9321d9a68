"""The coordinator's desk: claiming, replying, handing over, closing, reminders and statistics.

Plain functions over the database; the Telegram side lives in ``handlers/desk.py``.
"""

from __future__ import annotations

import statistics
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from bot.models import (
    Case,
    CaseMessage,
    CaseStatus,
    DeskMessage,
    DigestSent,
    Direction,
    Feedback,
    FeedbackKind,
    Member,
    Question,
    ReminderSent,
    utcnow,
)
from bot.services.members import one_line
from bot.services.office_hours import OfficeHours


class DeskRefused(Exception):
    """A desk action that cannot be done; ``reason`` picks the text, ``who`` names the holder."""

    def __init__(self, reason: str, who: str = "") -> None:
        self.reason = reason
        self.who = who
        super().__init__(reason)


def get_case(*, session: Session, case_id: int) -> Case:
    case = session.get(Case, case_id)
    if case is None:
        raise DeskRefused("unknown_case")
    session.refresh(case)
    return case


def find_case(*, session: Session, reference: str) -> Case | None:
    reference = reference.strip().upper()
    return session.exec(select(Case).where(Case.reference == reference)).first()


def attach_to_desk(
    *, session: Session, case_id: int, chat_id: int, thread_id: int | None, card_message_id: int
) -> Case:
    case = get_case(session=session, case_id=case_id)
    case.desk_chat_id = chat_id
    case.desk_thread_id = thread_id
    case.card_message_id = card_message_id
    session.add(case)
    session.add(DeskMessage(case_id=case_id, chat_id=chat_id, message_id=card_message_id))
    session.commit()
    return case


def record_desk_message(*, session: Session, case_id: int, chat_id: int, message_id: int) -> None:
    session.add(DeskMessage(case_id=case_id, chat_id=chat_id, message_id=message_id))
    try:
        session.commit()
    except IntegrityError:
        session.rollback()


def case_on_desk(
    *, session: Session, chat_id: int, thread_id: int | None, reply_to_message_id: int | None
) -> Case | None:
    """The case a desk message is about: its topic, or the case message it replies to."""
    if thread_id is not None:
        case = session.exec(
            select(Case).where(Case.desk_chat_id == chat_id, Case.desk_thread_id == thread_id)
        ).first()
        if case is not None:
            return case
    if reply_to_message_id is not None:
        link = session.exec(
            select(DeskMessage).where(
                DeskMessage.chat_id == chat_id, DeskMessage.message_id == reply_to_message_id
            )
        ).first()
        if link is not None:
            return session.get(Case, link.case_id)
    return None


# An announcement that has not finished in this time is taken to have failed.
ANNOUNCE_TIMEOUT = timedelta(minutes=5)


def begin_announcement(*, session: Session, case_id: int, now: datetime) -> bool:
    """Take the right to post the case on the desk (compare-and-set); ``False`` if taken."""
    result = session.execute(
        sa.update(Case)
        .where(
            col(Case.id) == case_id,
            col(Case.desk_chat_id).is_(None),
            sa.or_(
                col(Case.announcing_since).is_(None),
                col(Case.announcing_since) < now - ANNOUNCE_TIMEOUT,
            ),
        )
        .values(announcing_since=now)
    )
    session.commit()
    return bool(result.rowcount == 1)  # type: ignore[attr-defined]


def abort_announcement(*, session: Session, case_id: int) -> None:
    session.execute(sa.update(Case).where(col(Case.id) == case_id).values(announcing_since=None))
    session.commit()


def unannounced_cases(*, session: Session, now: datetime) -> list[Case]:
    """Cases not on the desk (the coordinator chat was down when they were opened)."""
    return list(
        session.exec(
            select(Case)
            .where(
                col(Case.desk_chat_id).is_(None),
                Case.status != CaseStatus.CLOSED,
                sa.or_(
                    col(Case.announcing_since).is_(None),
                    col(Case.announcing_since) < now - ANNOUNCE_TIMEOUT,
                ),
            )
            .order_by(col(Case.id))
        )
    )


def claim_case(
    *, session: Session, case_id: int, coordinator_id: int, name: str, now: datetime | None = None
) -> Case:
    """Claim atomically: one UPDATE that succeeds only while nobody holds the case.

    Two coordinators pressing at once send two such statements; the database applies them one
    after the other and the second matches no row. No lock in memory is involved, so it holds
    across processes and on SQLite and PostgreSQL alike.
    """
    now = now or utcnow()
    result = session.execute(
        sa.update(Case)
        .where(
            col(Case.id) == case_id,
            col(Case.claimed_by).is_(None),
            col(Case.status) != CaseStatus.CLOSED,
        )
        .values(
            claimed_by=coordinator_id,
            claimed_by_name=one_line(name or ""),
            claimed_at=now,
            updated_at=now,
            status=sa.case(
                (
                    col(Case.status) == CaseStatus.OPEN,
                    sa.literal(CaseStatus.CLAIMED, type_=Case.__table__.c.status.type),  # type: ignore[attr-defined]
                ),
                else_=col(Case.status),
            ),
        )
    )
    session.commit()
    case = get_case(session=session, case_id=case_id)
    if result.rowcount == 1:  # type: ignore[attr-defined]
        return case
    if case.status == CaseStatus.CLOSED:
        raise DeskRefused("closed")
    if case.claimed_by == coordinator_id:
        raise DeskRefused("already_yours")
    raise DeskRefused("claimed", who=case.claimed_by_name or str(case.claimed_by))


def record_reply(
    *,
    session: Session,
    case_id: int,
    coordinator_id: int,
    name: str,
    text: str,
    internal: bool,
    telegram_message_id: int | None = None,
    update_id: int | None = None,
    now: datetime | None = None,
) -> tuple[Case, CaseMessage]:
    """A coordinator's message on the case: relayed to the member unless ``internal``."""
    now = now or utcnow()
    case = get_case(session=session, case_id=case_id)
    if case.status == CaseStatus.CLOSED:
        raise DeskRefused("closed")
    if not internal and case.claimed_by is None:
        try:  # answering a case is taking it
            case = claim_case(
                session=session, case_id=case_id, coordinator_id=coordinator_id, name=name, now=now
            )
        except DeskRefused:
            case = get_case(session=session, case_id=case_id)
    message = CaseMessage(
        case_id=case_id,
        direction=Direction.INTERNAL if internal else Direction.TO_MEMBER,
        text=text,
        author_id=coordinator_id,
        telegram_message_id=telegram_message_id,
        update_id=update_id,
        created_at=now,
    )
    session.add(message)
    if not internal and case.first_response_at is None:
        case.first_response_at = now
    case.updated_at = now
    session.add(case)
    session.commit()
    return case, message


def link_delivered(*, session: Session, case_message_id: int, telegram_message_id: int) -> None:
    """The id the member's copy got, so that the member's reply to it finds the case."""
    message = session.get(CaseMessage, case_message_id)
    if message is not None:
        message.telegram_message_id = telegram_message_id
        session.add(message)
        session.commit()


def hand_over(
    *,
    session: Session,
    case_id: int,
    department_id: str,
    coordinator_id: int,
    now: datetime | None = None,
) -> Case:
    now = now or utcnow()
    case = get_case(session=session, case_id=case_id)
    if case.status == CaseStatus.CLOSED:
        raise DeskRefused("closed")
    case.handed_to = department_id
    case.handed_at = now
    case.status = CaseStatus.HANDED_OVER
    if case.claimed_by is None:
        case.claimed_by = coordinator_id
        case.claimed_at = now
    if case.first_response_at is None:  # the member is told who owns it: a response
        case.first_response_at = now
    case.updated_at = now
    session.add(case)
    session.add(
        CaseMessage(
            case_id=case_id,
            direction=Direction.INTERNAL,
            author_id=coordinator_id,
            text=f"handed over to {department_id}",
            created_at=now,
        )
    )
    session.commit()
    return case


def close_case(
    *,
    session: Session,
    case_id: int,
    coordinator_id: int,
    note: str | None = None,
    now: datetime | None = None,
    name: str = "",
) -> Case:
    """Close atomically: two coordinators (or instances) closing at once close it once."""
    now = now or utcnow()
    result = session.execute(
        sa.update(Case)
        .where(col(Case.id) == case_id, col(Case.status) != CaseStatus.CLOSED)
        .values(
            status=CaseStatus.CLOSED,
            closed_at=now,
            closing_note=(note or "").strip() or None,
            updated_at=now,
        )
    )
    session.commit()
    case = get_case(session=session, case_id=case_id)
    if result.rowcount != 1:  # type: ignore[attr-defined]
        raise DeskRefused("closed")
    if case.claimed_by is None:
        # PTB's full_name is None for a user without a first name, whatever its type says.
        case.claimed_by, case.claimed_by_name = coordinator_id, one_line(name or "")
        case.claimed_at = now
        session.add(case)
        session.commit()
    return case


def rate_case(*, session: Session, case_id: int, member_id: int, rating: int) -> Case:
    case = session.get(Case, case_id)
    if case is None:
        raise DeskRefused("unknown_case")
    if case.member_id != member_id:
        raise DeskRefused("not_yours")
    if not 1 <= rating <= 5 or case.status != CaseStatus.CLOSED:
        raise DeskRefused("stale")
    if case.rating is not None:
        raise DeskRefused("already_rated")
    case.rating = rating
    case.rated_at = utcnow()
    session.add(case)
    session.commit()
    return case


def reopen_case(
    *, session: Session, case: Case, hours: OfficeHours, business_days: int, now: datetime
) -> Case:
    """The member wrote again soon after closing: the case is open again with a new deadline."""
    case.status = CaseStatus.CLAIMED if case.claimed_by is not None else CaseStatus.OPEN
    case.closed_at = None
    case.reopened_count += 1
    case.due_at = hours.deadline(now, business_days)
    case.first_response_at = None
    case.rating = None
    case.updated_at = now
    session.add(case)
    session.commit()
    return case


def mark_member_blocked(*, session: Session, case_id: int) -> Case:
    case = get_case(session=session, case_id=case_id)
    case.member_blocked = True
    session.add(case)
    member = session.get(Member, case.member_id)
    if member is not None:
        member.unreachable = True
        session.add(member)
    session.commit()
    return case


def open_cases(*, session: Session) -> list[Case]:
    """Cases not closed, oldest first."""
    return list(
        session.exec(
            select(Case)
            .where(Case.status != CaseStatus.CLOSED)
            .order_by(col(Case.created_at), col(Case.id))
        )
    )


def cases_of_coordinator(*, session: Session, coordinator_id: int) -> list[Case]:
    return [c for c in open_cases(session=session) if c.claimed_by == coordinator_id]


# -- deadlines --------------------------------------------------------------------------------

DUE_SOON = "due_soon"
OVERDUE = "overdue"


def deadline_state(case: Case, now: datetime, hours: OfficeHours, before_hours: float) -> str:
    """``answered``, ``ok``, ``due_soon`` or ``overdue`` for the first response."""
    if case.first_response_at is not None:
        return "answered"
    if now >= case.due_at:
        return OVERDUE
    if hours.business_hours_between(now, case.due_at) <= before_hours:
        return DUE_SOON
    return "ok"


def reminders_due(
    *, session: Session, now: datetime, hours: OfficeHours, before_hours: float
) -> list[tuple[Case, str]]:
    """Open, unanswered cases that need a reminder at a level not sent before."""
    sent = {(r.case_id, r.level) for r in session.exec(select(ReminderSent))}
    due = []
    for case in open_cases(session=session):
        state = deadline_state(case, now, hours, before_hours)
        if state in (DUE_SOON, OVERDUE) and (case.id, state) not in sent:
            due.append((case, state))
    return due


def claim_reminder(*, session: Session, case_id: int, level: str) -> bool:
    """Record that a reminder goes out; ``False`` if it went out before (here or elsewhere)."""
    session.add(ReminderSent(case_id=case_id, level=level))
    try:
        session.commit()
    except IntegrityError:
        session.rollback()
        return False
    return True


def claim_digest(*, session: Session, day: str) -> bool:
    session.add(DigestSent(day=day))
    try:
        session.commit()
    except IntegrityError:
        session.rollback()
        return False
    return True


# -- statistics -------------------------------------------------------------------------------


@dataclass
class DeskStats:
    since: datetime
    until: datetime
    cases: int = 0
    by_department: Counter[str] = field(default_factory=Counter)
    by_status: Counter[str] = field(default_factory=Counter)
    median_first_response_hours: float | None = None
    median_close_hours: float | None = None
    questions: int = 0
    resolved_without_person: float | None = None
    helpful: int = 0
    not_helpful: int = 0
    ratings: list[int] = field(default_factory=list)

    @property
    def mean_rating(self) -> float | None:
        return statistics.fmean(self.ratings) if self.ratings else None


def desk_stats(
    *, session: Session, since: datetime, until: datetime, hours: OfficeHours
) -> DeskStats:
    """Cases and questions received in ``[since, until)``; times in office hours."""
    result = DeskStats(since=since, until=until)
    cases = list(
        session.exec(select(Case).where(Case.created_at >= since, Case.created_at < until))
    )
    result.cases = len(cases)
    first, close = [], []
    for case in cases:
        result.by_department[case.handed_to or case.department or "—"] += 1
        result.by_status[case.status.value] += 1
        if case.first_response_at is not None:
            first.append(hours.business_hours_between(case.created_at, case.first_response_at))
        if case.closed_at is not None:
            close.append(hours.business_hours_between(case.created_at, case.closed_at))
        if case.rating is not None:
            result.ratings.append(case.rating)
    result.median_first_response_hours = statistics.median(first) if first else None
    result.median_close_hours = statistics.median(close) if close else None
    questions = list(
        session.exec(
            select(Question).where(Question.created_at >= since, Question.created_at < until)
        )
    )
    result.questions = len(questions)
    escalated = {c.question_id for c in cases if c.question_id is not None}
    if questions:
        without = sum(1 for q in questions if q.action != "escalate" and q.id not in escalated)
        result.resolved_without_person = without / len(questions)
    for feedback in session.exec(
        select(Feedback).where(Feedback.created_at >= since, Feedback.created_at < until)
    ):
        if feedback.kind == FeedbackKind.HELPFUL:
            result.helpful += 1
        elif feedback.kind == FeedbackKind.NOT_HELPFUL:
            result.not_helpful += 1
    return result


def parse_period(text: str, now: datetime) -> tuple[datetime, datetime] | None:
    """``7d``, ``30d``, ``12w``, ``all`` (default 30 days); ``None`` when not understood."""
    value = text.strip().lower() or "30d"
    if value in ("all", "allt"):
        return datetime(2000, 1, 1, tzinfo=now.tzinfo), now + timedelta(seconds=1)
    units = {"d": 1, "w": 7, "v": 7}
    if len(value) >= 2 and value[:-1].isdigit() and value[-1] in units:
        days = int(value[:-1]) * units[value[-1]]
        if 0 < days <= 3660:
            return now - timedelta(days=days), now + timedelta(seconds=1)
    return None
