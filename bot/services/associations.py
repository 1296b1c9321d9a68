"""The association register: registration, members, search, yearly confirmation, export.

The guided registration keeps its progress in ``ConversationState`` (the database), so a
restart or a second instance between two answers loses nothing.
"""

from __future__ import annotations

import csv
import functools
import io
import json
import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from rapidfuzz import fuzz, process
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from bot.models import (
    Association,
    AssociationCategory,
    AssociationMember,
    ConversationState,
    Member,
    Subscription,
    utcnow,
)

TOPICS = ("dialogmoten", "utbildning", "nyheter")
STEPS = (
    "name",
    "similar",
    "org_number",
    "category",
    "members_count",
    "role",
    "contact",
    "listed",
    "subscribe",
)
_FLOW = "register"
_REMIND_AFTER = timedelta(days=365)
STALE_AFTER = timedelta(days=14 * 30)


class OrgNumberInvalid(ValueError):
    """``reason``: format, third_digit or check_digit."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


def normalise_org_number(text: str) -> str:
    """``NNNNNN-NNNN`` if ``text`` is a valid Swedish organisation number, else raise."""
    digits = re.sub(r"[\s-]", "", text.strip())
    if not re.fullmatch(r"\d{10}", digits):
        raise OrgNumberInvalid("format")
    if int(digits[2]) < 2:
        raise OrgNumberInvalid("third_digit")
    total = 0
    for index, digit in enumerate(int(d) for d in digits):
        value = digit * (2 if index % 2 == 0 else 1)
        total += value - 9 if value > 9 else value
    if total % 10:
        raise OrgNumberInvalid("check_digit")
    return f"{digits[:6]}-{digits[6:]}"


@dataclass
class Prompt:
    """What the bot says next in the registration: a text key, its values, buttons."""

    step: str
    key: str
    values: dict[str, Any] = field(default_factory=dict)
    buttons: list[tuple[str, str]] = field(default_factory=list)  # (text key or label, data)
    done: bool = False


def _state(session: Session, member_id: int) -> ConversationState | None:
    state = session.get(ConversationState, member_id)
    return state if state is not None and state.flow == _FLOW else None


# A registration left this long is abandoned: the member's messages are questions again.
ABANDONED_AFTER = timedelta(minutes=30)


def active(*, session: Session, member_id: int, now: datetime | None = None) -> bool:
    """Whether the member is registering (asked for every message: one statement built once;
    the state is loaded only when there is one)."""
    found = session.connection().execute(_state_statement(), {"member": member_id}).scalar()
    if found != _FLOW:
        return False
    state = _state(session, member_id)
    if state is None:
        return False
    if (now or utcnow()) - state.updated_at > ABANDONED_AFTER:
        session.delete(state)
        session.commit()
        return False
    return True


@functools.cache
def _state_statement() -> sa.Select[tuple[Any]]:
    table: sa.Table = ConversationState.__table__  # type: ignore[attr-defined]
    return sa.select(table.c.flow).where(table.c.member_id == sa.bindparam("member"))


def start(*, session: Session, member_id: int, now: datetime | None = None) -> Prompt:
    state = session.get(ConversationState, member_id) or ConversationState(
        member_id=member_id, flow=_FLOW, step="name"
    )
    state.flow, state.step, state.data, state.updated_at = _FLOW, "name", "{}", now or utcnow()
    session.add(state)
    session.commit()
    return Prompt("name", "register_name")


def cancel(*, session: Session, member_id: int) -> bool:
    state = _state(session, member_id)
    if state is None:
        return False
    session.delete(state)
    session.commit()
    return True


def _save(session: Session, state: ConversationState, step: str, data: dict[str, Any]) -> None:
    state.step = step
    state.data = json.dumps(data, ensure_ascii=False)
    state.updated_at = utcnow()
    session.add(state)
    session.commit()


_CATEGORY_BUTTONS = [
    (f"category_{c.value}", f"rg:category:{c.value}") for c in AssociationCategory
]
_YES_NO = [("button_yes", "rg:{step}:yes"), ("button_no", "rg:{step}:no")]


def _ask(step: str, **values: Any) -> Prompt:
    buttons: list[tuple[str, str]] = []
    if step == "category":
        buttons = list(_CATEGORY_BUTTONS)
    elif step in ("listed", "subscribe", "similar"):
        buttons = [(label, data.format(step=step)) for label, data in _YES_NO]
    elif step == "contact":
        buttons = [("button_skip", "rg:contact:skip")]
    return Prompt(step, f"register_{step}", values, buttons)


def answer(
    *,
    session: Session,
    member_id: int,
    text: str | None = None,
    choice: str | None = None,
    button_step: str | None = None,
) -> Prompt:
    """The member's answer to the current step (typed ``text`` or a button ``choice``).

    A button from an earlier step (``button_step`` differs) answers nothing: the current
    question is asked again.
    """
    state = _state(session, member_id)
    if state is None:
        return Prompt("none", "register_not_started")
    data: dict[str, Any] = json.loads(state.data or "{}")
    step = state.step
    if button_step is not None and button_step != step:
        return _ask(step, name=data.get("similar_name", data.get("name", "")))
    value = (text or "").strip()
    if step == "name":
        if not 2 <= len(value) <= 200:
            return _ask("name", problem=True) if value else Prompt("name", "register_name")
        data["name"] = value
        similar = _similar_name(session, value)
        if similar is not None:
            data["similar_id"] = similar.id
            data["similar_name"] = similar.name
            _save(session, state, "similar", data)
            return _ask("similar", name=similar.name)
        _save(session, state, "org_number", data)
        return _ask("org_number")
    if step == "similar":
        if choice == "yes":
            return _join_instead(session, state, member_id, int(data["similar_id"]))
        if choice == "no":
            _save(session, state, "org_number", data)
            return _ask("org_number")
        return _ask("similar", name=data.get("name", ""))
    if step == "org_number":
        try:
            number = normalise_org_number(value)
        except OrgNumberInvalid as invalid:
            return Prompt("org_number", f"register_org_{invalid.reason}", {"value": value})
        existing = session.exec(
            select(Association).where(Association.org_number == number)
        ).first()
        if existing is not None and existing.id is not None:
            return _join_instead(session, state, member_id, existing.id)
        data["org_number"] = number
        _save(session, state, "category", data)
        return _ask("category")
    if step == "category":
        if choice not in {c.value for c in AssociationCategory}:
            return _ask("category")
        data["category"] = choice
        _save(session, state, "members_count", data)
        return _ask("members_count")
    if step == "members_count":
        digits = value.replace(" ", "")
        if not digits.isdigit() or int(digits) > 1_000_000:
            return Prompt("members_count", "register_members_count_problem")
        data["members_count"] = int(digits)
        _save(session, state, "role", data)
        return _ask("role")
    if step == "role":
        if not 2 <= len(value) <= 100:
            return _ask("role")
        data["role"] = value
        _save(session, state, "contact", data)
        return _ask("contact")
    if step == "contact":
        if choice != "skip":
            email = re.fullmatch(r"[\w.+-]+@[\w-]+\.[\w.-]+", value)
            phone = re.fullmatch(r"\+?[\d\s-]{7,20}", value)
            if not (email or phone):
                return Prompt(
                    "contact", "register_contact_problem", buttons=_ask("contact").buttons
                )
            data["email" if email else "phone"] = value
        _save(session, state, "listed", data)
        return _ask("listed")
    if step == "listed":
        if choice not in ("yes", "no"):
            return _ask("listed")
        data["listed"] = choice == "yes"
        _save(session, state, "subscribe", data)
        return _ask("subscribe")
    if step == "subscribe":
        if choice not in ("yes", "no"):
            return _ask("subscribe")
        data["subscribe"] = choice == "yes"
        return _finish(session, state, member_id, data)
    return Prompt(step, "register_not_started")


def _similar_name(session: Session, name: str) -> Association | None:
    associations = list(session.exec(select(Association)))
    if not associations:
        return None
    found = process.extractOne(
        name.casefold(),
        [a.name.casefold() for a in associations],
        scorer=fuzz.ratio,
        score_cutoff=88,
    )
    return associations[found[2]] if found else None


def _finish(
    session: Session, state: ConversationState, member_id: int, data: dict[str, Any]
) -> Prompt:
    if data.get("update_id"):
        return _update_entry(session, state, member_id, data)
    association = Association(
        name=data["name"],
        org_number=data["org_number"],
        category=AssociationCategory(data["category"]),
        members_count=data["members_count"],
        contact_member_id=member_id,
        email=data.get("email"),
        phone=data.get("phone"),
        listed=bool(data.get("listed")),
    )
    session.add(association)
    try:
        session.flush()
    except IntegrityError:  # registered by someone else between two answers
        session.rollback()
        existing = session.exec(
            select(Association).where(Association.org_number == data["org_number"])
        ).one()
        assert existing.id is not None
        return _join_instead(session, state, member_id, existing.id)
    assert association.id is not None
    session.add(
        AssociationMember(
            association_id=association.id, member_id=member_id, role=data["role"], approved=True
        )
    )
    if data.get("subscribe"):
        for topic in TOPICS:
            _subscribe(session, member_id, topic)
    session.delete(state)
    session.commit()
    return Prompt("done", "register_done", {"name": association.name}, done=True)


def _update_entry(
    session: Session, state: ConversationState, member_id: int, data: dict[str, Any]
) -> Prompt:
    association = session.get(Association, int(data["update_id"]))
    assert association is not None
    association.category = AssociationCategory(data["category"])
    association.members_count = data["members_count"]
    association.email = data.get("email", association.email)
    association.phone = data.get("phone", association.phone)
    association.listed = bool(data.get("listed"))
    association.confirmed_at = utcnow()
    session.add(association)
    if data.get("subscribe"):
        for topic in TOPICS:
            _subscribe(session, member_id, topic)
    session.delete(state)
    session.commit()
    return Prompt("done", "register_updated", {"name": association.name}, done=True)


def _join_instead(
    session: Session, state: ConversationState, member_id: int, association_id: int
) -> Prompt:
    association = session.get(Association, association_id)
    assert association is not None
    if association.contact_member_id == member_id:
        # The contact registers their own association again: that is an update of the entry.
        data: dict[str, Any] = json.loads(state.data or "{}")
        data.update(
            update_id=association.id,
            org_number=association.org_number,
            name=data.get("name") or association.name,
        )
        _save(session, state, "category", data)
        return _ask("category")
    link = session.exec(
        select(AssociationMember).where(
            AssociationMember.association_id == association_id,
            AssociationMember.member_id == member_id,
        )
    ).first()
    if link is None:
        link = AssociationMember(
            association_id=association_id, member_id=member_id, approved=False
        )
        session.add(link)
    session.delete(state)
    session.commit()
    return Prompt(
        "joined",
        "register_join_requested",
        {
            "name": association.name,
            "link_id": link.id,
            "contact_id": association.contact_member_id,
        },
        done=True,
    )


def decide_join(
    *, session: Session, link_id: int, contact_id: int, approve: bool
) -> tuple[AssociationMember, Association]:
    """The association's contact approves or refuses a member's request to join."""
    link = session.get(AssociationMember, link_id)
    if link is None:
        raise PermissionError("stale")
    association = session.get(Association, link.association_id)
    if association is None or association.contact_member_id != contact_id:
        raise PermissionError("not_yours")
    if approve:
        link.approved = True
        session.add(link)
    else:
        session.delete(link)
    session.commit()
    return link, association


def association_of(*, session: Session, member_id: int) -> Association | None:
    """The member's association (approved membership), if any."""
    link = session.exec(
        select(AssociationMember).where(
            AssociationMember.member_id == member_id, col(AssociationMember.approved).is_(True)
        )
    ).first()
    return session.get(Association, link.association_id) if link else None


def category_of(*, session: Session, member_id: int) -> str | None:
    """The category of the member's association (asked for every question the router
    weighs): one statement, built once."""
    category = session.connection().execute(_category_statement(), {"member": member_id}).scalar()
    return None if category is None else AssociationCategory(category).value


@functools.cache
def _category_statement() -> sa.Select[tuple[Any]]:
    links: sa.Table = AssociationMember.__table__  # type: ignore[attr-defined]
    table: sa.Table = Association.__table__  # type: ignore[attr-defined]
    return (
        sa.select(table.c.category)
        .join(links, links.c.association_id == table.c.id)
        .where(links.c.member_id == sa.bindparam("member"), links.c.approved.is_(True))
        .order_by(links.c.id)
        .limit(1)
    )


def _subscribe(session: Session, member_id: int, topic: str) -> None:
    exists = session.exec(
        select(Subscription).where(
            Subscription.member_id == member_id, Subscription.topic == topic
        )
    ).first()
    if exists is None:
        session.add(Subscription(member_id=member_id, topic=topic))


def set_subscription(*, session: Session, member_id: int, topic: str, on: bool) -> None:
    if topic not in TOPICS:
        raise ValueError(topic)
    if on:
        _subscribe(session, member_id, topic)
    else:
        for row in session.exec(
            select(Subscription).where(
                Subscription.member_id == member_id, Subscription.topic == topic
            )
        ):
            session.delete(row)
    session.commit()


def subscriptions_of(*, session: Session, member_id: int) -> set[str]:
    return {
        s.topic
        for s in session.exec(select(Subscription).where(Subscription.member_id == member_id))
    }


def find(
    *, session: Session, query: str = "", category: str | None = None, limit: int = 10
) -> list[Association]:
    """Listed associations by name, category or description (fuzzy)."""
    listed = [
        a for a in session.exec(select(Association).where(col(Association.listed).is_(True)))
    ]
    if category:
        listed = [a for a in listed if a.category.value == category]
    if not query.strip():
        return sorted(listed, key=lambda a: a.name.casefold())[:limit]
    texts = [f"{a.name} {a.category.value} {a.description}".casefold() for a in listed]
    found = process.extract(
        query.casefold(), texts, scorer=fuzz.WRatio, score_cutoff=60, limit=limit
    )
    return [listed[index] for _, _, index in found]


def search(
    *, session: Session, query: str = "", now: datetime | None = None
) -> tuple[dict[str, int], list[tuple[Association, bool]]]:
    """For the desk: counts by category, and matching entries with their stale flag."""
    now = now or utcnow()
    everything = list(session.exec(select(Association)))
    counts: dict[str, int] = {}
    for association in everything:
        counts[association.category.value] = counts.get(association.category.value, 0) + 1
    matching = everything
    if query.strip():
        texts = [f"{a.name} {a.org_number}".casefold() for a in everything]
        hits = process.extract(
            query.casefold(), texts, scorer=fuzz.WRatio, score_cutoff=60, limit=20
        )
        matching = [everything[index] for _, _, index in hits]
    return counts, [(a, now - a.confirmed_at > STALE_AFTER) for a in matching[:20]]


def export_csv(*, session: Session) -> str:
    """Every entry as CSV for the city's own systems."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(
        [
            "name",
            "org_number",
            "category",
            "members_count",
            "email",
            "phone",
            "listed",
            "created_at",
            "confirmed_at",
        ]
    )
    for a in session.exec(select(Association).order_by(col(Association.name))):
        writer.writerow(
            [
                a.name,
                a.org_number,
                a.category.value,
                a.members_count,
                a.email or "",
                a.phone or "",
                a.listed,
                a.created_at.isoformat(),
                a.confirmed_at.isoformat(),
            ]
        )
    return buffer.getvalue()


def due_for_confirmation(*, session: Session, now: datetime) -> list[Association]:
    """Entries not confirmed for a year and not reminded since."""
    due = []
    for a in session.exec(select(Association)):
        if now - a.confirmed_at >= _REMIND_AFTER and (
            a.reminded_at is None or a.reminded_at < a.confirmed_at
        ):
            due.append(a)
    return due


def mark_reminded(*, session: Session, association_id: int, now: datetime) -> None:
    association = session.get(Association, association_id)
    if association is not None:
        association.reminded_at = now
        session.add(association)
        session.commit()


def confirm(
    *, session: Session, association_id: int, member_id: int, now: datetime | None = None
) -> Association:
    association = session.get(Association, association_id)
    if association is None or association.contact_member_id != member_id:
        raise PermissionError("not_yours")
    association.confirmed_at = now or utcnow()
    session.add(association)
    session.commit()
    return association


def member_name(*, session: Session, member_id: int) -> str:
    member = session.get(Member, member_id)
    return member.first_name if member else ""
