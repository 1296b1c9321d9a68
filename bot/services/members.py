"""Members: the minimum the service keeps about the people who write to it."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.exc import IntegrityError
from sqlmodel import Session

from bot.models import Member, utcnow

SUPPORTED_LANGUAGES = ("sv", "en")


def language_for(code: str | None) -> str:
    """The bot's language for a Telegram ``language_code``: English for English, else Swedish."""
    return "en" if code and code.lower().startswith("en") else "sv"


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
            first_name=first_name[:128],
            language=language_for(language_code),
            created_at=now,
            last_seen_at=now,
        )
    else:
        member.first_name = first_name[:128]
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
    if language not in SUPPORTED_LANGUAGES:
        raise ValueError(f"unsupported language {language!r}")
    member = session.get(Member, user_id)
    if member is None:
        return None
    member.language = language
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
