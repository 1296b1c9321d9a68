"""Members: the minimum the service keeps about the people who write to it."""

from __future__ import annotations

import re
from datetime import datetime, timedelta

from sqlalchemy.exc import IntegrityError
from sqlmodel import Session

from bot.db import get_row
from bot.locales import DEFAULT_LANGUAGE
from bot.models import Member, utcnow
from bot.services.languages import LanguageSource
from bot.texts import languages


def language_for(code: str | None) -> str:
    """The bot's language for a Telegram ``language_code`` ("en-GB" → en), else Swedish."""
    primary = (code or "").split("-")[0].split("_")[0].lower()
    return primary if primary in languages() else DEFAULT_LANGUAGE


# Control characters (NUL included: PostgreSQL refuses it) and lone surrogates.
_UNPRINTABLE = re.compile(r"[\x00-\x1f\x7f-\x9f\ud800-\udfff]")


def one_line(name: str, limit: int = 128) -> str:
    """A name as one plain line: it goes into HTML lines (cards, desk posts) split at line ends."""
    return " ".join(_UNPRINTABLE.sub(" ", name).split())[:limit]


# "Last seen" is kept to the hour: writing it on every message would cost a write per message.
LAST_SEEN_PRECISION = timedelta(hours=1)


def touch_member(
    *,
    session: Session,
    user_id: int,
    first_name: str,
    language_code: str | None,
    now: datetime | None = None,
) -> Member:
    """The member, created on first contact; keeps only the first name and the language."""
    member = touched(
        session=session,
        user_id=user_id,
        first_name=first_name,
        language_code=language_code,
        now=now,
    )
    try:
        session.commit()
    except IntegrityError:  # two first messages at once: the other one created it
        session.rollback()
        member = session.get(Member, user_id) or member
    return member


def touched(
    *,
    session: Session,
    user_id: int,
    first_name: str,
    language_code: str | None,
    now: datetime | None = None,
) -> Member:
    """``touch_member`` within the caller's transaction: added or changed, written with the
    caller's next flush (two first messages at once: the second one's commit fails)."""
    now = now or utcnow()
    name = one_line(first_name)
    member = get_row(session, Member, user_id)
    if member is None:
        member = Member(
            id=user_id,
            first_name=name,
            language=language_for(language_code),
            language_source=LanguageSource.TELEGRAM,
            created_at=now,
            last_seen_at=now,
        )
        session.add(member)
        return member
    # Only what changed is written.
    if member.first_name != name:
        member.first_name = name
    if member.unreachable:
        member.unreachable = False
    if now - member.last_seen_at >= LAST_SEEN_PRECISION:
        member.last_seen_at = now
    return member


def set_language(*, session: Session, user_id: int, language: str) -> Member | None:
    """The member chose ``language`` (/language): it is kept, whatever they write later."""
    if language not in languages():
        raise ValueError(f"unsupported language {language!r}")
    member = session.get(Member, user_id)
    if member is None:
        return None
    member.language = language
    member.language_source = LanguageSource.CHOSEN
    session.add(member)
    session.commit()
    return member


def mark_unreachable(*, session: Session, user_id: int) -> None:
    member = session.get(Member, user_id)
    if member is not None:
        member.unreachable = True
        session.add(member)
        session.commit()


def language_of(*, session: Session, user_id: int, fallback: str) -> str:
    member = session.get(Member, user_id)
    return member.language if member is not None else fallback
