"""/mydata and /forget: everything exported; deletion, with public records kept detached."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlmodel import Session, select

from bot.models import Case, CaseMessage, Feedback, InboxUpdate, Member, Question, Subscription
from bot.services import associations, conversation, inbox, members, privacy
from bot.services.conversation import ConversationPolicy
from knowledge.loading import Routing

NOW = datetime(2026, 11, 25, 9, 0, tzinfo=UTC)


def incoming(update_id: int) -> dict[str, object]:
    return {
        "update_id": update_id,
        "message": {
            "message_id": update_id,
            "date": 0,
            "chat": {"id": 7, "type": "private"},
            "from": {"id": 7, "is_bot": False, "first_name": "Ana"},
            "text": "Vårt telefonnummer är 0701234567",
        },
    }


def history(session: Session, routing: Routing, policy: ConversationPolicy) -> None:
    members.touch_member(session=session, user_id=7, first_name="Ana", language_code="sv")
    associations.set_subscription(session=session, member_id=7, topic="nyheter", on=True)
    answered = conversation.receive_text(
        session=session,
        routing=routing,
        policy=policy,
        member_id=7,
        chat_id=7,
        text="Hur bokar vi träningstider i en idrottshall?",
        language="sv",
        now=NOW,
    )
    assert isinstance(answered, conversation.Answered) and answered.question.id
    conversation.give_feedback(
        session=session,
        policy=policy,
        member_id=7,
        question_id=answered.question.id,
        helpful=True,
        now=NOW,
    )
    conversation.receive_text(
        session=session,
        routing=routing,
        policy=policy,
        member_id=7,
        chat_id=7,
        text="Jag vill prata med en människa",
        language="sv",
        now=NOW,
    )


def test_mydata_holds_profile_cases_messages_questions_feedback(
    session: Session, shipped_routing: Routing, policy: ConversationPolicy
) -> None:
    history(session, shipped_routing, policy)
    document = privacy.export_member(session=session, member_id=7)
    assert document["profile"]["first_name"] == "Ana"
    assert [q["answer"] for q in document["questions"]] == ["answer", "escalate"]
    assert document["feedback"][0]["kind"] == "helpful"
    assert document["subscriptions"] == ["nyheter"]
    (case,) = document["cases"]
    assert case["messages"][0]["text"] == "Jag vill prata med en människa"


def test_forget_deletes_operational_data_and_detaches_public_records(
    session: Session, shipped_routing: Routing, policy: ConversationPolicy
) -> None:
    history(session, shipped_routing, policy)
    # What came in through the inbox: a handled update and one kept after a failure.
    inbox.store(session=session, updates=[incoming(1)], now=NOW)
    inbox.claim(session=session, update_ids=[1], owner="a", now=NOW)
    inbox.finish(session=session, update_id=1, owner="a")
    inbox.store(session=session, updates=[incoming(2)], now=NOW)
    inbox.claim(session=session, update_ids=[2], owner="a", now=NOW)
    inbox.handling_failed(session=session, update_id=2, retry=False, owner="a", now=NOW)
    report = privacy.forget_member(session=session, member_id=7, retention_days=730, now=NOW)
    assert session.exec(select(InboxUpdate)).all() == []
    assert session.get(Member, 7) is None
    assert session.exec(select(Subscription)).all() == []
    assert [q.text for q in session.exec(select(Question))] == ["Jag vill prata med en människa"]
    assert session.exec(select(Feedback).where(Feedback.member_id == 7)).all() == []
    (case,) = session.exec(select(Case)).all()
    assert case.member_id == privacy.FORGOTTEN_MEMBER_ID and case.chat_id == 0 and case.restricted
    assert session.exec(select(CaseMessage)).all()  # the record itself is kept
    ((reference, until),) = report.kept_cases
    assert reference == case.reference and until.year == 2028
    assert privacy.export_member(session=session, member_id=7)["cases"] == []
