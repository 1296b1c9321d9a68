"""Database tables (SQLModel). Everything that must survive a restart lives here.

Timestamps are timezone-aware UTC; SQLite, which stores them without a zone, gets them back
as UTC through ``UTCDateTime``.
"""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

import sqlalchemy as sa
from sqlmodel import Field, SQLModel


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(sa.types.TypeDecorator[datetime]):
    """A DateTime column that always returns aware UTC datetimes."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, _dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given; use aware UTC datetimes")
        return value.astimezone(UTC)

    def process_result_value(self, value: Any, _dialect: sa.Dialect) -> datetime | None:
        if not isinstance(value, datetime):
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _time(**kwargs: Any) -> Any:
    return Field(sa_type=UTCDateTime, **kwargs)


def _telegram_id(**kwargs: Any) -> Any:
    """Telegram user and chat ids exceed 2**31: a 64-bit column on every database."""
    return Field(sa_type=sa.BigInteger, **kwargs)


class CaseStatus(StrEnum):
    OPEN = "open"
    CLAIMED = "claimed"
    HANDED_OVER = "handed_over"
    CLOSED = "closed"


class Direction(StrEnum):
    FROM_MEMBER = "in"
    TO_MEMBER = "out"
    INTERNAL = "internal"


class FeedbackKind(StrEnum):
    HELPFUL = "helpful"
    NOT_HELPFUL = "not_helpful"
    CLARIFY_CHOICE = "clarify_choice"
    CLARIFY_NONE = "clarify_none"


class Member(SQLModel, table=True):
    """An association member who wrote to the bot. Only what the service needs is kept."""

    id: int = _telegram_id(primary_key=True, sa_column_kwargs={"autoincrement": False})
    first_name: str = Field(default="", max_length=128)
    language: str = Field(default="sv", max_length=8)
    # Where the language came from: telegram, detected or chosen (bot.services.languages).
    language_source: str = Field(default="telegram", max_length=16)
    unreachable: bool = False
    created_at: datetime = _time(default_factory=utcnow)
    last_seen_at: datetime = _time(default_factory=utcnow)


class Question(SQLModel, table=True):
    """A routed question and the router's decision; buttons refer to it by id."""

    # One question per update: handling an update again finds it instead of adding one.
    __table_args__ = (
        sa.Index(
            "ux_question_update_id",
            "update_id",
            unique=True,
            sqlite_where=sa.text("update_id IS NOT NULL"),
            postgresql_where=sa.text("update_id IS NOT NULL"),
        ),
    )

    id: int | None = Field(default=None, primary_key=True)
    member_id: int = _telegram_id(foreign_key="member.id", index=True)
    text: str
    action: str = Field(max_length=16)
    department: str | None = Field(default=None, max_length=64)
    score: float = 0.0
    rule: str | None = Field(default=None, max_length=64)
    article: str | None = Field(default=None, max_length=64)
    candidates: str = "[]"  # JSON list of department ids offered
    # The Telegram update it came in: handling the update again finds this row.
    update_id: int | None = _telegram_id(default=None)
    created_at: datetime = _time(default_factory=utcnow)


class Case(SQLModel, table=True):
    """An escalated question, worked by the coordinator until it is closed."""

    # One case per routed question (two presses of "not helped" at once open one case).
    __table_args__ = (
        sa.Index(
            "ux_case_question_id",
            "question_id",
            unique=True,
            sqlite_where=sa.text("question_id IS NOT NULL"),
            postgresql_where=sa.text("question_id IS NOT NULL"),
        ),
    )

    id: int | None = Field(default=None, primary_key=True)
    reference: str | None = Field(default=None, unique=True, max_length=32)
    member_id: int = _telegram_id(foreign_key="member.id", index=True)
    chat_id: int = _telegram_id()
    question_id: int | None = Field(default=None, foreign_key="question.id")
    question: str
    department: str | None = Field(default=None, max_length=64)
    score: float = 0.0
    reason: str = Field(default="", max_length=32)
    status: CaseStatus = Field(default=CaseStatus.OPEN, max_length=16, index=True)
    confirmation_message_id: int | None = None
    # The Telegram update that created the case: a redelivered update finds it instead.
    source_update_id: int | None = _telegram_id(default=None, unique=True)
    created_at: datetime = _time(default_factory=utcnow)
    updated_at: datetime = _time(default_factory=utcnow)
    due_at: datetime = _time()
    closed_at: datetime | None = _time(default=None)
    # The coordinator's desk: where the case lives and who works it.
    desk_chat_id: int | None = _telegram_id(default=None)
    desk_thread_id: int | None = None
    # Set by whoever posts the case on the desk, so that two never do (handler, job, instance).
    announcing_since: datetime | None = _time(default=None)
    card_message_id: int | None = None
    claimed_by: int | None = _telegram_id(default=None)
    claimed_by_name: str | None = Field(default=None, max_length=128)
    claimed_at: datetime | None = _time(default=None)
    first_response_at: datetime | None = _time(default=None)
    handed_to: str | None = Field(default=None, max_length=64)
    handed_at: datetime | None = _time(default=None)
    closing_note: str | None = None
    rating: int | None = None
    rated_at: datetime | None = _time(default=None)
    member_blocked: bool = False
    reopened_count: int = 0
    # The member asked to be forgotten: the case is a public record kept until its retention
    # date, detached from the member's Telegram identity, and not used for anything else.
    restricted: bool = False


class CaseMessage(SQLModel, table=True):
    """Every message of a case, in both directions."""

    __table_args__ = (
        sa.Index(
            "ux_casemessage_update_id",
            "update_id",
            unique=True,
            sqlite_where=sa.text("update_id IS NOT NULL"),
            postgresql_where=sa.text("update_id IS NOT NULL"),
        ),
    )

    id: int | None = Field(default=None, primary_key=True)
    case_id: int = Field(foreign_key="case.id", index=True)
    direction: Direction = Field(max_length=16)
    text: str = ""
    attachment_file_id: str | None = Field(default=None, max_length=256)
    attachment_name: str | None = Field(default=None, max_length=256)
    telegram_message_id: int | None = None
    # The coordinator who wrote it (relayed replies and internal notes).
    author_id: int | None = _telegram_id(default=None)
    # The Telegram update it came in (handled again: not added twice).
    update_id: int | None = _telegram_id(default=None)
    created_at: datetime = _time(default_factory=utcnow)


class DeskMessage(SQLModel, table=True):
    """A message the bot posted on the desk about a case: a reply to it belongs to the case."""

    __table_args__ = (sa.UniqueConstraint("chat_id", "message_id"),)

    id: int | None = Field(default=None, primary_key=True)
    case_id: int = Field(foreign_key="case.id", index=True)
    chat_id: int = _telegram_id()
    message_id: int


class ReminderSent(SQLModel, table=True):
    """A deadline reminder that went out: once per case and level, across restarts."""

    case_id: int = Field(foreign_key="case.id", primary_key=True)
    level: str = Field(primary_key=True, max_length=16)
    sent_at: datetime = _time(default_factory=utcnow)


class DigestSent(SQLModel, table=True):
    """The morning digest of a day, sent once."""

    day: str = Field(primary_key=True, max_length=10)
    sent_at: datetime = _time(default_factory=utcnow)


class Feedback(SQLModel, table=True):
    """👍/👎 on answers and choices made in clarifications, for statistics and better rules."""

    id: int | None = Field(default=None, primary_key=True)
    question_id: int = Field(foreign_key="question.id", index=True)
    member_id: int = _telegram_id(foreign_key="member.id")
    kind: FeedbackKind = Field(max_length=24)
    department: str | None = Field(default=None, max_length=64)
    created_at: datetime = _time(default_factory=utcnow)


class PendingMessage(SQLModel, table=True):
    """A message that may belong to an open case; the member is asked which."""

    __table_args__ = (
        sa.Index(
            "ux_pendingmessage_update_id",
            "update_id",
            unique=True,
            sqlite_where=sa.text("update_id IS NOT NULL"),
            postgresql_where=sa.text("update_id IS NOT NULL"),
        ),
    )

    id: int | None = Field(default=None, primary_key=True)
    member_id: int = _telegram_id(foreign_key="member.id", index=True)
    case_id: int = Field(foreign_key="case.id")
    chat_id: int = _telegram_id()
    text: str
    resolved: bool = False
    update_id: int | None = _telegram_id(default=None)
    created_at: datetime = _time(default_factory=utcnow)


class RulesVersion(SQLModel, table=True):
    """A routing table that went live (audit), with its text so that it can be restored."""

    id: int | None = Field(default=None, primary_key=True)
    content_hash: str = Field(max_length=64, index=True)
    rules_text: str
    activated_at: datetime = _time(default_factory=utcnow)
    activated_by: int | None = _telegram_id(default=None)
    # start, file, chat, force, rollback
    source: str = Field(max_length=16)
    summary: str = ""
    figures: str = "{}"  # JSON: the figures on the question set when it went live


class ExampleQuestion(SQLModel, table=True):
    """A real question a coordinator confirmed, anonymised, for the regression check."""

    id: int | None = Field(default=None, primary_key=True)
    text: str
    department: str = Field(max_length=64)
    case_id: int | None = Field(default=None, foreign_key="case.id", unique=True)
    added_by: int | None = _telegram_id(default=None)
    added_at: datetime = _time(default_factory=utcnow)


class AssociationCategory(StrEnum):
    SPORTS = "sports"
    CULTURE = "culture"
    SOCIAL = "social"
    DISABILITY = "disability"
    SENIORS = "seniors"
    IMMIGRANT = "immigrant"
    ENVIRONMENT = "environment"
    OTHER = "other"


class Association(SQLModel, table=True):
    """An entry of the association register."""

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=200, index=True)
    org_number: str = Field(max_length=11, unique=True)
    category: AssociationCategory = Field(max_length=16)
    members_count: int = 0
    description: str = Field(default="", max_length=500)
    # The public contact, shown in /find when the association chose to be listed.
    contact_member_id: int = _telegram_id(foreign_key="member.id")
    email: str | None = Field(default=None, max_length=200)
    phone: str | None = Field(default=None, max_length=50)
    listed: bool = False
    created_at: datetime = _time(default_factory=utcnow)
    confirmed_at: datetime = _time(default_factory=utcnow)
    reminded_at: datetime | None = _time(default=None)


class AssociationMember(SQLModel, table=True):
    """A member's link to an association; others than the contact wait for approval."""

    __table_args__ = (sa.UniqueConstraint("association_id", "member_id"),)

    id: int | None = Field(default=None, primary_key=True)
    association_id: int = Field(foreign_key="association.id", index=True)
    member_id: int = _telegram_id(foreign_key="member.id", index=True)
    role: str = Field(default="", max_length=100)
    approved: bool = False
    created_at: datetime = _time(default_factory=utcnow)


class ConversationState(SQLModel, table=True):
    """Where a member is in a guided conversation (/register), so a restart loses nothing."""

    member_id: int = _telegram_id(primary_key=True, sa_column_kwargs={"autoincrement": False})
    flow: str = Field(max_length=32)
    step: str = Field(max_length=32)
    data: str = "{}"  # JSON of the answers so far
    updated_at: datetime = _time(default_factory=utcnow)


class Subscription(SQLModel, table=True):
    __table_args__ = (sa.UniqueConstraint("member_id", "topic"),)

    id: int | None = Field(default=None, primary_key=True)
    member_id: int = _telegram_id(foreign_key="member.id", index=True)
    topic: str = Field(max_length=32)


class Event(SQLModel, table=True):
    """A dialogue meeting, a training course…: members sign up and are reminded the day before."""

    id: int | None = Field(default=None, primary_key=True)
    topic: str = Field(max_length=32)
    title: str = Field(max_length=200)
    starts_at: datetime = _time()
    place: str = Field(max_length=200)
    text: str = ""
    created_by: int | None = _telegram_id(default=None)
    created_at: datetime = _time(default_factory=utcnow)
    reminded_at: datetime | None = _time(default=None)


class EventSignup(SQLModel, table=True):
    __table_args__ = (sa.UniqueConstraint("event_id", "member_id"),)

    id: int | None = Field(default=None, primary_key=True)
    event_id: int = Field(foreign_key="event.id", index=True)
    member_id: int = _telegram_id(foreign_key="member.id")
    created_at: datetime = _time(default_factory=utcnow)


class Broadcast(SQLModel, table=True):
    """One announcement, event invitation or reminder, sent to many through the outbox."""

    id: int | None = Field(default=None, primary_key=True)
    kind: str = Field(max_length=16)  # announcement, event, reminder
    topic: str = Field(default="", max_length=32)
    title: str = Field(max_length=200)
    event_id: int | None = Field(default=None, foreign_key="event.id")
    created_by: int | None = _telegram_id(default=None)
    created_at: datetime = _time(default_factory=utcnow)
    # Where the coordinator follows the delivery.
    progress_chat_id: int | None = _telegram_id(default=None)
    progress_message_id: int | None = None
    finished_at: datetime | None = _time(default=None)


class OutboxStatus(StrEnum):
    PENDING = "pending"
    SENDING = "sending"
    SENT = "sent"
    BLOCKED = "blocked"
    FAILED = "failed"
    # In flight when the process died: perhaps delivered, so never sent again.
    UNCERTAIN = "uncertain"


class OutboxMessage(SQLModel, table=True):
    """One message to one member, queued in the database and sent within Telegram's limits."""

    __table_args__ = (sa.UniqueConstraint("broadcast_id", "chat_id"),)

    id: int | None = Field(default=None, primary_key=True)
    broadcast_id: int = Field(foreign_key="broadcast.id", index=True)
    chat_id: int = _telegram_id()
    text: str
    markup: str = ""  # JSON of an inline keyboard, if any
    status: OutboxStatus = Field(default=OutboxStatus.PENDING, max_length=16, index=True)
    attempts: int = 0
    next_attempt_at: datetime = _time(default_factory=utcnow)
    sent_at: datetime | None = _time(default=None)
    error: str = Field(default="", max_length=200)


class RetentionRun(SQLModel, table=True):
    """What one run of the nightly retention job removed (the record the city can show)."""

    id: int | None = Field(default=None, primary_key=True)
    ran_at: datetime = _time(default_factory=utcnow)
    removed: str = "{}"  # JSON: kind of record → how many


class InboxState(StrEnum):
    PENDING = (
        "pending"  # stored, waiting for an instance (again, after a failure: see available_at)
    )
    WORKING = "working"  # an instance handles it until lease_until
    DONE = "done"  # handled (or a repeat delivery); the payload is gone
    FAILED = "failed"  # given up; the member was told; kept until retention


class InboxUpdate(SQLModel, table=True):
    """Every Telegram update, stored before it is acknowledged and handled at least once.

    The row outlives the payload: its id answers "seen before?" for repeat deliveries.
    """

    update_id: int = _telegram_id(primary_key=True, sa_column_kwargs={"autoincrement": False})
    user_id: int | None = _telegram_id(default=None, index=True)
    chat_id: int | None = _telegram_id(default=None, index=True)
    payload: str = ""  # the update as Telegram sent it; emptied once handled
    state: InboxState = Field(default=InboxState.DONE, max_length=16, index=True)
    owner: str | None = Field(default=None, max_length=64)
    lease_until: datetime | None = _time(default=None)
    available_at: datetime | None = _time(default=None)
    attempts: int = 0
    received_at: datetime = _time(default_factory=utcnow, index=True)
