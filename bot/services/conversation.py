"""The member's conversation: what happens to a message, a button press or a document.

Every function here takes plain values and a session and returns an outcome the handlers turn
into text; none of them sees Telegram's ``Update``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from sqlmodel import Session, select

from bot.models import (
    Case,
    CaseStatus,
    Direction,
    Feedback,
    FeedbackKind,
    PendingMessage,
    Question,
    utcnow,
)
from bot.services import cases as case_service
from bot.services.desk import reopen_case
from bot.services.office_hours import OfficeHours
from knowledge.articles import Article
from knowledge.loading import Routing
from knowledge.router import Decision
from knowledge.rules import Department

# Questions longer than this are cut before routing and storing; Telegram allows 4,096.
MAX_QUESTION_CHARS = 4096


class ButtonRefused(Exception):
    """A button press that cannot be honoured; ``reason`` picks the text the member sees."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


@dataclass(frozen=True)
class ConversationPolicy:
    hours: OfficeHours
    business_days: int
    follow_up_minutes: int
    reopen_days: int = 14

    @property
    def zone(self) -> ZoneInfo:
        return self.hours.zone


@dataclass(frozen=True)
class Answered:
    question: Question
    department: Department
    article: Article | None


@dataclass(frozen=True)
class Clarify:
    question: Question
    departments: tuple[Department, ...]


@dataclass(frozen=True)
class Escalated:
    case: Case
    new: bool


@dataclass(frozen=True)
class AddedToCase:
    case: Case
    text: str
    reopened: bool = False


@dataclass(frozen=True)
class AskWhichCase:
    pending: PendingMessage
    case: Case


@dataclass(frozen=True)
class AlreadyDone:
    """A button pressed again: nothing new happens."""


Outcome = Answered | Clarify | Escalated | AddedToCase | AskWhichCase | AlreadyDone


def receive_text(
    *,
    session: Session,
    routing: Routing,
    policy: ConversationPolicy,
    member_id: int,
    chat_id: int,
    text: str,
    language: str,
    reply_to_message_id: int | None = None,
    update_id: int | None = None,
    now: datetime | None = None,
) -> Outcome:
    """A member wrote ``text``: join it to their open case, ask which, or route it."""
    now = now or utcnow()
    text = text[:MAX_QUESTION_CHARS]
    open_case = case_service.open_case_of(session=session, member_id=member_id)
    if open_case is not None and open_case.id is not None:
        replied_to_case = reply_to_message_id is not None and (
            reply_to_message_id == open_case.confirmation_message_id
            or reply_to_message_id
            in case_service.outgoing_message_ids(session=session, case_id=open_case.id)
        )
        just_after = now - open_case.updated_at <= timedelta(minutes=policy.follow_up_minutes)
        if replied_to_case or (just_after and reply_to_message_id is None):
            case_service.add_message(
                session=session,
                case=open_case,
                direction=Direction.FROM_MEMBER,
                text=text,
                now=now,
            )
            return AddedToCase(open_case, text)
        return _ask_which(session, member_id, open_case, chat_id, text, now)
    closed = case_service.recently_closed_case_of(
        session=session, member_id=member_id, since=now - timedelta(days=policy.reopen_days)
    )
    if closed is not None and closed.id is not None:
        replied_to_case = reply_to_message_id is not None and (
            reply_to_message_id
            in case_service.outgoing_message_ids(session=session, case_id=closed.id)
        )
        if replied_to_case:
            return _reopen_with(session, policy, closed, text, now)
        return _ask_which(session, member_id, closed, chat_id, text, now)
    return route_question(
        session=session,
        routing=routing,
        policy=policy,
        member_id=member_id,
        chat_id=chat_id,
        text=text,
        language=language,
        update_id=update_id,
        now=now,
    )


def _ask_which(
    session: Session, member_id: int, case: Case, chat_id: int, text: str, now: datetime
) -> AskWhichCase:
    assert case.id is not None
    pending = PendingMessage(
        member_id=member_id, case_id=case.id, chat_id=chat_id, text=text, created_at=now
    )
    session.add(pending)
    session.commit()
    return AskWhichCase(pending, case)


def _reopen_with(
    session: Session, policy: ConversationPolicy, case: Case, text: str, now: datetime
) -> AddedToCase:
    reopen_case(
        session=session, case=case, hours=policy.hours, business_days=policy.business_days, now=now
    )
    case_service.add_message(
        session=session, case=case, direction=Direction.FROM_MEMBER, text=text, now=now
    )
    return AddedToCase(case, text, reopened=True)


def route_question(
    *,
    session: Session,
    routing: Routing,
    policy: ConversationPolicy,
    member_id: int,
    chat_id: int,
    text: str,
    language: str,
    update_id: int | None = None,
    now: datetime | None = None,
) -> Answered | Clarify | Escalated:
    now = now or utcnow()
    decision = routing.router.route(text)
    question = _record_question(session, member_id, text, decision, routing, now)
    if decision.action == "escalate":
        case, new = case_service.create_case(
            session=session,
            member_id=member_id,
            chat_id=chat_id,
            question=text,
            hours=policy.hours,
            business_days=policy.business_days,
            department=decision.candidates[0].department if decision.candidates else None,
            score=decision.score,
            reason=decision.reason,
            question_id=question.id,
            source_update_id=update_id,
            now=now,
        )
        return Escalated(case, new)
    departments = routing.table.department_by_id
    if decision.action == "answer" and decision.department is not None:
        article = routing.knowledge.get(decision.article, language) if decision.article else None
        return Answered(question, departments[decision.department], article)
    return Clarify(
        question,
        tuple(
            departments[c.department] for c in decision.candidates if c.department in departments
        ),
    )


def _record_question(
    session: Session,
    member_id: int,
    text: str,
    decision: Decision,
    routing: Routing,
    now: datetime,
) -> Question:
    rules = {rule.id: rule for rule in routing.table.rules}
    candidates = [
        {
            "department": c.department,
            "rule": c.rule,
            "article": rules[c.rule].article if c.rule in rules else None,
        }
        for c in decision.candidates
    ]
    question = Question(
        member_id=member_id,
        text=text,
        action=decision.action,
        department=decision.department,
        score=decision.score,
        rule=decision.rule,
        article=decision.article,
        candidates=json.dumps(candidates, ensure_ascii=False),
        created_at=now,
    )
    session.add(question)
    session.commit()
    return question


def _own_question(session: Session, question_id: int, member_id: int) -> Question:
    question = session.get(Question, question_id)
    if question is None:
        raise ButtonRefused("stale")
    if question.member_id != member_id:
        raise ButtonRefused("not_yours")
    return question


def _feedback_given(session: Session, question_id: int) -> bool:
    return (
        session.exec(select(Feedback).where(Feedback.question_id == question_id)).first()
        is not None
    )


def give_feedback(
    *,
    session: Session,
    policy: ConversationPolicy,
    member_id: int,
    question_id: int,
    helpful: bool,
    now: datetime | None = None,
) -> Escalated | AlreadyDone:
    """👍 records thanks; 👎 ("koppla mig till samordnaren") also opens a case."""
    now = now or utcnow()
    question = _own_question(session, question_id, member_id)
    if question.action != "answer":
        raise ButtonRefused("stale")
    if helpful:
        if _feedback_given(session, question_id):
            return AlreadyDone()
        session.add(
            Feedback(
                question_id=question_id,
                member_id=member_id,
                kind=FeedbackKind.HELPFUL,
                department=question.department,
                created_at=now,
            )
        )
        session.commit()
        return AlreadyDone()
    return _escalate_question(session, policy, question, FeedbackKind.NOT_HELPFUL, now)


def choose_department(
    *,
    session: Session,
    routing: Routing,
    member_id: int,
    question_id: int,
    choice: int,
    language: str,
    now: datetime | None = None,
) -> Answered:
    """The member picked the ``choice``-th of the departments offered for the question."""
    now = now or utcnow()
    question = _own_question(session, question_id, member_id)
    offered = json.loads(question.candidates or "[]")
    if question.action != "clarify" or not 0 <= choice < len(offered):
        raise ButtonRefused("stale")
    candidate = offered[choice]
    department_id = candidate["department"]
    department = routing.table.department_by_id.get(department_id)
    if department is None:  # the table changed since the question was asked
        raise ButtonRefused("stale")
    session.add(
        Feedback(
            question_id=question_id,
            member_id=member_id,
            kind=FeedbackKind.CLARIFY_CHOICE,
            department=department_id,
            created_at=now,
        )
    )
    session.commit()
    article_id = candidate.get("article")
    article = routing.knowledge.get(article_id, language) if article_id else None
    return Answered(question, department, article)


def choose_coordinator(
    *,
    session: Session,
    policy: ConversationPolicy,
    member_id: int,
    question_id: int,
    now: datetime | None = None,
) -> Escalated:
    """The member chose "none of these — talk to the coordinator"."""
    question = _own_question(session, question_id, member_id)
    if question.action not in ("clarify", "answer"):
        raise ButtonRefused("stale")
    return _escalate_question(
        session, policy, question, FeedbackKind.CLARIFY_NONE, now or utcnow()
    )


def _escalate_question(
    session: Session,
    policy: ConversationPolicy,
    question: Question,
    kind: FeedbackKind,
    now: datetime,
) -> Escalated:
    assert question.id is not None
    if not _feedback_given(session, question.id):
        session.add(
            Feedback(
                question_id=question.id,
                member_id=question.member_id,
                kind=kind,
                department=question.department,
                created_at=now,
            )
        )
        session.commit()
    case, new = case_service.create_case(
        session=session,
        member_id=question.member_id,
        chat_id=question.member_id,
        question=question.text,
        hours=policy.hours,
        business_days=policy.business_days,
        department=question.department,
        score=question.score,
        reason=kind.value,
        question_id=question.id,
        now=now,
    )
    return Escalated(case, new)


def resolve_pending(
    *,
    session: Session,
    routing: Routing,
    policy: ConversationPolicy,
    member_id: int,
    pending_id: int,
    belongs_to_case: bool,
    language: str,
    now: datetime | None = None,
) -> Outcome:
    """The member said whether their last message belongs to the open case."""
    now = now or utcnow()
    pending = session.get(PendingMessage, pending_id)
    if pending is None:
        raise ButtonRefused("stale")
    if pending.member_id != member_id:
        raise ButtonRefused("not_yours")
    if pending.resolved:
        return AlreadyDone()
    pending.resolved = True
    session.add(pending)
    session.commit()
    case = session.get(Case, pending.case_id)
    if belongs_to_case and case is not None and case.status != CaseStatus.CLOSED:
        case_service.add_message(
            session=session, case=case, direction=Direction.FROM_MEMBER, text=pending.text, now=now
        )
        return AddedToCase(case, pending.text)
    reopenable = (
        case is not None
        and case.closed_at is not None
        and now - case.closed_at <= timedelta(days=policy.reopen_days)
    )
    if belongs_to_case and case is not None and reopenable:
        return _reopen_with(session, policy, case, pending.text, now)
    return route_question(
        session=session,
        routing=routing,
        policy=policy,
        member_id=member_id,
        chat_id=pending.chat_id,
        text=pending.text,
        language=language,
        now=now,
    )


def receive_document(
    *,
    session: Session,
    member_id: int,
    file_id: str,
    file_name: str,
    caption: str,
    now: datetime | None = None,
) -> AddedToCase | None:
    """A document joins the member's open case; ``None`` when there is no open case."""
    case = case_service.open_case_of(session=session, member_id=member_id)
    if case is None:
        return None
    case_service.add_message(
        session=session,
        case=case,
        direction=Direction.FROM_MEMBER,
        text=caption[:MAX_QUESTION_CHARS],
        attachment_file_id=file_id[:256],
        attachment_name=file_name[:256],
        now=now,
    )
    return AddedToCase(case, caption)
