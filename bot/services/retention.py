"""Retention: what is due is removed each night, and what was removed is recorded."""

from __future__ import annotations

import json
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlmodel import Session, col, select

from bot.models import (
    Case,
    CaseMessage,
    DeskMessage,
    ExampleQuestion,
    Feedback,
    InboxState,
    InboxUpdate,
    OutboxMessage,
    OutboxStatus,
    PendingMessage,
    Question,
    ReminderSent,
    RetentionRun,
)

# Bookkeeping without personal content is kept this long.
_UPDATE_IDS = timedelta(days=7)
_OUTBOX = timedelta(days=90)


def run(*, session: Session, now: datetime, question_days: int, case_days: int) -> dict[str, int]:
    """Remove what is past its retention date; record and return the counts."""
    removed: dict[str, int] = {}

    def count(label: str, result: sa.engine.Result[object]) -> None:
        removed[label] = removed.get(label, 0) + int(result.rowcount)  # type: ignore[attr-defined]

    # Cases past retention: the city's retention decision allows destroying them.
    # Only closed cases: an open one is still being worked, whatever its age.
    old_cases = [
        c.id
        for c in session.exec(
            select(Case).where(
                Case.created_at < now - timedelta(days=case_days),
                col(Case.closed_at).is_not(None),
            )
        )
    ]
    if old_cases:
        for table in (CaseMessage, DeskMessage, ReminderSent):
            count(
                "case messages" if table is CaseMessage else "case bookkeeping",
                session.execute(sa.delete(table).where(col(table.case_id).in_(old_cases))),
            )
        session.execute(
            sa.update(ExampleQuestion)
            .where(col(ExampleQuestion.case_id).in_(old_cases))
            .values(case_id=None)
        )
        count("cases", session.execute(sa.delete(Case).where(col(Case.id).in_(old_cases))))
    # Questions answered without a person (not part of any case) and their feedback.
    in_cases = select(Case.question_id).where(col(Case.question_id).is_not(None))
    due_questions = select(Question.id).where(
        Question.created_at < now - timedelta(days=question_days),
        col(Question.id).not_in(in_cases),
    )
    count(
        "feedback",
        session.execute(sa.delete(Feedback).where(col(Feedback.question_id).in_(due_questions))),
    )
    count(
        "questions",
        session.execute(sa.delete(Question).where(col(Question.id).in_(due_questions))),
    )
    count(
        "pending messages",
        session.execute(
            sa.delete(PendingMessage).where(
                col(PendingMessage.created_at) < now - timedelta(days=question_days)
            )
        ),
    )
    count(
        "processed update ids",
        session.execute(
            sa.delete(InboxUpdate).where(
                col(InboxUpdate.state).in_((InboxState.DONE, InboxState.FAILED)),
                col(InboxUpdate.received_at) < now - _UPDATE_IDS,
            )
        ),
    )
    count(
        "sent announcements",
        session.execute(
            sa.delete(OutboxMessage).where(
                col(OutboxMessage.status) != OutboxStatus.PENDING,
                col(OutboxMessage.next_attempt_at) < now - _OUTBOX,
            )
        ),
    )
    session.add(RetentionRun(ran_at=now, removed=json.dumps(removed)))
    session.commit()
    return removed
