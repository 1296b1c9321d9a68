"""The association register's services: organisation numbers, registration, joins, search."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlmodel import Session, select

from bot.models import Association, AssociationMember, Subscription
from bot.services import associations, members
from bot.services.associations import OrgNumberInvalid, normalise_org_number

NOW = datetime(2026, 11, 25, 9, 0, tzinfo=UTC)


@pytest.mark.parametrize("number", ["212000-1157", "2120000142", "556036-0793", " 212000 1157 "])
def test_valid_organisation_numbers(number: str) -> None:
    normalised = normalise_org_number(number)
    assert len(normalised) == 11 and normalised[6] == "-"


@pytest.mark.parametrize(
    ("number", "reason"),
    [
        ("12345", "format"),
        ("abcdef-ghij", "format"),
        ("850101-1234", "third_digit"),
        ("212000-1158", "check_digit"),
    ],
)
def test_invalid_organisation_numbers_say_what_is_wrong(number: str, reason: str) -> None:
    with pytest.raises(OrgNumberInvalid) as invalid:
        normalise_org_number(number)
    assert invalid.value.reason == reason


def register(session: Session, member_id: int, name: str, number: str, category: str) -> str:
    members.touch_member(session=session, user_id=member_id, first_name="A", language_code="sv")
    associations.start(session=session, member_id=member_id)
    prompt = associations.answer(session=session, member_id=member_id, text=name)
    if prompt.step == "similar":
        prompt = associations.answer(session=session, member_id=member_id, choice="no")
    prompt = associations.answer(session=session, member_id=member_id, text=number)
    if prompt.step != "category":
        return prompt.key
    associations.answer(session=session, member_id=member_id, choice=category)
    associations.answer(session=session, member_id=member_id, text="45")
    associations.answer(session=session, member_id=member_id, text="Ordförande")
    associations.answer(session=session, member_id=member_id, text="kören@example.se")
    associations.answer(session=session, member_id=member_id, choice="yes")
    return associations.answer(session=session, member_id=member_id, choice="yes").key


def test_a_whole_registration_subscribes_and_links_the_contact(session: Session) -> None:
    assert register(session, 1, "Helsingborgs Kammarkör", "212000-1157", "culture") == (
        "register_done"
    )
    entry = session.exec(select(Association)).one()
    assert entry.category.value == "culture" and entry.listed and entry.email == "kören@example.se"
    assert associations.category_of(session=session, member_id=1) == "culture"
    assert {s.topic for s in session.exec(select(Subscription))} == set(associations.TOPICS)
    assert not associations.active(session=session, member_id=1)


def test_a_wrong_number_is_explained_and_the_step_repeats(session: Session) -> None:
    members.touch_member(session=session, user_id=2, first_name="B", language_code="sv")
    associations.start(session=session, member_id=2)
    associations.answer(session=session, member_id=2, text="IK Stjärnan")
    wrong = associations.answer(session=session, member_id=2, text="212000-1158")
    assert (wrong.step, wrong.key) == ("org_number", "register_org_check_digit")
    right = associations.answer(session=session, member_id=2, text="212000-1157")
    assert right.step == "category"


def test_progress_survives_a_new_session_like_a_restart(engine: object) -> None:
    with Session(engine) as first:  # type: ignore[call-overload]
        members.touch_member(session=first, user_id=3, first_name="C", language_code="sv")
        associations.start(session=first, member_id=3)
        associations.answer(session=first, member_id=3, text="Seniorerna i Råå")
    with Session(engine) as second:  # type: ignore[call-overload]
        prompt = associations.answer(session=second, member_id=3, text="212000-0142")
        assert prompt.step == "category"


def test_the_same_number_or_a_near_name_asks_to_join_and_the_contact_decides(
    session: Session,
) -> None:
    register(session, 1, "Helsingborgs Kammarkör", "212000-1157", "culture")
    members.touch_member(session=session, user_id=9, first_name="Nils", language_code="sv")
    associations.start(session=session, member_id=9)
    similar = associations.answer(session=session, member_id=9, text="Helsingborgs Kammarkor")
    assert similar.step == "similar" and similar.values["name"] == "Helsingborgs Kammarkör"
    joined = associations.answer(session=session, member_id=9, choice="yes")
    assert joined.step == "joined" and joined.values["contact_id"] == 1
    with pytest.raises(PermissionError):
        associations.decide_join(
            session=session, link_id=joined.values["link_id"], contact_id=9, approve=True
        )
    associations.decide_join(
        session=session, link_id=joined.values["link_id"], contact_id=1, approve=True
    )
    assert associations.category_of(session=session, member_id=9) == "culture"
    assert len(session.exec(select(AssociationMember)).all()) == 2


def test_find_export_and_yearly_confirmation(session: Session) -> None:
    register(session, 1, "Helsingborgs Kammarkör", "212000-1157", "culture")
    register(session, 2, "IK Stjärnan", "212000-0142", "sports")
    assert [a.name for a in associations.find(session=session, query="kör")] == [
        "Helsingborgs Kammarkör"
    ]
    assert [a.name for a in associations.find(session=session, category="sports")] == [
        "IK Stjärnan"
    ]
    csv_text = associations.export_csv(session=session)
    assert csv_text.splitlines()[0].startswith("name,org_number,category")
    assert "212000-0142" in csv_text
    later = datetime.now(UTC) + timedelta(days=366)
    due = associations.due_for_confirmation(session=session, now=later)
    assert {a.name for a in due} == {"Helsingborgs Kammarkör", "IK Stjärnan"}
    for entry in due:
        assert entry.id is not None
        associations.mark_reminded(session=session, association_id=entry.id, now=later)
    assert associations.due_for_confirmation(session=session, now=later) == []
    _, found = associations.search(session=session, now=datetime.now(UTC) + timedelta(days=430))
    assert all(stale for _, stale in found)


def test_a_button_from_an_earlier_step_answers_nothing(session: Session) -> None:
    members.touch_member(session=session, user_id=4, first_name="D", language_code="sv")
    associations.start(session=session, member_id=4)
    associations.answer(session=session, member_id=4, text="Råå Boule")
    associations.answer(session=session, member_id=4, text="212000-1157")
    stale = associations.answer(session=session, member_id=4, choice="no", button_step="listed")
    assert stale.step == "category"  # asked again, nothing stored
    assert (
        associations.answer(
            session=session, member_id=4, choice="sports", button_step="category"
        ).step
        == "members_count"
    )


def test_an_abandoned_registration_lets_questions_through(session: Session) -> None:
    members.touch_member(session=session, user_id=5, first_name="E", language_code="sv")
    associations.start(session=session, member_id=5, now=NOW)
    assert associations.active(session=session, member_id=5, now=NOW + timedelta(minutes=5))
    assert not associations.active(session=session, member_id=5, now=NOW + timedelta(hours=1))


def test_the_contact_registering_again_updates_the_entry(session: Session) -> None:
    register(session, 1, "Helsingborgs Kammarkör", "212000-1157", "culture")
    associations.start(session=session, member_id=1)
    associations.answer(session=session, member_id=1, text="Helsingborgs Kammarkör")
    prompt = associations.answer(session=session, member_id=1, choice="yes")  # "that's us"
    assert prompt.step == "category"
    associations.answer(session=session, member_id=1, choice="culture")
    associations.answer(session=session, member_id=1, text="60")
    associations.answer(session=session, member_id=1, text="Ordförande")
    associations.answer(session=session, member_id=1, choice="skip")
    associations.answer(session=session, member_id=1, choice="no")
    done = associations.answer(session=session, member_id=1, choice="no")
    assert done.key == "register_updated"
    entry = session.exec(select(Association)).one()
    assert entry.members_count == 60 and not entry.listed
    assert len(session.exec(select(AssociationMember)).all()) == 1
