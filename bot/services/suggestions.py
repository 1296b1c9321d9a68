"""The traffic log behind rule suggestions: where questions the router missed really belonged."""

from __future__ import annotations

from datetime import datetime

from sqlmodel import Session, select

from bot.models import Case, Feedback, FeedbackKind, Question
from knowledge.suggest import TrafficQuestion

# Cases opened for these reasons say nothing about the question's subject.
_NOT_ABOUT_A_SUBJECT = {"person_request", "case_followup", "outside_place"}


def traffic(*, session: Session, since: datetime) -> list[TrafficQuestion]:
    """Questions clarified, escalated or given 👎, with the department they ended with."""
    found: list[TrafficQuestion] = []
    for case in session.exec(select(Case).where(Case.created_at >= since)):
        if case.handed_to is None or case.reason in _NOT_ABOUT_A_SUBJECT:
            continue
        question = session.get(Question, case.question_id) if case.question_id else None
        if (
            question is not None
            and question.action == "answer"
            and (question.department == case.handed_to)
        ):
            continue  # the router had it right
        found.append(TrafficQuestion(case.question, case.handed_to))
    for choice in session.exec(
        select(Feedback).where(
            Feedback.kind == FeedbackKind.CLARIFY_CHOICE, Feedback.created_at >= since
        )
    ):
        question = session.get(Question, choice.question_id)
        if question is not None and choice.department:
            found.append(TrafficQuestion(question.text, choice.department))
    return found
