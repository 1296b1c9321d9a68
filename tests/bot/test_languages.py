"""The member's language: detected from what they write, kept when they chose it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlmodel import Session

from bot.models import Member
from bot.services import members
from bot.services.languages import LanguageDetector, LanguageSource, observe_language
from bot.texts import languages

LABELLED = Path(__file__).resolve().parents[1] / "data" / "languages.jsonl"


@pytest.fixture(scope="module")
def detector() -> LanguageDetector:
    return LanguageDetector.for_supported_languages()


def test_the_detector_knows_exactly_the_supported_languages(detector: LanguageDetector) -> None:
    assert detector.detect("كيف يمكن لجمعيتنا أن تحجز قاعة رياضية؟") == "ar"
    assert detector.detect("Hur bokar vi träningstider i en idrottshall?") == "sv"
    assert detector.detect("How do we book training times in a sports hall?") == "en"
    assert detector.languages == languages() == ("sv", "ar", "en")
    assert detector.build_seconds is not None


@pytest.mark.parametrize(
    "text", ["ok", "tack!", "LOK-stöd?", "Ja tack", "👍👍👍", "12345 678", ""]
)
def test_short_texts_decide_nothing(detector: LanguageDetector, text: str) -> None:
    assert detector.detect(text) is None


@pytest.mark.parametrize(
    ("text", "language"),
    [
        ("how do we get our association into the föreningsregister", "en"),
        ("whats mångfaldsstöd and who can apply", "en"),
        ("كيف نسجل جمعيتنا في föreningsregistret؟", "ar"),
        ("متى نقدم على verksamhetsbidrag من socialnämnden؟ سمعت إنه بالربيع", "ar"),
    ],
)
def test_a_swedish_name_in_another_language_does_not_make_it_swedish(
    detector: LanguageDetector, text: str, language: str
) -> None:
    assert detector.detect(text) == language


def test_members_questions_in_three_languages_are_told_apart(detector: LanguageDetector) -> None:
    """731 questions from the routing sets (sv, en, ar; some mix in Swedish names)."""
    right = wrong = undecided = 0
    for line in LABELLED.read_text(encoding="utf-8").splitlines():
        item = json.loads(line)
        found = detector.detect(item["text"])
        if found is None:
            undecided += 1
        elif found == item["language"]:
            right += 1
        else:
            wrong += 1
    total = right + wrong + undecided
    assert total == 731
    # A wrong switch answers in a language the member did not write: rare, and never many.
    assert wrong / total <= 0.01, (right, wrong, undecided)
    assert right / total >= 0.95, (right, wrong, undecided)


def add_member(session: Session, user_id: int, language_code: str | None = "sv") -> Member:
    return members.touch_member(
        session=session, user_id=user_id, first_name="Ana", language_code=language_code
    )


def test_telegram_gives_the_first_guess(session: Session) -> None:
    assert add_member(session, 1, "ar").language == "ar"
    assert add_member(session, 2, "en-GB").language == "en"
    assert add_member(session, 3, "de").language == "sv"
    assert add_member(session, 4, None).language == "sv"
    assert session.get(Member, 1).language_source == LanguageSource.TELEGRAM  # type: ignore[union-attr]


def test_writing_another_language_switches_and_is_stored(
    session: Session, detector: LanguageDetector
) -> None:
    add_member(session, 10, "sv")
    member = observe_language(
        session=session, user_id=10, text="كيف نحجز قاعة رياضية لنادينا؟", detector=detector
    )
    assert member is not None and member.language == "ar"
    session.expire_all()
    stored = session.get(Member, 10)
    assert stored is not None
    assert (stored.language, stored.language_source) == ("ar", LanguageSource.DETECTED)


def test_a_short_message_keeps_the_language(session: Session, detector: LanguageDetector) -> None:
    add_member(session, 11, "en")
    member = observe_language(session=session, user_id=11, text="tack!", detector=detector)
    assert member is not None and member.language == "en"


def test_a_chosen_language_is_kept_against_detection(
    session: Session, detector: LanguageDetector
) -> None:
    add_member(session, 12, "sv")
    members.set_language(session=session, user_id=12, language="en")
    member = observe_language(
        session=session,
        user_id=12,
        text="Hur bokar vi träningstider i en idrottshall?",
        detector=detector,
    )
    assert member is not None and member.language == "en"
    session.expire_all()
    stored = session.get(Member, 12)
    assert stored is not None
    assert (stored.language, stored.language_source) == ("en", LanguageSource.CHOSEN)


def test_only_supported_languages_can_be_chosen(session: Session) -> None:
    add_member(session, 13, "sv")
    with pytest.raises(ValueError, match="unsupported language"):
        members.set_language(session=session, user_id=13, language="de")
    assert members.set_language(session=session, user_id=13, language="ar") is not None
