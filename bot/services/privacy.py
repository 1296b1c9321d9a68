"""A member's personal data: everything stored about them (/mydata), and forgetting (/forget).

Questions the bot answered, feedback, subscriptions and the profile are deleted. Cases the city
handled are public records (allmänna handlingar) that may only be destroyed under a retention
decision: they are detached from the member's Telegram identity, marked restricted, and kept
until their retention date.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlmodel import Session, col, select

from bot.models import (
    Association,
    AssociationMember,
    Case,
    CaseMessage,
    ConversationState,
    EventSignup,
    Feedback,
    InboxState,
    InboxUpdate,
    Member,
    OutboxMessage,
    OutboxStatus,
    PendingMessage,
    Question,
    Subscription,
    utcnow,
)

# Records kept after /forget point here instead of at the member.
FORGOTTEN_MEMBER_ID = 0


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment else None


def export_member(*, session: Session, member_id: int) -> dict[str, Any]:
    """Everything stored about the member, as one JSON-ready document."""
    member = session.get(Member, member_id)
    cases = list(session.exec(select(Case).where(Case.member_id == member_id)))
    links = list(
        session.exec(select(AssociationMember).where(AssociationMember.member_id == member_id))
    )
    return {
        "profile": None
        if member is None
        else {
            "telegram_id": member.id,
            "first_name": member.first_name,
            "language": member.language,
            "language_source": member.language_source,
            "unreachable": member.unreachable,
            "first_contact": _iso(member.created_at),
            "last_seen": _iso(member.last_seen_at),
        },
        "associations": [
            {
                "association": (
                    a.name if (a := session.get(Association, link.association_id)) else None
                ),
                "role": link.role,
                "approved": link.approved,
            }
            for link in links
        ],
        "cases": [
            {
                "reference": case.reference,
                "status": case.status.value,
                "question": case.question,
                "created": _iso(case.created_at),
                "department": case.handed_to or case.department,
                "rating": case.rating,
                "messages": [
                    {
                        "direction": m.direction.value,
                        "text": m.text,
                        "file": m.attachment_name,
                        "at": _iso(m.created_at),
                    }
                    for m in session.exec(
                        select(CaseMessage)
                        .where(CaseMessage.case_id == case.id)
                        .order_by(col(CaseMessage.id))
                    )
                    if m.direction.value != "internal"
                ],
            }
            for case in cases
        ],
        "questions": [
            {
                "text": q.text,
                "answer": q.action,
                "department": q.department,
                "at": _iso(q.created_at),
            }
            for q in session.exec(select(Question).where(Question.member_id == member_id))
        ],
        "feedback": [
            {"kind": f.kind.value, "department": f.department, "at": _iso(f.created_at)}
            for f in session.exec(select(Feedback).where(Feedback.member_id == member_id))
        ],
        "subscriptions": sorted(
            s.topic
            for s in session.exec(select(Subscription).where(Subscription.member_id == member_id))
        ),
        "event_signups": [
            s.event_id
            for s in session.exec(select(EventSignup).where(EventSignup.member_id == member_id))
        ],
    }


@dataclass
class ForgetReport:
    deleted: dict[str, int] = field(default_factory=dict)
    kept_cases: list[tuple[str, datetime]] = field(default_factory=list)


def _forgotten_member(session: Session) -> None:
    if session.get(Member, FORGOTTEN_MEMBER_ID) is None:
        session.add(Member(id=FORGOTTEN_MEMBER_ID, first_name="", language="sv"))
        session.flush()


def forget_member(
    *, session: Session, member_id: int, retention_days: int, now: datetime | None = None
) -> ForgetReport:
    """Delete the member's operational data; keep public records detached and restricted."""
    now = now or utcnow()
    report = ForgetReport()
    _forgotten_member(session)
    case_questions: set[int] = set()
    for case in session.exec(select(Case).where(Case.member_id == member_id)):
        case.member_id = FORGOTTEN_MEMBER_ID
        case.chat_id = FORGOTTEN_MEMBER_ID
        case.restricted = True
        session.add(case)
        if case.question_id is not None:
            case_questions.add(case.question_id)
        report.kept_cases.append(
            (case.reference or "", case.created_at + timedelta(days=retention_days))
        )

    def delete(rows: list[Any], label: str) -> None:
        for row in rows:
            session.delete(row)
        report.deleted[label] = len(rows)

    questions = list(session.exec(select(Question).where(Question.member_id == member_id)))
    answered = [q for q in questions if q.id not in case_questions]
    for kept in (q for q in questions if q.id in case_questions):
        kept.member_id = FORGOTTEN_MEMBER_ID
        session.add(kept)
    answered_ids = {q.id for q in answered}
    delete(
        list(session.exec(select(Feedback).where(col(Feedback.member_id) == member_id))),
        "feedback",
    )
    for feedback in session.exec(
        select(Feedback).where(col(Feedback.question_id).in_(case_questions))
    ):
        feedback.member_id = FORGOTTEN_MEMBER_ID
        session.add(feedback)
    session.flush()
    delete([q for q in answered if q.id in answered_ids], "questions")
    delete(
        list(session.exec(select(PendingMessage).where(PendingMessage.member_id == member_id))),
        "pending messages",
    )
    delete(
        list(session.exec(select(Subscription).where(Subscription.member_id == member_id))),
        "subscriptions",
    )
    # What came in from them (the one being handled now finishes and is emptied as usual).
    delete(
        list(
            session.exec(
                select(InboxUpdate).where(
                    InboxUpdate.user_id == member_id, InboxUpdate.state != InboxState.WORKING
                )
            )
        ),
        "incoming messages",
    )
    delete(
        list(session.exec(select(EventSignup).where(EventSignup.member_id == member_id))),
        "event sign-ups",
    )
    delete(
        list(
            session.exec(select(AssociationMember).where(AssociationMember.member_id == member_id))
        ),
        "association links",
    )
    delete(
        list(
            session.exec(
                select(OutboxMessage).where(
                    OutboxMessage.chat_id == member_id,
                    OutboxMessage.status == OutboxStatus.PENDING,
                )
            )
        ),
        "queued messages",
    )
    state = session.get(ConversationState, member_id)
    if state is not None:
        session.delete(state)
    for association in session.exec(
        select(Association).where(Association.contact_member_id == member_id)
    ):
        association.contact_member_id = FORGOTTEN_MEMBER_ID  # the entry stays; its contact goes
        session.add(association)
    session.flush()
    member = session.get(Member, member_id)
    if member is not None:
        session.delete(member)
        report.deleted["profile"] = 1
    session.commit()
    return report
