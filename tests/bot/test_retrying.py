"""Calls to Telegram: network trouble tried again with backoff, refusals and broadcasts not."""

from __future__ import annotations

import pytest
from telegram import Bot
from telegram.error import BadRequest, NetworkError

from bot.loopback import LoopbackBotApi
from bot.retrying import RetryingRateLimiter, without_network_retries

TOKEN = "777000:AAE_e2e-test-token"


class Waits:
    def __init__(self) -> None:
        self.seconds: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.seconds.append(seconds)


async def bot_with(api: LoopbackBotApi, waits: Waits) -> Bot:
    from telegram.ext import ExtBot

    bot: Bot = ExtBot(
        TOKEN,
        base_url=api.base_url,
        rate_limiter=RetryingRateLimiter(sleep=waits, max_retries=1),
    )
    await bot.initialize()
    return bot


async def test_a_bad_gateway_is_tried_again_with_growing_waits(api: LoopbackBotApi) -> None:
    ana = api.person(9101, "Ana")
    api.fail_next("sendMessage", error_code=502, times=2)
    waits = Waits()
    bot = await bot_with(api, waits)
    try:
        await bot.send_message(ana.chat_id, "Hej!")
    finally:
        await bot.shutdown()
    assert [m["text"] for m in api.messages(ana.chat_id)] == ["Hej!"]
    assert len(waits.seconds) == 2 and waits.seconds[1] > waits.seconds[0]


async def test_it_gives_up_after_the_retries_and_the_error_reaches_the_caller(
    api: LoopbackBotApi,
) -> None:
    ana = api.person(9102, "Ana")
    api.fail_next("sendMessage", error_code=502, times=10)
    waits = Waits()
    bot = await bot_with(api, waits)
    try:
        with pytest.raises(NetworkError):
            await bot.send_message(ana.chat_id, "Hej!")
    finally:
        await bot.shutdown()
    assert len(waits.seconds) == 3 and api.messages(ana.chat_id) == []


async def test_a_refusal_is_not_asked_again(api: LoopbackBotApi) -> None:
    waits = Waits()
    bot = await bot_with(api, waits)
    try:
        with pytest.raises(BadRequest):
            await bot.send_message(424242, "Hej!")  # no such chat
    finally:
        await bot.shutdown()
    assert waits.seconds == []


async def test_broadcast_sends_are_not_retried(api: LoopbackBotApi) -> None:
    ana = api.person(9103, "Ana")
    api.fail_next("sendMessage", error_code=502, times=1)
    waits = Waits()
    bot = await bot_with(api, waits)
    try:
        with pytest.raises(NetworkError), without_network_retries():
            await bot.send_message(ana.chat_id, "Utskick")
        await bot.send_message(ana.chat_id, "Svar")  # outside: retried as usual
    finally:
        await bot.shutdown()
    assert waits.seconds == [] and [m["text"] for m in api.messages(ana.chat_id)] == ["Svar"]
