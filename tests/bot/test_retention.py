"""The nightly retention: what is due goes, what is not stays, and the run is recorded."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from sqlmodel import Session, select

from bot.models import Case, CaseMessage, Question, RetentionRun
from bot.services import conversation, desk, members, retention
from bot.services.conversation import ConversationPolicy
from knowledge.loading import Routing

THEN = datetime(2024, 1, 10, 9, 0, tzinfo=UTC)


def test_old_answers_and_old_closed_cases_go_open_cases_stay(
    session: Session, shipped_routing: Routing, policy: ConversationPolicy
) -> None:
    members.touch_member(session=session, user_id=8, first_name="A", language_code="sv")
    for text in ("Hur bokar vi träningstider i en idrottshall?", "Jag vill prata med en människa"):
        conversation.receive_text(
            session=session,
            routing=shipped_routing,
            policy=policy,
            member_id=8,
            chat_id=8,
            text=text,
            language="sv",
            now=THEN,
        )
    (old_case,) = session.exec(select(Case)).all()
    assert old_case.id is not None
    desk.close_case(session=session, case_id=old_case.id, coordinator_id=1, now=THEN)
    members.touch_member(session=session, user_id=9, first_name="B", language_code="sv")
    conversation.receive_text(
        session=session,
        routing=shipped_routing,
        policy=policy,
        member_id=9,
        chat_id=9,
        text="Jag vill prata med en handläggare",
        language="sv",
        now=THEN,
    )  # old but still open
    now = THEN + timedelta(days=800)
    removed = retention.run(session=session, now=now, question_days=30, case_days=730)
    # The answered question, and the question of the destroyed case.
    assert removed["cases"] == 1 and removed["questions"] == 2
    remaining = session.exec(select(Case)).all()
    assert [c.member_id for c in remaining] == [9]
    assert all(m.case_id == remaining[0].id for m in session.exec(select(CaseMessage)))
    assert {q.member_id for q in session.exec(select(Question))} == {9}
    (logged,) = session.exec(select(RetentionRun)).all()
    assert json.loads(logged.removed)["cases"] == 1
    again = retention.run(session=session, now=now, question_days=30, case_days=730)
    assert again.get("cases", 0) == 0 and again.get("questions", 0) == 0
