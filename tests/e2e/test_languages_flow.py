"""End to end: members served in their own language, and easy Swedish on a button.

The real bot against the loopback Bot API server; a test acts as a member and asserts what the
member sees and what the database holds.
"""

from __future__ import annotations

import asyncio
import re
from typing import Any

from conftest import running_bot
from sqlmodel import Session, select

from bot.app import Services
from bot.config import Settings
from bot.locales import LOCALES_DIR
from bot.loopback import LoopbackBotApi
from bot.models import Case, Member, Question
from bot.services import members
from bot.services.languages import LanguageSource
from bot.texts import RLM, locale, text
from handlers.desk import card_text

ARABIC = re.compile(r"[\u0600-\u06ff]")


def buttons(message: dict[str, Any]) -> list[tuple[str, str]]:
    rows = message.get("reply_markup", {}).get("inline_keyboard", [])
    return [(button["text"], button.get("callback_data", "")) for row in rows for button in row]


def plain(key: str, language: str, /, **values: object) -> str:
    """A catalogue text as the member reads it (without the HTML tags)."""
    return re.sub(r"<[^>]+>", "", text(key, language, **values))


def db(services: Services) -> Session:
    return Session(services.engine, expire_on_commit=False)


async def test_language_offers_exactly_the_locale_files_and_the_choice_is_kept(
    api: LoopbackBotApi, settings: Settings, services: Services
) -> None:
    ana = api.person(7001, "Ana", language_code="sv")
    codes = sorted(path.stem for path in LOCALES_DIR.glob("*.toml"))
    async with running_bot(settings, services):
        offer = await ana.ask("/language", timeout=10)
        shown = buttons(offer)
        assert sorted(data.removeprefix("lang:") for _, data in shown) == codes
        assert {label for label, _ in shown} == {locale(code).name for code in codes}
        assert ("العربية", "lang:ar") in shown

        query = await ana.press(offer, "English")
        await api.wait_for_callback_answer(query["id"], timeout=10)
        assert await _edited(api, ana.chat_id, offer["message_id"]) == plain("language_set", "en")

        # She writes Swedish, but she chose English: the answer is in English.
        reply = await ana.ask("Hur bokar vi träningstider i en idrottshall?", timeout=10)
        assert reply["text"].startswith("This belongs to")
        assert ("👍 That helped", f"fb:{_last_question(services, ana.id)}:y") in buttons(reply)
    with db(services) as session:
        member = session.get(Member, ana.id)
        assert member is not None
        assert (member.language, member.language_source) == ("en", LanguageSource.CHOSEN)


async def _edited(api: LoopbackBotApi, chat_id: int, message_id: int) -> str:
    """The message's text once the bot has edited it (the edit follows the button's answer)."""
    for _ in range(100):
        versions = api.history(chat_id, message_id)
        if len(versions) > 1:
            return str(versions[-1]["text"])
        await asyncio.sleep(0.05)
    raise AssertionError("the message was not edited")


def _last_question(services: Services, member_id: int) -> int:
    with db(services) as session:
        found = session.exec(
            select(Question).where(Question.member_id == member_id).order_by(Question.id.desc())  # type: ignore[union-attr]
        ).first()
        assert found is not None and found.id is not None
        return found.id


async def test_a_member_who_writes_arabic_gets_arabic_replies(
    api: LoopbackBotApi, settings: Settings, services: Services
) -> None:
    sami = api.person(7002, "Sami", language_code="sv")  # a Swedish Telegram client
    async with running_bot(settings, services):
        reply = await sami.ask("أريد التحدث مع شخص من البلدية بخصوص جمعيتنا", timeout=10)
        assert ARABIC.search(reply["text"]), reply["text"]
        assert all(line.startswith(RLM) for line in reply["text"].split("\n") if line)
        help_text = await sami.ask("/help", timeout=10)
        assert help_text["text"].split("\n")[0] == plain("help", "ar").split("\n")[0]
    with db(services) as session:
        member = session.get(Member, sami.id)
        assert member is not None
        assert (member.language, member.language_source) == ("ar", LanguageSource.DETECTED)
        # Whatever the router made of it, what the bot said came in Arabic.
        cases = session.exec(select(Case).where(Case.member_id == sami.id)).all()
        if cases:
            assert cases[0].reference and cases[0].reference in reply["text"]


async def test_arabic_members_get_the_arabic_article_or_another_with_a_note(
    api: LoopbackBotApi, settings: Settings, services: Services
) -> None:
    lina = api.person(7003, "Lina", language_code="ar")
    with db(services) as session:  # she chose Arabic: her Swedish questions get Arabic replies
        members.touch_member(
            session=session, user_id=lina.id, first_name="Lina", language_code="ar"
        )
        members.set_language(session=session, user_id=lina.id, language="ar")
    async with running_bot(settings, services):
        hall = await lina.ask("Hur bokar vi träningstider i en idrottshall?", timeout=10)
        arabic_article = services.routing.knowledge.articles["boka-idrottshall-ar"]
        first_line = arabic_article.body.split("\n")[0]
        assert first_line[:40] in hall["text"]
        assert plain("button_helped", "ar") in [label for label, _ in buttons(hall)]
        assert plain("article_other_language", "ar", language="x")[:20] not in hall["text"]

        permit = await lina.ask("Behöver vi bygglov för en tillfällig läktare?", timeout=10)
        assert "bygglov-ar" not in services.routing.knowledge.articles
        english_article = services.routing.knowledge.articles["bygglov-en"]
        note = plain("article_other_language", "ar", language=locale("ar").names["en"])
        assert note in permit["text"]
        assert english_article.body.split("\n")[0][:40] in permit["text"]


async def test_easy_swedish_on_a_button_under_a_swedish_answer(
    api: LoopbackBotApi, settings: Settings, services: Services
) -> None:
    ana = api.person(7004, "Ana", language_code="sv")
    eve = api.person(7005, "Eve", language_code="sv")
    async with running_bot(settings, services):
        answer = await ana.ask("Hur bokar vi träningstider i en idrottshall?", timeout=10)
        question_id = _last_question(services, ana.id)
        assert ("📖 Lättläst version", f"ll:{question_id}") in buttons(answer)

        since = api.cursor()
        await ana.press(answer, "📖 Lättläst version")
        easy = await api.wait_for_message(ana.chat_id, since=since, timeout=10)
        easy_article = services.routing.knowledge.easy_read_of("boka-idrottshall")
        assert easy_article is not None
        assert easy["text"].startswith(f"📖 Lättläst: {easy_article.meta.title}")
        assert easy_article.body.split("\n")[0] in easy["text"]

        # An English answer (no Swedish article shown) offers no easy Swedish.
        bo = api.person(7006, "Bo", language_code="en")
        english = await bo.ask("How do we book training times in a sports hall?", timeout=10)
        assert not any(data.startswith("ll:") for _, data in buttons(english))

        # Forged, stale or someone else's: refused, nothing sent.
        own = await eve.ask("Hej!", timeout=10)
        for data, expected in (
            (f"ll:{question_id}", "någon annans"),
            ("ll:999999", "gäller inte längre"),
            ("ll:" + "9" * 40, "gäller inte längre"),
        ):
            before = len(api.messages(eve.id))
            query = await eve.press_data(own["message_id"], eve.chat_id, data)
            refusal = await api.wait_for_callback_answer(query["id"], timeout=10)
            assert refusal.text and expected in refusal.text
            assert len(api.messages(eve.id)) == before


async def test_the_case_card_tells_the_coordinator_the_members_language(
    services: Services,
) -> None:
    with db(services) as session:
        members.touch_member(session=session, user_id=7010, first_name="Sami", language_code="ar")
        case = Case(
            member_id=7010,
            chat_id=7010,
            question="كيف نسجل جمعيتنا؟",
            due_at=services.clock(),
            reference="F-2026-0901",
        )
        session.add(case)
        session.commit()
        session.refresh(case)
    card = card_text(services, case, "Sami", "ar")
    assert "språk: arabiska (ar)" in card
    assert "språk: svenska (sv)" in card_text(services, case, "Ana", "sv")
