"""Members: the minimum the service keeps about the people who write to it."""

from __future__ import annotations

import re
from datetime import datetime

from sqlalchemy.exc import IntegrityError
from sqlmodel import Session

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


def touch_member(
    *,
    session: Session,
    user_id: int,
    first_name: str,
    language_code: str | None,
    now: datetime | None = None,
) -> Member:
    """The member, created on first contact; keeps only the first name and the language."""
    now = now or utcnow()
    member = session.get(Member, user_id)
    if member is None:
        member = Member(
            id=user_id,
            first_name=one_line(first_name),
            language=language_for(language_code),
            language_source=LanguageSource.TELEGRAM,
            created_at=now,
            last_seen_at=now,
        )
    else:
        member.first_name = one_line(first_name)
        member.last_seen_at = now
        member.unreachable = False
    session.add(member)
    try:
        session.commit()
    except IntegrityError:  # two first messages at once: the other one created it
        session.rollback()
        member = session.get(Member, user_id) or member
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
