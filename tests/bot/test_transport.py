"""The bot's HTTP transport (aiohttp) against the loopback Bot API server: what reaches the
server, and how failures come back (PTB's own error types, so retries work unchanged)."""

from __future__ import annotations

import socket

import pytest
from telegram import Bot, InlineKeyboardButton, InlineKeyboardMarkup
from telegram.error import BadRequest, Forbidden, NetworkError, TimedOut

from bot.loopback import LoopbackBotApi
from bot.transport import AiohttpRequest

TOKEN = "123456:TRANSPORT-test"


async def test_messages_with_buttons_and_files_arrive_as_sent() -> None:
    async with LoopbackBotApi(TOKEN) as api:
        member = api.person(501, "Ana")
        await member.send("hej")
        async with Bot(TOKEN, base_url=api.base_url, request=AiohttpRequest()) as bot:
            keyboard = InlineKeyboardMarkup([[InlineKeyboardButton("Ja", callback_data="fb:1:y")]])
            sent = await bot.send_message(
                501, "Hej <b>Ana</b> &amp; ö", parse_mode="HTML", reply_markup=keyboard
            )
            document = await bot.send_document(501, b"%PDF-1.4 stadgar", filename="stadgar.pdf")
        message = api.messages(501)[-2]
        assert message["message_id"] == sent.message_id
        assert message["text"] == "Hej Ana & ö"
        assert message["reply_markup"]["inline_keyboard"][0][0]["callback_data"] == "fb:1:y"
        assert document.document is not None
        assert api.file_content(document.document.file_id) == b"%PDF-1.4 stadgar"


async def test_refusals_come_back_as_telegram_errors() -> None:
    async with LoopbackBotApi(TOKEN) as api:
        member = api.person(502, "Bo")
        await member.send("hej")
        async with Bot(TOKEN, base_url=api.base_url, request=AiohttpRequest()) as bot:
            with pytest.raises(BadRequest, match="entities"):
                await bot.send_message(502, "<b>trasig", parse_mode="HTML")
            api.block(502)
            with pytest.raises(Forbidden, match="blocked"):
                await bot.send_message(502, "hallå")


async def test_a_slow_server_is_a_timeout_and_a_closed_port_a_network_error() -> None:
    async with LoopbackBotApi(TOKEN) as api:
        member = api.person(503, "Cy")
        await member.send("hej")
        api.delay("sendMessage", 2.0)
        async with Bot(TOKEN, base_url=api.base_url, request=AiohttpRequest()) as bot:
            with pytest.raises(TimedOut):
                await bot.send_message(503, "hallå", read_timeout=0.3)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed again when the block ends: nobody listens
    request = AiohttpRequest()
    await request.initialize()
    try:
        with pytest.raises(NetworkError):
            await request.post(f"http://127.0.0.1:{port}/bot{TOKEN}/getMe")
    finally:
        await request.shutdown()
