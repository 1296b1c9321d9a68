"""Handlers through ``Application.process_update``: no polling, the bot talks to the loopback."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest
from conftest import services_with_threads
from telegram import Update
from telegram.ext import Application

from bot.app import MEMBER_COMMANDS, Services, build_application
from bot.config import Settings
from bot.loopback import LoopbackBotApi
from bot.services import conversation
from handlers import question
from knowledge.loading import Routing

_update_ids = iter(range(1, 10_000))


def message_update(
    api: LoopbackBotApi, bot: Any, user_id: int, text: str, *, language: str = "sv"
) -> Update:
    """An update as Telegram would send it; the person is made known to the loopback server."""
    api.person(user_id, "Ana", language_code=language)
    entities = (
        [{"type": "bot_command", "offset": 0, "length": len(text.split()[0])}]
        if text.startswith("/")
        else []
    )
    return Update.de_json(
        {
            "update_id": next(_update_ids),
            "message": {
                "message_id": next(_update_ids),
                "date": int(datetime.now(UTC).timestamp()),
                "chat": {"id": user_id, "type": "private", "first_name": "Ana"},
                "from": {
                    "id": user_id,
                    "is_bot": False,
                    "first_name": "Ana",
                    "language_code": language,
                },
                "text": text,
                "entities": entities,
            },
        },
        bot,
    )


@pytest.fixture
async def app(
    settings: Settings, services: Services
) -> AsyncIterator[Application[Any, Any, Any, Any, Any, Any]]:
    application = build_application(settings, services)
    async with application:
        yield application


async def test_every_command_in_the_menu_has_a_handler(
    app: Application[Any, Any, Any, Any, Any, Any],
) -> None:
    handled = {
        command
        for handlers in app.handlers.values()
        for handler in handlers
        for command in getattr(handler, "commands", ())
    }
    assert set(MEMBER_COMMANDS) <= handled


async def test_a_question_is_answered_with_buttons(
    app: Application[Any, Any, Any, Any, Any, Any], api: LoopbackBotApi
) -> None:
    await app.process_update(message_update(api, app.bot, 6001, "Hur söker vi LOK-stöd?"))
    reply = api.messages(6001)[-1]
    assert "Skol- och fritidsförvaltningen" in reply["text"]
    labels = [b["text"] for row in reply["reply_markup"]["inline_keyboard"] for b in row]
    # LOK-stöd is one of the most asked: it also comes in easy Swedish.
    assert labels == ["👍 Det hjälpte", "Nej — koppla mig till samordnaren", "📖 Lättläst version"]


async def test_typing_is_shown_while_an_answer_is_slow_to_come(
    settings: Settings,
    shipped_routing: Routing,
    api: LoopbackBotApi,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # With the database work on a thread (PostgreSQL's default): on SQLite it runs on the
    # event loop's thread by default, which then cannot send anything until it is done.
    threaded = services_with_threads(settings, shipped_routing, 1)
    app = build_application(settings, threaded)
    await app.initialize()
    route = conversation.receive_text

    def slow_route(**kwargs: Any) -> Any:
        time.sleep(0.5)
        return route(**kwargs)

    monkeypatch.setattr(conversation, "receive_text", slow_route)
    monkeypatch.setattr(question, "TYPING_AFTER", 0.05)
    try:
        await app.process_update(message_update(api, app.bot, 6001, "Hur söker vi LOK-stöd?"))
    finally:
        await app.shutdown()
        threaded.close()
    [typing] = [a for a in api.chat_actions if a.chat_id == 6001]
    assert typing.action == "typing"
    reply = api.messages(6001)[-1]
    assert "Skol- och fritidsförvaltningen" in reply["text"]


async def test_language_follows_the_client_and_english_articles_are_used(
    app: Application[Any, Any, Any, Any, Any, Any], api: LoopbackBotApi
) -> None:
    await app.process_update(
        message_update(
            api,
            app.bot,
            6002,
            "How do I register our association in the city's register?",
            language="en",
        )
    )
    reply = api.messages(6002)[-1]
    assert reply["text"].startswith("This belongs to")
    assert "Who helps you" in reply["text"]  # the English version of the article
    assert "Vem hjälper er" not in reply["text"]
    assert "Contact:" in reply["text"]


async def test_help_and_mycases_without_cases(
    app: Application[Any, Any, Any, Any, Any, Any], api: LoopbackBotApi
) -> None:
    await app.process_update(message_update(api, app.bot, 6003, "/help"))
    await app.process_update(message_update(api, app.bot, 6003, "/mycases"))
    texts = [m["text"] for m in api.messages(6003)]
    assert "Så använder du Föreningslotsen" in texts[0]
    assert texts[1] == "Du har inga ärenden ännu."


async def test_an_unexpected_error_tells_the_member(
    app: Application[Any, Any, Any, Any, Any, Any],
    api: LoopbackBotApi,
    services: Services,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def broken(*_: object) -> None:
        raise RuntimeError("router exploded")

    monkeypatch.setattr(services.routing.router, "route", broken)
    await app.process_update(message_update(api, app.bot, 6004, "Hur söker vi LOK-stöd?"))
    assert "något gick fel" in api.messages(6004)[-1]["text"]
