"""The loopback Bot API, driven by the real python-telegram-bot as the bot will be."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import time
from collections.abc import AsyncIterator, Iterable
from typing import Any

import httpx
import pytest
import telegram
from aiohttp import web
from telegram import InlineKeyboardButton, InlineKeyboardMarkup, Update
from telegram.error import (
    BadRequest,
    Conflict,
    EndPointNotFound,
    Forbidden,
    InvalidToken,
    RetryAfter,
    TimedOut,
)
from telegram.ext import (
    Application,
    ApplicationBuilder,
    BaseHandler,
    CallbackQueryHandler,
    CommandHandler,
    ContextTypes,
    MessageHandler,
    filters,
)

from bot.loopback import LoopbackBotApi, LoopbackError, parse_html

TOKEN = "424242:AAE_test-token"


@pytest.fixture
async def api() -> AsyncIterator[LoopbackBotApi]:
    async with LoopbackBotApi(TOKEN) as server:
        yield server


@pytest.fixture
async def bot(api: LoopbackBotApi) -> AsyncIterator[telegram.Bot]:
    client = telegram.Bot(api.token, base_url=api.base_url, base_file_url=api.base_file_url)
    async with client:
        yield client


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextlib.asynccontextmanager
async def running_app(
    api: LoopbackBotApi, handlers: Iterable[BaseHandler[Any, Any, Any]], webhook_port: int = 0
) -> AsyncIterator[Application[Any, Any, Any, Any, Any, Any]]:
    app = (
        ApplicationBuilder()
        .token(api.token)
        .base_url(api.base_url)
        .base_file_url(api.base_file_url)
        .build()
    )
    for handler in handlers:
        app.add_handler(handler)
    await app.initialize()
    await app.start()
    assert app.updater is not None
    if webhook_port:
        await app.updater.start_webhook(
            listen="127.0.0.1",
            port=webhook_port,
            url_path="hook",
            webhook_url=f"http://127.0.0.1:{webhook_port}/hook",
            secret_token="s3cret",
        )
    else:
        await app.updater.start_polling(poll_interval=0, timeout=1)
    try:
        yield app
    finally:
        await app.updater.stop()
        await app.stop()
        await app.shutdown()


async def echo(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    assert update.effective_message is not None and update.effective_message.text
    await update.effective_message.reply_text(f"echo: {update.effective_message.text}")


# -- HTTP surface -------------------------------------------------------------------------------


async def test_urls_and_get_me_follow_the_token(api: LoopbackBotApi, bot: telegram.Bot) -> None:
    assert api.base_url == f"http://127.0.0.1:{api.port}/bot"
    assert api.base_file_url == f"http://127.0.0.1:{api.port}/file/bot"
    me = await bot.get_me()
    assert (me.id, me.is_bot, me.username) == (424242, True, "loopback_bot")


async def test_wrong_token_is_401_and_unknown_method_404(api: LoopbackBotApi) -> None:
    async with httpx.AsyncClient() as client:
        wrong = await client.post(f"{api.base_url}1:nope/getMe")
        unknown = await client.post(f"{api.base_url}{api.token}/sendDice")
    assert wrong.status_code == 401
    assert wrong.json() == {"ok": False, "error_code": 401, "description": "Unauthorized"}
    assert unknown.status_code == 404
    assert unknown.json() == {
        "ok": False,
        "error_code": 404,
        "description": "Not Found: method not found",
    }
    stranger = telegram.Bot("1:nope", base_url=api.base_url)
    with pytest.raises(InvalidToken):
        await stranger.get_me()


async def test_unknown_method_through_ptb(bot: telegram.Bot) -> None:
    with pytest.raises(EndPointNotFound, match="noSuchMethod"):
        await bot.do_api_request("no_such_method", api_kwargs={"chat_id": 1})


async def test_methods_are_case_insensitive_and_take_get_query_json_and_form(
    api: LoopbackBotApi,
) -> None:
    ana = api.person(7, "Ana")
    root = f"{api.base_url}{api.token}"
    markup = {"inline_keyboard": [[{"text": "Ja", "callback_data": "yes"}]]}
    async with httpx.AsyncClient() as client:
        by_get = await client.get(f"{root}/SENDMESSAGE", params={"chat_id": 7, "text": "[1]"})
        by_json = await client.post(
            f"{root}/sendmessage", json={"chat_id": 7, "text": "json", "reply_markup": markup}
        )
        by_form = await client.post(
            f"{root}/sendMessage",
            data={"chat_id": "7", "text": "form", "reply_markup": json.dumps(markup)},
        )
        by_multipart = await client.post(
            f"{root}/sendDocument",
            data={"chat_id": "7", "caption": "true"},
            files={"document": ("a.txt", b"abc", "text/plain")},
        )
        missing_chat = await client.post(f"{root}/sendMessage", data={"text": "x"})
        missing_text = await client.post(f"{root}/sendMessage", data={"chat_id": "7"})
    assert by_get.json()["result"]["text"] == "[1]"  # a string stays a string
    assert by_json.json()["result"]["reply_markup"] == markup
    assert by_form.json()["result"]["reply_markup"] == markup
    assert by_multipart.json()["result"]["caption"] == "true"
    assert missing_chat.status_code == 400
    assert missing_chat.json()["description"] == "Bad Request: chat_id is empty"
    assert missing_text.json()["description"] == "Bad Request: message text is empty"
    assert [m.get("text") for m in ana.messages()] == ["[1]", "json", "form", None]
    assert [r.method for r in api.requests][:2] == ["sendMessage", "sendMessage"]


# -- sending, formatting and editing -------------------------------------------------------------


async def test_send_message_returns_a_bot_api_message(
    api: LoopbackBotApi, bot: telegram.Bot
) -> None:
    ana = api.person(1001, "Ana")
    keyboard = InlineKeyboardMarkup([[InlineKeyboardButton("Ja", callback_data="yes")]])
    first = await bot.send_message(
        ana.id, "<b>Hej</b> &amp; <i>välkommen</i> 👋", parse_mode="HTML", reply_markup=keyboard
    )
    second = await bot.send_message(ana.id, "  andra  ", reply_to_message_id=first.message_id)
    assert first.text == "Hej & välkommen 👋"
    assert [(e.type, e.offset, e.length) for e in first.entities] == [
        ("bold", 0, 3),
        ("italic", 6, 9),
    ]
    assert first.from_user is not None and first.from_user.id == api.bot_id
    assert first.chat.id == ana.id and first.reply_markup == keyboard
    assert second.message_id == first.message_id + 1
    assert second.text == "andra"  # Telegram trims
    assert second.reply_to_message is not None
    assert second.reply_to_message.message_id == first.message_id
    assert [m["text"] for m in api.messages(ana.id)] == ["Hej & välkommen 👋", "andra"]
    assert api.sent(ana.id)[0].source == "<b>Hej</b> &amp; <i>välkommen</i> 👋"


async def test_text_limits(api: LoopbackBotApi, bot: telegram.Bot) -> None:
    ana = api.person(1001)
    assert (await bot.send_message(ana.id, "x" * 4096)).text == "x" * 4096
    with pytest.raises(BadRequest, match="Message is too long"):
        await bot.send_message(ana.id, "x" * 4097)
    with pytest.raises(BadRequest, match="Message text is empty"):
        await bot.send_message(ana.id, " \n ")
    with pytest.raises(BadRequest, match="Chat not found"):
        await bot.send_message(999, "nobody")


@pytest.mark.parametrize(
    ("html", "error"),
    [
        ("<b>bold", "Can't find end tag corresponding to start tag b"),
        ("a < b", 'Unsupported start tag "" at byte offset 2'),
        ("line<br>break", 'Unsupported start tag "br" at byte offset 4'),
        ("<b>x</i>", 'Unmatched end tag at byte offset 4, expected "</b>", found "</i>"'),
        ("x</b>", "Unexpected end tag at byte offset 1"),
        ("<span>x</span>", 'Tag "span" must have class "tg-spoiler" at byte offset 0'),
        (
            "Tom & Jerry",
            'character "&" at byte offset 4 does not start an entity; escape it as "&amp;"',
        ),
        ("<a href='x'", "Unclosed start tag at byte offset 0"),
    ],
)
async def test_invalid_html_is_refused_like_telegram(
    api: LoopbackBotApi, bot: telegram.Bot, html: str, error: str
) -> None:
    ana = api.person(1001)
    with pytest.raises(BadRequest, match="Can't parse entities"):
        await bot.send_message(ana.id, html, parse_mode="HTML")
    description = api.calls("sendMessage")[-1].description
    assert description == f"Bad Request: can't parse entities: {error}"
    assert ana.messages() == []


def test_valid_html_becomes_text_and_entities() -> None:
    text, entities = parse_html(
        '<b>a<i>b</i></b> <a href="https://x.se/?q=1&amp;r=2">l</a> <tg-spoiler>s</tg-spoiler> '
        '<pre><code class="language-py">c</code></pre> <blockquote expandable>q</blockquote> '
        '&lt;&#33;&#x41;&quot; <span class="tg-spoiler">t</span> <u>u</u><s>s</s><code>k</code>'
    )
    assert text == 'ab l s c q <!A" t usk'
    kinds = [(e["type"], e["offset"], e["length"]) for e in entities]
    assert kinds[:3] == [("bold", 0, 2), ("italic", 1, 1), ("text_link", 3, 1)]
    assert entities[2]["url"] == "https://x.se/?q=1&r=2"
    assert {"type": "pre", "offset": 7, "length": 1, "language": "py"} in entities
    assert ("expandable_blockquote", 9, 1) in kinds
    assert ("spoiler", 16, 1) in kinds and ("code", 20, 1) in kinds
    assert parse_html("Tom & Jerry", strict_ampersand=False)[0] == "Tom & Jerry"


async def test_edits_keep_history_and_refuse_like_telegram(
    api: LoopbackBotApi, bot: telegram.Bot
) -> None:
    ana = api.person(1001)
    keyboard = InlineKeyboardMarkup([[InlineKeyboardButton("Ja", callback_data="yes")]])
    sent = await bot.send_message(ana.id, "v1", reply_markup=keyboard)
    edited = await bot.edit_message_text("v2", ana.id, sent.message_id, reply_markup=keyboard)
    assert isinstance(edited, telegram.Message)
    assert edited.text == "v2" and edited.edit_date is not None
    with pytest.raises(BadRequest, match="Message is not modified"):
        await bot.edit_message_text("v2", ana.id, sent.message_id, reply_markup=keyboard)
    with pytest.raises(BadRequest, match="Message to edit not found"):
        await bot.edit_message_text("v9", ana.id, 999)
    await bot.edit_message_reply_markup(ana.id, sent.message_id, reply_markup=None)
    with pytest.raises(BadRequest, match="Message is not modified"):
        await bot.edit_message_reply_markup(ana.id, sent.message_id, reply_markup=None)
    final = await bot.edit_message_text("v3", ana.id, sent.message_id)
    assert isinstance(final, telegram.Message) and final.reply_markup is None
    versions = api.history(ana.id, sent.message_id)
    assert [(v["text"], "reply_markup" in v) for v in versions] == [
        ("v1", True),
        ("v2", True),
        ("v2", False),
        ("v3", False),
    ]
    assert api.messages(ana.id) == [versions[-1]]
    mine = await ana.send("my own")
    with pytest.raises(BadRequest, match="Message can't be edited"):
        await bot.edit_message_text("hijack", ana.id, mine["message_id"])


async def test_callback_data_over_64_bytes_is_refused(
    api: LoopbackBotApi, bot: telegram.Bot
) -> None:
    ana = api.person(1001)
    keyboard = InlineKeyboardMarkup([[InlineKeyboardButton("x", callback_data="é" * 33)]])
    with pytest.raises(BadRequest, match="Button_data_invalid"):
        await bot.send_message(ana.id, "too much data", reply_markup=keyboard)


async def test_documents_travel_both_ways(api: LoopbackBotApi, bot: telegram.Bot) -> None:
    ana = api.person(1001)
    sent = await ana.send_document("stadgar.pdf", b"%PDF-1.4 rules", caption="Våra stadgar")
    update = (await bot.get_updates())[0]
    assert update.message is not None and update.message.document is not None
    assert update.message.document.file_name == "stadgar.pdf"
    assert update.message.document.mime_type == "application/pdf"
    assert update.message.caption == "Våra stadgar"
    file = await bot.get_file(sent["document"]["file_id"])
    assert file.file_path is not None and file.file_path.startswith(api.base_file_url)
    assert bytes(await file.download_as_bytearray()) == b"%PDF-1.4 rules"

    uploaded = await bot.send_document(
        ana.id, b"a;b\n1;2\n", filename="svar.csv", caption="<b>Svar</b>", parse_mode="HTML"
    )
    assert uploaded.document is not None
    assert (uploaded.document.file_name, uploaded.document.file_size) == ("svar.csv", 8)
    assert uploaded.caption == "Svar"
    assert api.file_content(uploaded.document.file_id) == b"a;b\n1;2\n"
    again = await bot.send_document(ana.id, uploaded.document.file_id)
    assert again.document is not None and again.document.file_id == uploaded.document.file_id
    with pytest.raises(BadRequest, match="Wrong file identifier"):
        await bot.send_document(ana.id, "no-such-file-id")

    photo = await ana.send_photo(caption="bild")
    sticker = await ana.send_sticker("🎉")
    updates = await bot.get_updates(offset=update.update_id + 1)
    assert updates[0].message is not None and updates[0].message.photo
    largest = updates[0].message.photo[-1]
    assert largest.file_id == photo["photo"][-1]["file_id"]
    assert await (await bot.get_file(largest.file_id)).download_as_bytearray()
    assert updates[1].message is not None and updates[1].message.sticker is not None
    assert updates[1].message.sticker.emoji == "🎉" == sticker["sticker"]["emoji"]


# -- chats, topics, members, commands --------------------------------------------------------


async def test_forum_topics_round_trip_and_closed_topics_refuse(
    api: LoopbackBotApi, bot: telegram.Bot
) -> None:
    ana = api.person(1001, "Ana")
    group = api.create_supergroup("Föreningar i Helsingborg", forum=True, members=[ana])
    topic = await bot.create_forum_topic(group["id"], "Bidrag")
    assert topic.name == "Bidrag" and topic.message_thread_id > 1
    message = await bot.send_message(
        group["id"], "Välkommen!", message_thread_id=topic.message_thread_id
    )
    assert message.message_thread_id == topic.message_thread_id
    assert message.is_topic_message is True
    question = await ana.send("Hur söker vi?", chat=group, thread_id=topic.message_thread_id)
    update = (await bot.get_updates())[-1]
    assert update.message is not None
    assert update.message.message_thread_id == topic.message_thread_id
    reply = await bot.send_message(
        group["id"], "Så här", reply_to_message_id=question["message_id"]
    )
    assert reply.message_thread_id == topic.message_thread_id  # a reply stays in its topic
    assert [m["text"] for m in api.messages(group["id"], topic.message_thread_id)] == [
        "Välkommen!",
        "Så här",
    ]

    assert await bot.close_forum_topic(group["id"], topic.message_thread_id)
    assert api.topics(group["id"])[0].closed is True
    with pytest.raises(BadRequest, match="Topic_closed"):
        await bot.send_message(group["id"], "late", message_thread_id=topic.message_thread_id)
    with pytest.raises(LoopbackError, match="TOPIC_CLOSED"):
        await ana.send("late", chat=group, thread_id=topic.message_thread_id)
    await bot.reopen_forum_topic(group["id"], topic.message_thread_id)
    await bot.edit_forum_topic(group["id"], topic.message_thread_id, name="Bidrag 2026")
    assert [(t.name, t.closed) for t in api.topics(group["id"])] == [("Bidrag 2026", False)]

    with pytest.raises(BadRequest, match="Message thread not found"):
        await bot.send_message(group["id"], "x", message_thread_id=9999)
    with pytest.raises(BadRequest):
        await bot.create_forum_topic(group["id"], "x" * 129)
    plain = api.create_supergroup("Not a forum", forum=False)
    with pytest.raises(BadRequest, match="The chat is not a forum"):
        await bot.create_forum_topic(plain["id"], "Bidrag")


async def test_chats_and_members(api: LoopbackBotApi, bot: telegram.Bot) -> None:
    ana, bo = api.person(1001, "Ana"), api.person(1002, "Bo", username="bo")
    group = api.create_supergroup("Styrelsen", members=[ana], admins=[bo])
    info = await bot.get_chat(group["id"])
    assert (info.type, info.title, info.is_forum) == ("supergroup", "Styrelsen", True)
    private = await bot.get_chat(bo.id)
    assert (private.type, private.username) == ("private", "bo")
    me = await bot.get_chat_member(group["id"], api.bot_id)
    assert isinstance(me, telegram.ChatMemberAdministrator) and me.can_manage_topics
    assert (await bot.get_chat_member(group["id"], ana.id)).status == "member"
    admins = await bot.get_chat_administrators(group["id"])
    assert {a.user.id for a in admins} == {bo.id, api.bot_id}
    api.set_member(group["id"], ana, "kicked")
    assert (await bot.get_chat_member(group["id"], ana.id)).status == "kicked"
    with pytest.raises(BadRequest, match="User not found"):
        await bot.get_chat_member(group["id"], 5555)


async def test_copy_forward_delete_and_chat_actions(
    api: LoopbackBotApi, bot: telegram.Bot
) -> None:
    ana, bo = api.person(1001), api.person(1002)
    original = await ana.send("Ärende: hyra lokal")
    copied = await bot.copy_message(bo.id, ana.id, original["message_id"])
    forwarded = await bot.forward_message(bo.id, ana.id, original["message_id"])
    assert [m["text"] for m in bo.messages()] == ["Ärende: hyra lokal"] * 2
    assert copied.message_id == bo.messages()[0]["message_id"]
    assert forwarded.forward_origin is not None
    assert forwarded.forward_origin.date.timestamp() == original["date"]
    with pytest.raises(BadRequest, match="Message to copy not found"):
        await bot.copy_message(bo.id, ana.id, 999)
    assert await bot.delete_message(bo.id, forwarded.message_id)
    assert len(bo.messages()) == 1
    with pytest.raises(BadRequest, match="Message to delete not found"):
        await bot.delete_message(bo.id, forwarded.message_id)
    await bot.send_chat_action(ana.id, "typing")
    assert [(a.chat_id, a.action) for a in api.chat_actions] == [(ana.id, "typing")]
    with pytest.raises(BadRequest, match="Wrong parameter action"):
        await bot.send_chat_action(ana.id, "dancing")


async def test_commands_are_stored_per_scope_and_language(
    api: LoopbackBotApi, bot: telegram.Bot
) -> None:
    await bot.set_my_commands([("start", "Börja"), ("hjalp", "Hjälp")])
    await bot.set_my_commands([("start", "Start")], language_code="en")
    scope = telegram.BotCommandScopeAllGroupChats()
    await bot.set_my_commands([("fraga", "Ställ en fråga")], scope=scope)
    assert [c.command for c in await bot.get_my_commands()] == ["start", "hjalp"]
    assert [c.description for c in await bot.get_my_commands(language_code="en")] == ["Start"]
    assert [c.command for c in await bot.get_my_commands(scope=scope)] == ["fraga"]
    assert api.get_commands(language_code="en") == [{"command": "start", "description": "Start"}]
    assert set(api.commands) == {
        ("default", ""),
        ("default", "en"),
        ('{"type":"all_group_chats"}', ""),
    }
    await bot.delete_my_commands(language_code="en")
    assert await bot.get_my_commands(language_code="en") == ()
    with pytest.raises(BadRequest, match="Bot_command_invalid"):
        await bot.set_my_commands([("Bad Command", "x")])


# -- updates ----------------------------------------------------------------------------------


async def test_get_updates_offset_limit_and_long_poll(
    api: LoopbackBotApi, bot: telegram.Bot
) -> None:
    ana = api.person(1001)
    for text in ("ett", "två", "tre"):
        await ana.send(text)
    first_two = await bot.get_updates(limit=2)
    assert [u.message.text for u in first_two if u.message] == ["ett", "två"]
    assert [u.update_id for u in first_two] == [1, 2]
    again = await bot.get_updates()  # nothing confirmed yet
    assert [u.update_id for u in again] == [1, 2, 3]
    rest = await bot.get_updates(offset=3)
    assert [u.update_id for u in rest] == [3]
    assert (await bot.get_webhook_info()).pending_update_count == 1

    started = time.monotonic()
    assert await bot.get_updates(offset=4, timeout=1) == ()
    assert 0.9 <= time.monotonic() - started < 2.0

    async def later() -> None:
        await asyncio.sleep(0.2)
        await ana.send("fyra")

    task = asyncio.create_task(later())
    started = time.monotonic()
    woken = await bot.get_updates(offset=4, timeout=5)
    await task
    assert time.monotonic() - started < 1.5
    assert [u.update_id for u in woken] == [4]
    assert api.pending_updates[0]["message"]["text"] == "fyra"


async def test_get_updates_conflicts(api: LoopbackBotApi, bot: telegram.Bot) -> None:
    other = telegram.Bot(api.token, base_url=api.base_url)
    async with other:
        first = asyncio.create_task(bot.get_updates(timeout=5))
        await asyncio.sleep(0.2)
        await other.get_updates(timeout=0)
        with pytest.raises(Conflict, match="terminated by other getUpdates request"):
            await first
    await bot.set_webhook("http://127.0.0.1:9/hook")
    with pytest.raises(Conflict, match="webhook is active"):
        await bot.get_updates()
    info = await bot.get_webhook_info()
    assert (info.url, info.has_custom_certificate) == ("http://127.0.0.1:9/hook", False)
    assert await bot.delete_webhook()
    assert await bot.get_updates() == ()


async def test_webhook_delivery_retries_in_order(api: LoopbackBotApi, bot: telegram.Bot) -> None:
    received: list[tuple[int, str | None]] = []
    failures = iter([500, 502])

    async def hook(request: web.Request) -> web.Response:
        status = next(failures, 200)
        if status == 200:
            body = await request.json()
            received.append(
                (body["update_id"], request.headers.get("X-Telegram-Bot-Api-Secret-Token"))
            )
        return web.Response(status=status)

    app = web.Application()
    app.router.add_post("/hook", hook)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        ana = api.person(1001)
        await ana.send("före")  # queued before the webhook exists: delivered too
        await bot.set_webhook(f"http://127.0.0.1:{site.port}/hook", secret_token="abc")
        await ana.send("efter")
        await api.drain(timeout=5)
        assert received == [(1, "abc"), (2, "abc")]
        attempts = [(d.update_id, d.attempt, d.status) for d in api.webhook_deliveries]
        assert attempts == [(1, 1, 500), (1, 2, 502), (1, 3, 200), (2, 1, 200)]
        api.deliver_again(2)
        await api.drain(timeout=5)
        assert received[-1] == (2, "abc")
        info = await bot.get_webhook_info()
        assert info.last_error_message == "Wrong response from the webhook: 502 Bad Gateway"
    finally:
        await runner.cleanup()


async def test_webhook_delivers_several_at_once_one_chat_after_another() -> None:
    open_now: list[int] = []  # chats whose update is being delivered right now
    most_at_once = 0
    received: list[tuple[int, str]] = []

    async def hook(request: web.Request) -> web.Response:
        nonlocal most_at_once
        body = await request.json()
        chat = body["message"]["chat"]["id"]
        assert chat not in open_now, "two updates of one chat delivered at once"
        open_now.append(chat)
        most_at_once = max(most_at_once, len(open_now))
        await asyncio.sleep(0.05)
        received.append((chat, body["message"]["text"]))
        open_now.remove(chat)
        return web.Response(status=200)

    app = web.Application()
    app.router.add_post("/hook", hook)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    async with LoopbackBotApi(TOKEN, webhook_connections=8) as server:
        client = telegram.Bot(server.token, base_url=server.base_url)
        try:
            people = [server.person(1001 + n) for n in range(4)]
            for round_ in range(3):
                for person in people:
                    await person.send(f"{person.id}-{round_}")
            async with client:
                await client.set_webhook(f"http://127.0.0.1:{site.port}/hook", max_connections=3)
            await server.drain(timeout=5)
        finally:
            await runner.cleanup()
    assert most_at_once == 3  # the webhook's max_connections, below the server's 8
    for person in people:
        mine = [text for chat, text in received if chat == person.id]
        assert mine == [f"{person.id}-{round_}" for round_ in range(3)]


async def test_watch_sees_each_bot_message_as_it_is_sent(
    api: LoopbackBotApi, bot: telegram.Bot
) -> None:
    ana = api.person(1001)
    seen: list[tuple[str, int, str]] = []
    stop = api.watch(lambda event: seen.append((event.kind, event.chat_id, event.message["text"])))
    sent = await bot.send_message(ana.id, "ett")
    await bot.edit_message_text("två", chat_id=ana.id, message_id=sent.message_id)
    stop()
    await bot.send_message(ana.id, "tre")
    assert seen == [("new", ana.id, "ett"), ("edit", ana.id, "två")]


# -- failure injection --------------------------------------------------------------------------


@pytest.mark.filterwarnings("ignore::telegram.warnings.PTBDeprecationWarning")
async def test_injected_failures_reach_ptb_as_its_errors(
    api: LoopbackBotApi, bot: telegram.Bot
) -> None:
    ana, bo = api.person(1001), api.person(1002)
    rule = api.fail_next("sendMessage", 429, retry_after=3)
    with pytest.raises(RetryAfter) as caught:
        await bot.send_message(ana.id, "hej")
    assert str(caught.value) == "Flood control exceeded. Retry in 3 seconds"
    assert rule.remaining == 0
    assert api.calls("sendmessage")[-1].description == "Too Many Requests: retry after 3"
    assert (await bot.send_message(ana.id, "hej")).text == "hej"

    api.fail_next("sendMessage", 400, description="Bad Request: custom", chat_id=bo.id)
    assert await bot.send_message(ana.id, "not this chat")
    with pytest.raises(BadRequest, match="Custom"):
        await bot.send_message(bo.id, "this chat")

    api.block(ana.id)
    with pytest.raises(Forbidden, match="bot was blocked by the user"):
        await bot.send_message(ana.id, "hallå?")
    with pytest.raises(Forbidden):
        await bot.send_chat_action(ana.id, "typing")
    await ana.send("/start")  # writing to the bot again unblocks it
    assert await bot.send_message(ana.id, "välkommen tillbaka")


async def test_delays_make_ptb_time_out(api: LoopbackBotApi, bot: telegram.Bot) -> None:
    ana = api.person(1001)
    api.delay("sendMessage", 1.0)
    with pytest.raises(TimedOut):
        await bot.send_message(ana.id, "lost", read_timeout=0.2)
    api.delay("sendMessage", 1.0, after=True)
    with pytest.raises(TimedOut):
        await bot.send_message(ana.id, "sent anyway", read_timeout=0.2)
    await asyncio.sleep(0.1)
    assert [m["text"] for m in ana.messages()] == ["sent anyway"]


# -- the person's side --------------------------------------------------------------------------


async def test_person_commands_buttons_and_forged_data(
    api: LoopbackBotApi, bot: telegram.Bot
) -> None:
    ana = api.person(1001, "Ana", username="ana")
    start = await ana.send_command("/start", "kampanj")
    assert start["entities"] == [{"type": "bot_command", "offset": 0, "length": 6}]
    keyboard = InlineKeyboardMarkup(
        [
            [
                InlineKeyboardButton("Ja", callback_data="yes"),
                InlineKeyboardButton("Nej", callback_data="no"),
            ]
        ]
    )
    question = await bot.send_message(ana.id, "Fick du svar?", reply_markup=keyboard)
    query = await ana.press(question.to_dict(), "Nej")
    assert query["data"] == "no" and query["message"]["message_id"] == question.message_id
    await ana.press(question.message_id, "yes")  # by callback_data
    with pytest.raises(LoopbackError, match="no button 'Kanske'"):
        await ana.press(question.message_id, "Kanske")
    forged = await ana.press_data(4242, ana.id, "admin:delete")
    updates = await bot.get_updates()
    queries = [u.callback_query for u in updates if u.callback_query]
    assert [q.data for q in queries] == ["no", "yes", "admin:delete"]
    assert queries[2].message is not None and not queries[2].message.is_accessible
    assert await bot.answer_callback_query(query["id"], "Tack!", show_alert=True)
    with pytest.raises(BadRequest, match="Query is too old"):
        await bot.answer_callback_query(query["id"])
    assert (api.callback_answers[0].text, api.callback_answers[0].data) == ("Tack!", "no")
    assert forged["data"] == "admin:delete"


# -- the real Application -----------------------------------------------------------------------


async def test_application_polling_echo_buttons_and_duplicates(api: LoopbackBotApi) -> None:
    seen: list[int] = []

    async def start(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        assert update.effective_message is not None
        keyboard = InlineKeyboardMarkup([[InlineKeyboardButton("Ja", callback_data="yes")]])
        await update.effective_message.reply_text("Fick du svar?", reply_markup=keyboard)

    async def pressed(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        query = update.callback_query
        assert query is not None
        await query.answer("Tack!")
        await query.edit_message_text(f"Du svarade {query.data}")

    async def count(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        seen.append(update.update_id)
        await echo(update, context)

    handlers = [
        CommandHandler("start", start),
        CallbackQueryHandler(pressed),
        MessageHandler(filters.TEXT & ~filters.COMMAND, count),
    ]
    async with running_app(api, handlers):
        ana = api.person(1001, "Ana")
        reply = await ana.ask("Hej bot")
        assert reply["text"] == "echo: Hej bot"

        menu = await ana.ask("/start")
        query = await ana.press(menu, "Ja")
        answer = await api.wait_for_callback_answer(query["id"])
        assert answer.text == "Tack!"
        edited = await api.wait_for_message(
            ana.id, lambda m: m["text"].startswith("Du svarade"), edits=True, since=0
        )
        assert edited["text"] == "Du svarade yes" and "reply_markup" not in edited

        duplicate = seen[-1]
        since = api.cursor()
        api.deliver_again(duplicate)
        again = await api.wait_for_message(ana.id, since=since)
        assert again["text"] == "echo: Hej bot"
        assert seen == [duplicate, duplicate]
    assert api.pending_updates == []


async def test_application_webhook_with_secret(api: LoopbackBotApi) -> None:
    port = free_port()
    async with running_app(api, [MessageHandler(filters.TEXT, echo)], webhook_port=port):
        assert api.webhook_url == f"http://127.0.0.1:{port}/hook"
        ana = api.person(1001, "Ana")
        reply = await ana.ask("via webhook", timeout=5)
        assert reply["text"] == "echo: via webhook"
        assert {d.status for d in api.webhook_deliveries if d.update_id == 1} >= {200}

        forged = {"update_id": 99, "message": api.transcript(ana.id)[0]}
        async with httpx.AsyncClient() as client:
            wrong = await client.post(
                f"http://127.0.0.1:{port}/hook",
                json=forged,
                headers={"X-Telegram-Bot-Api-Secret-Token": "wrong"},
            )
            missing = await client.post(f"http://127.0.0.1:{port}/hook", json=forged)
        assert (wrong.status_code, missing.status_code) == (403, 403)
        await asyncio.sleep(0.1)
        assert len(ana.messages()) == 1


async def test_waiting_for_a_message_that_never_comes_says_what_came(
    api: LoopbackBotApi, bot: telegram.Bot
) -> None:
    ana = api.person(1001)
    since = api.cursor()
    await bot.send_message(ana.id, "något annat")
    with pytest.raises(TimeoutError, match="'något annat'"):
        await api.wait_for_message(ana.id, lambda m: m.get("text") == "svar", 0.2, since=since)
    assert [m.get("text") for m in api.transcript(ana.id)] == ["något annat"]
