"""The conversation service on a temporary database: routes, cases, follow-ups, buttons."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlmodel import Session, select

from bot.models import Case, CaseMessage, Direction, Feedback, FeedbackKind, Question
from bot.services import cases, conversation, members
from bot.services.conversation import (
    AddedToCase,
    AlreadyDone,
    Answered,
    AskWhichCase,
    ButtonRefused,
    Clarify,
    ConversationPolicy,
    Escalated,
)
from knowledge.loading import Routing

MEMBER = 1001
OTHER = 2002
# A Wednesday morning in Helsingborg.
NOW = datetime(2026, 11, 25, 9, 0, tzinfo=UTC)


@pytest.fixture
def member(session: Session) -> int:
    members.touch_member(session=session, user_id=MEMBER, first_name="Ana", language_code="sv")
    members.touch_member(session=session, user_id=OTHER, first_name="Bo", language_code="en")
    return MEMBER


def ask(
    session: Session,
    routing: Routing,
    policy: ConversationPolicy,
    text: str,
    *,
    now: datetime = NOW,
    member_id: int = MEMBER,
    reply_to: int | None = None,
    update_id: int | None = None,
) -> conversation.Outcome:
    return conversation.receive_text(
        session=session,
        routing=routing,
        policy=policy,
        member_id=member_id,
        chat_id=member_id,
        text=text,
        language="sv",
        reply_to_message_id=reply_to,
        update_id=update_id,
        now=now,
    )


def test_a_clear_question_is_answered_with_the_article(
    session: Session, shipped_routing: Routing, policy: ConversationPolicy, member: int
) -> None:
    outcome = ask(session, shipped_routing, policy, "Hur bokar vi träningstider i en idrottshall?")
    assert isinstance(outcome, Answered)
    assert outcome.department.id == "skola_fritid"
    assert outcome.article is not None and outcome.article.id == "boka-idrottshall"
    stored = session.exec(select(Question)).one()
    assert stored.action == "answer" and stored.member_id == member


def test_a_request_for_a_person_opens_a_case_with_reference_and_deadline(
    session: Session, shipped_routing: Routing, policy: ConversationPolicy, member: int
) -> None:
    outcome = ask(session, shipped_routing, policy, "Jag vill prata med en människa", update_id=7)
    assert isinstance(outcome, Escalated) and outcome.new
    case = outcome.case
    assert case.reference == f"F-2026-{case.id:04d}"
    # Two business days after Wednesday morning: Friday at the end of the office day.
    local_due = case.due_at.astimezone(ZoneInfo("Europe/Stockholm"))
    assert (local_due.weekday(), local_due.hour) == (4, 17)
    messages = session.exec(select(CaseMessage)).all()
    assert [(m.direction, m.text) for m in messages] == [
        (Direction.FROM_MEMBER, "Jag vill prata med en människa")
    ]


def test_the_same_update_never_opens_two_cases(
    session: Session, shipped_routing: Routing, policy: ConversationPolicy, member: int
) -> None:
    first = cases.create_case(
        session=session,
        member_id=member,
        chat_id=member,
        question="Hjälp",
        hours=policy.hours,
        business_days=2,
        source_update_id=42,
        now=NOW,
    )
    again = cases.create_case(
        session=session,
        member_id=member,
        chat_id=member,
        question="Hjälp",
        hours=policy.hours,
        business_days=2,
        source_update_id=42,
        now=NOW,
    )
    assert first[1] is True and again[1] is False and first[0].id == again[0].id
    assert len(session.exec(select(Case)).all()) == 1


def test_a_message_right_after_the_case_joins_it(
    session: Session, shipped_routing: Routing, policy: ConversationPolicy, member: int
) -> None:
    escalated = ask(session, shipped_routing, policy, "Jag vill prata med en handläggare")
    assert isinstance(escalated, Escalated)
    later = ask(
        session,
        shipped_routing,
        policy,
        "Det gäller vår ansökan om kulturstöd.",
        now=NOW + timedelta(minutes=3),
    )
    assert isinstance(later, AddedToCase) and later.case.id == escalated.case.id
    texts = [m.text for m in session.exec(select(CaseMessage).order_by(CaseMessage.id)).all()]
    assert texts[-1] == "Det gäller vår ansökan om kulturstöd."


def test_a_reply_to_the_confirmation_joins_the_case_even_days_later(
    session: Session, shipped_routing: Routing, policy: ConversationPolicy, member: int
) -> None:
    escalated = ask(session, shipped_routing, policy, "Jag vill prata med en människa")
    assert isinstance(escalated, Escalated)
    cases.record_confirmation(session=session, case=escalated.case, message_id=555, text="OK")
    later = ask(
        session, shipped_routing, policy, "En sak till", now=NOW + timedelta(days=3), reply_to=555
    )
    assert isinstance(later, AddedToCase)


def test_a_later_message_asks_whether_it_belongs_to_the_open_case(
    session: Session, shipped_routing: Routing, policy: ConversationPolicy, member: int
) -> None:
    escalated = ask(session, shipped_routing, policy, "Jag vill prata med en människa")
    assert isinstance(escalated, Escalated)
    later = ask(
        session, shipped_routing, policy, "Hur söker vi LOK-stöd?", now=NOW + timedelta(hours=5)
    )
    assert isinstance(later, AskWhichCase) and later.case.id == escalated.case.id
    assert later.pending.id is not None
    as_new = conversation.resolve_pending(
        session=session,
        routing=shipped_routing,
        policy=policy,
        member_id=member,
        pending_id=later.pending.id,
        belongs_to_case=False,
        language="sv",
        now=NOW,
    )
    assert isinstance(as_new, Answered) and as_new.department.id == "skola_fritid"
    again = conversation.resolve_pending(
        session=session,
        routing=shipped_routing,
        policy=policy,
        member_id=member,
        pending_id=later.pending.id,
        belongs_to_case=True,
        language="sv",
        now=NOW,
    )
    assert isinstance(again, AlreadyDone)


def test_thumbs_down_hands_the_question_to_the_coordinator_once(
    session: Session, shipped_routing: Routing, policy: ConversationPolicy, member: int
) -> None:
    answered = ask(
        session, shipped_routing, policy, "Hur bokar vi träningstider i en idrottshall?"
    )
    assert isinstance(answered, Answered) and answered.question.id is not None
    first = conversation.give_feedback(
        session=session,
        policy=policy,
        member_id=member,
        question_id=answered.question.id,
        helpful=False,
        now=NOW,
    )
    second = conversation.give_feedback(
        session=session,
        policy=policy,
        member_id=member,
        question_id=answered.question.id,
        helpful=False,
        now=NOW,
    )
    assert isinstance(first, Escalated) and first.new
    assert isinstance(second, Escalated) and not second.new and second.case.id == first.case.id
    kinds = [f.kind for f in session.exec(select(Feedback)).all()]
    assert kinds == [FeedbackKind.NOT_HELPFUL]


def test_a_button_of_someone_elses_question_is_refused(
    session: Session, shipped_routing: Routing, policy: ConversationPolicy, member: int
) -> None:
    answered = ask(
        session, shipped_routing, policy, "Hur bokar vi träningstider i en idrottshall?"
    )
    assert isinstance(answered, Answered) and answered.question.id is not None
    with pytest.raises(ButtonRefused) as refused:
        conversation.give_feedback(
            session=session,
            policy=policy,
            member_id=OTHER,
            question_id=answered.question.id,
            helpful=False,
            now=NOW,
        )
    assert refused.value.reason == "not_yours"
    assert session.exec(select(Case)).all() == []


def test_a_clarification_choice_answers_and_is_recorded(
    session: Session, shipped_routing: Routing, policy: ConversationPolicy, member: int
) -> None:
    # Find a question the shipped table clarifies, without depending on one sentence.
    outcome = None
    for text in (
        "Vi vill ordna en festival i en park",
        "Kan vi låna en park för en festival?",
        "Vi behöver en lokal",
        "Vi vill ha stöd till vår förening",
    ):
        outcome = ask(session, shipped_routing, policy, text, member_id=member)
        if isinstance(outcome, Clarify):
            break
    assert isinstance(outcome, Clarify), "none of the probe questions was clarified"
    assert outcome.question.id is not None and len(outcome.departments) >= 2
    chosen = conversation.choose_department(
        session=session,
        routing=shipped_routing,
        member_id=member,
        question_id=outcome.question.id,
        choice=1,
        language="sv",
        now=NOW,
    )
    assert chosen.department.id == outcome.departments[1].id
    with pytest.raises(ButtonRefused):
        conversation.choose_department(
            session=session,
            routing=shipped_routing,
            member_id=member,
            question_id=outcome.question.id,
            choice=9,
            language="sv",
            now=NOW,
        )


def test_a_document_joins_the_open_case(
    session: Session, shipped_routing: Routing, policy: ConversationPolicy, member: int
) -> None:
    assert (
        conversation.receive_document(
            session=session, member_id=member, file_id="f1", file_name="a.pdf", caption=""
        )
        is None
    )
    ask(session, shipped_routing, policy, "Jag vill prata med en människa")
    added = conversation.receive_document(
        session=session,
        member_id=member,
        file_id="f1",
        file_name="stadgar.pdf",
        caption="Våra stadgar",
    )
    assert added is not None
    stored = session.exec(select(CaseMessage).where(CaseMessage.attachment_file_id == "f1")).one()
    assert stored.attachment_name == "stadgar.pdf" and stored.text == "Våra stadgar"


def test_the_same_update_handled_again_stores_nothing_twice(
    session: Session, shipped_routing: Routing, policy: ConversationPolicy, member: int
) -> None:
    """A retried update (the reply failed, or the process died) gives the same outcome."""

    def handle(text: str, update_id: int, who: int = member) -> conversation.Outcome:
        return conversation.receive_text(
            session=session,
            routing=shipped_routing,
            policy=policy,
            member_id=who,
            chat_id=who,
            text=text,
            language="sv",
            update_id=update_id,
            now=NOW,
        )

    first = handle("Jag vill prata med en människa om vårt ärende", 501)
    again = handle("Jag vill prata med en människa om vårt ärende", 501)
    assert isinstance(first, conversation.Escalated) and first.new
    assert isinstance(again, conversation.Escalated) and not again.new
    assert again.case.id == first.case.id
    follow_up = handle("Vi är 40 medlemmar.", 502)
    follow_up_again = handle("Vi är 40 medlemmar.", 502)
    assert isinstance(follow_up, conversation.AddedToCase)
    assert isinstance(follow_up_again, conversation.AddedToCase)
    texts = session.exec(
        select(CaseMessage.text).where(CaseMessage.case_id == first.case.id)
    ).all()
    assert texts == ["Jag vill prata med en människa om vårt ärende", "Vi är 40 medlemmar."]
    assert len(session.exec(select(Question)).all()) == 1
    answered = handle("Hur bokar vi träningstider i en idrottshall?", 503, OTHER)
    answered_again = handle("Hur bokar vi träningstider i en idrottshall?", 503, OTHER)
    assert isinstance(answered, conversation.Answered)
    assert isinstance(answered_again, conversation.Answered)
    assert answered_again.question.id == answered.question.id
    assert len(session.exec(select(Question)).all()) == 2


def test_greetings_and_thanks_open_no_case_and_do_not_swallow_the_next_question(
    session: Session, shipped_routing: Routing, policy: ConversationPolicy, member: int
) -> None:
    assert ask(session, shipped_routing, policy, "Hej!") == conversation.SmallTalk("greeting")
    assert ask(session, shipped_routing, policy, "Tack så mycket 👍") == conversation.SmallTalk(
        "thanks"
    )
    assert ask(session, shipped_routing, policy, "🙂🙂") == conversation.SmallTalk("need_words")
    answered = ask(
        session,
        shipped_routing,
        policy,
        "Hur bokar vi träningstider i en idrottshall?",
        now=NOW + timedelta(minutes=1),
    )
    assert isinstance(answered, Answered)
    assert session.exec(select(Case)).all() == []


def test_a_reply_joins_the_case_it_replies_to_even_with_two_open(
    session: Session, shipped_routing: Routing, policy: ConversationPolicy, member: int
) -> None:
    first = ask(session, shipped_routing, policy, "Jag vill prata med en människa", update_id=1)
    assert isinstance(first, Escalated)
    cases.record_confirmation(session=session, case=first.case, message_id=100, text="A", now=NOW)
    second = cases.create_case(
        session=session,
        member_id=member,
        chat_id=member,
        question="Annat ärende",
        hours=policy.hours,
        business_days=2,
        now=NOW + timedelta(minutes=1),
    )[0]
    cases.record_confirmation(
        session=session, case=second, message_id=200, text="B", now=NOW + timedelta(minutes=1)
    )
    joined = ask(
        session,
        shipped_routing,
        policy,
        "Om det första",
        reply_to=100,
        now=NOW + timedelta(days=1),
    )
    assert isinstance(joined, AddedToCase) and joined.case.id == first.case.id


def test_the_follow_up_window_counts_from_the_bots_last_message(
    session: Session, shipped_routing: Routing, policy: ConversationPolicy, member: int
) -> None:
    escalated = ask(session, shipped_routing, policy, "Jag vill prata med en människa")
    assert isinstance(escalated, Escalated)
    cases.record_confirmation(
        session=session, case=escalated.case, message_id=5, text="OK", now=NOW
    )
    steps = [NOW + timedelta(minutes=minutes) for minutes in (10, 20)]
    assert isinstance(ask(session, shipped_routing, policy, "En sak", now=steps[0]), AddedToCase)
    # 20 minutes after the bot last spoke, even though the member wrote 10 minutes ago.
    assert isinstance(
        ask(session, shipped_routing, policy, "Och en till", now=steps[1]), AskWhichCase
    )


def test_control_characters_are_removed_before_storing(
    session: Session, shipped_routing: Routing, policy: ConversationPolicy, member: int
) -> None:
    outcome = ask(session, shipped_routing, policy, "Hur bokar vi\x00 idrottshall\x07?")
    assert isinstance(outcome, Answered)
    assert outcome.question.text == "Hur bokar vi idrottshall?"
