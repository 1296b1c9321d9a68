"""The member's conversation: what happens to a message, a button press or a document.

Every function here takes plain values and a session and returns an outcome the handlers turn
into text; none of them sees Telegram's ``Update``.
"""

from __future__ import annotations

import functools
import json
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select

from bot.db import insert_row
from bot.locales import DEFAULT_LANGUAGE, shipped_catalogue
from bot.models import (
    Case,
    CaseMessage,
    CaseStatus,
    Direction,
    Feedback,
    FeedbackKind,
    Member,
    PendingMessage,
    Question,
    utcnow,
)
from bot.services import cases as case_service
from bot.services.associations import active as registration_active
from bot.services.associations import category_of
from bot.services.desk import reopen_case
from bot.services.languages import LanguageDetector, follow_language
from bot.services.members import touched
from bot.services.office_hours import OfficeHours
from knowledge.articles import Article
from knowledge.loading import Routing
from knowledge.router import Decision
from knowledge.rules import Department
from knowledge.text import fold, words

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
    # The article shown is Swedish and has an easy-to-read (lättläst) version.
    easy_read: bool = False


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
class SmallTalk:
    """A greeting, thanks, or nothing the bot can read: no case is opened."""

    kind: str


@dataclass(frozen=True)
class AlreadyDone:
    """A button pressed again: nothing new happens."""


Outcome = Answered | Clarify | Escalated | AddedToCase | AskWhichCase | SmallTalk | AlreadyDone


def clean_text(text: str) -> str:
    """Without NUL and other control characters (PostgreSQL refuses NUL in text)."""
    return _CONTROL.sub("", text)


_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


@dataclass(frozen=True)
class TextTaken:
    """A member's text message taken in: the member as now stored and what became of the text
    (``None``: a registration is under way and the text is its next answer)."""

    member: Member
    outcome: Outcome | None


def take_text(
    *,
    session: Session,
    routing: Routing,
    policy: ConversationPolicy,
    detector: LanguageDetector,
    user_id: int,
    first_name: str,
    language_code: str | None,
    chat_id: int,
    text: str,
    reply_to_message_id: int | None = None,
    update_id: int | None = None,
    first_attempt: bool = False,
    now: datetime | None = None,
) -> TextTaken:
    """Everything a member's text message needs from the database, in one session: the member
    refreshed, a registration under way, the language they write in, then ``receive_text``.

    Written at the end: nothing is flushed before a commit, so the database is not held for
    writing while the question is routed (on SQLite one writer at a time: every other update
    would wait). Two first messages of a new member at once: the loser is taken again.
    """

    now = now or utcnow()
    for again in (False, True):
        try:
            with session.no_autoflush:
                member = touched(
                    session=session,
                    user_id=user_id,
                    first_name=first_name,
                    language_code=language_code,
                    now=now,
                )
                # A reply to the bot (a case message, say) is never a registration answer.
                if reply_to_message_id is None and registration_active(
                    session=session, member_id=user_id, now=now
                ):
                    session.commit()
                    return TextTaken(member, None)
                # The reply comes in the language the member writes in (unless they chose one).
                follow_language(member, text, detector)
                outcome = receive_text(
                    session=session,
                    routing=routing,
                    policy=policy,
                    member_id=user_id,
                    chat_id=chat_id,
                    text=text,
                    language=member.language,
                    reply_to_message_id=reply_to_message_id,
                    update_id=update_id,
                    first_attempt=first_attempt and not again,
                    now=now,
                )
                session.commit()
                return TextTaken(member, outcome)
        except IntegrityError:
            # Stored meanwhile by another handling (a member's first two messages at once, or
            # a repeat of this update): taken again, looking for what is already there.
            session.rollback()
            if again:
                raise
    raise AssertionError("unreachable: the second attempt returns or raises")


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
    first_attempt: bool = False,
    now: datetime | None = None,
) -> Outcome:
    """A member wrote ``text``: join it to the case it answers, ask which, or route it.

    ``first_attempt``: the update is handled for the first time (the inbox says so), so no
    earlier handling can have stored anything for it.
    """
    now = now or utcnow()
    text = clean_text(text)[:MAX_QUESTION_CHARS]
    if update_id is not None and not first_attempt:
        # The same update handled again (the reply failed, or the process died): the same
        # outcome, nothing stored twice.
        before = _handled_before(session, update_id)
        if isinstance(before, CaseMessage):
            case = session.get(Case, before.case_id)
            if case is not None:
                return AddedToCase(case, before.text)
        elif before is not None:
            return route_question(
                session=session,
                routing=routing,
                policy=policy,
                member_id=member_id,
                chat_id=chat_id,
                text=before.text,
                language=language,
                update_id=update_id,
                recorded=before,
                now=now,
            )
    reopen_since = now - timedelta(days=policy.reopen_days)
    if reply_to_message_id is not None:
        # A reply to anything the bot said in a case belongs to that case, open or not.
        replied = case_service.case_of_message(
            session=session, member_id=member_id, message_id=reply_to_message_id
        )
        if replied is not None and replied.status != CaseStatus.CLOSED:
            return _join(session, replied, text, now, update_id)
        if replied is not None and replied.closed_at and replied.closed_at >= reopen_since:
            return _reopen_with(session, policy, replied, text, now, update_id)
    open_case, closed = case_service.open_or_recently_closed(
        session=session, member_id=member_id, since=reopen_since
    )
    if open_case is not None and open_case.id is not None:
        # "Right after" counts from the bot's last message in the case, not from the member's
        # own: a conversation that goes quiet asks again.
        last_said = case_service.last_outgoing_at(session=session, case_id=open_case.id)
        just_after = now - (last_said or open_case.created_at) <= timedelta(
            minutes=policy.follow_up_minutes
        )
        if just_after and reply_to_message_id is None:
            return _join(session, open_case, text, now, update_id)
        return _ask_which(session, member_id, open_case, chat_id, text, now, update_id)
    if closed is not None and closed.id is not None and not is_small_talk(text):
        return _ask_which(session, member_id, closed, chat_id, text, now, update_id)
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


_GREETINGS = frozenset(
    ("hej", "hejsan", "hallå", "hallo", "tjena", "tja", "hi", "hello", "hey")
    + ("god", "morgon", "dag", "kväll")
)
_THANKS = frozenset(
    ("tack", "tackar", "så", "mycket", "thanks", "thank", "you", "many")
    + ("bra", "toppen", "perfekt")
)


def is_small_talk(text: str) -> bool:
    return small_talk_kind(text) is not None


def small_talk_kind(text: str) -> str | None:
    """``greeting`` or ``thanks`` when that is all the message says."""
    found = set(words(text))
    if not found:
        return None
    greetings, thanks = _small_talk_words()
    if found <= greetings:
        return "greeting"
    if found <= thanks:
        return "thanks"
    return None


@functools.cache
def _small_talk_words() -> tuple[frozenset[str], frozenset[str]]:
    """The greetings, and the thanks with greetings, as ``words`` gives them (folded)."""
    greetings = frozenset(fold(w) for w in _GREETINGS)
    return greetings, greetings | frozenset(fold(w) for w in _THANKS)


def _join(
    session: Session,
    case: Case,
    text: str,
    now: datetime,
    update_id: int | None,
    *,
    reopened: bool = False,
) -> AddedToCase:
    """The member's message joins the case."""
    case_service.add_message(
        session=session,
        case=case,
        direction=Direction.FROM_MEMBER,
        text=text,
        update_id=update_id,
        now=now,
    )
    return AddedToCase(case, text, reopened=reopened)


def _ask_which(
    session: Session,
    member_id: int,
    case: Case,
    chat_id: int,
    text: str,
    now: datetime,
    update_id: int | None = None,
) -> AskWhichCase:
    assert case.id is not None
    if update_id is not None:
        before = session.exec(
            select(PendingMessage).where(PendingMessage.update_id == update_id)
        ).first()
        if before is not None:  # handled again: the same question, asked again
            return AskWhichCase(before, case)
    pending = PendingMessage(
        member_id=member_id,
        case_id=case.id,
        chat_id=chat_id,
        text=text,
        update_id=update_id,
        created_at=now,
    )
    session.add(pending)
    session.commit()
    return AskWhichCase(pending, case)


def _reopen_with(
    session: Session,
    policy: ConversationPolicy,
    case: Case,
    text: str,
    now: datetime,
    update_id: int | None = None,
) -> AddedToCase:
    reopen_case(
        session=session, case=case, hours=policy.hours, business_days=policy.business_days, now=now
    )
    return _join(session, case, text, now, update_id, reopened=True)


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
    recorded: Question | None = None,
    now: datetime | None = None,
) -> Answered | Clarify | Escalated | SmallTalk:
    """Route a question; ``recorded``: the question this update stored when handled before."""
    now = now or utcnow()
    kind = small_talk_kind(text)
    if kind is not None:
        return SmallTalk(kind)
    decision = routing.router.route(text, category_of(session=session, member_id=member_id))
    if decision.reason == "unreadable":
        # "👍", "????", "asdfgh": nothing for a person to work on; ask for words.
        return SmallTalk("need_words")
    question = recorded or _record_question(
        session, member_id, text, decision, routing, now, update_id
    )
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
            question_is_new=recorded is None,
            now=now,
        )
        return Escalated(case, new)
    departments = routing.table.department_by_id
    if decision.action == "answer" and decision.department is not None:
        article = _article(routing, decision.article, language)
        return Answered(
            question, departments[decision.department], article, _has_easy_read(routing, article)
        )
    return Clarify(
        question,
        tuple(
            departments[c.department] for c in decision.candidates if c.department in departments
        ),
    )


def _article(routing: Routing, article_id: str | None, language: str) -> Article | None:
    """The article in the member's language, else in the language's fallbacks, else as written."""
    if not article_id:
        return None
    fallbacks = shipped_catalogue().locale(language).article_fallbacks
    return routing.knowledge.get(article_id, language, fallbacks)


def _has_easy_read(routing: Routing, article: Article | None) -> bool:
    if article is None or article.meta.language != DEFAULT_LANGUAGE:
        return False
    return routing.knowledge.easy_read_of(article.id) is not None


def _record_question(
    session: Session,
    member_id: int,
    text: str,
    decision: Decision,
    routing: Routing,
    now: datetime,
    update_id: int | None = None,
) -> Question:
    rules = routing.table.rule_by_id
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
        update_id=update_id,
        created_at=now,
    )
    insert_row(session, question)
    session.commit()
    return question


def _handled_before(session: Session, update_id: int) -> Question | CaseMessage | None:
    """What an update left behind when it was handled before: its question or case message."""
    question = session.exec(select(Question).where(Question.update_id == update_id)).first()
    if question is not None:
        return question
    return session.exec(select(CaseMessage).where(CaseMessage.update_id == update_id)).first()


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
    article = _article(routing, article_id, language)
    return Answered(question, department, article, _has_easy_read(routing, article))


def easy_read_version(
    *, session: Session, routing: Routing, member_id: int, question_id: int
) -> Article:
    """The easy-to-read (lättläst) version of the article the member was answered with."""
    question = _own_question(session, question_id, member_id)
    article_id: str | None = None
    if question.action == "answer":
        article_id = question.article
    elif question.action == "clarify":
        chosen = session.exec(
            select(Feedback).where(
                Feedback.question_id == question_id,
                Feedback.kind == FeedbackKind.CLARIFY_CHOICE,
            )
        ).first()
        offered = json.loads(question.candidates or "[]")
        if chosen is not None:
            article_id = next(
                (c.get("article") for c in offered if c["department"] == chosen.department), None
            )
    easy = routing.knowledge.easy_read_of(article_id) if article_id else None
    if easy is None:
        raise ButtonRefused("stale")
    return easy


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
    update_id: int | None = None,
    now: datetime | None = None,
) -> AddedToCase | None:
    """A document joins the member's open case; ``None`` when there is no open case."""
    before = (
        case_service.message_of_update(session=session, update_id=update_id)
        if update_id is not None
        else None
    )
    if before is not None:  # handled again: already in the case
        again = session.get(Case, before.case_id)
        if again is not None:
            return AddedToCase(again, caption)
    case = case_service.open_case_of(session=session, member_id=member_id)
    if case is None:
        return None
    case_service.add_message(
        update_id=update_id,
        session=session,
        case=case,
        direction=Direction.FROM_MEMBER,
        text=clean_text(caption)[:MAX_QUESTION_CHARS],
        attachment_file_id=file_id[:256],
        attachment_name=file_name[:256],
        now=now,
    )
    return AddedToCase(case, caption)
