"""The webhook endpoint: only Telegram (the secret) gets in; what is not an update is refused."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

from aiohttp.test_utils import TestClient, TestServer

from bot.ingress import MAX_WEBHOOK_BYTES, webhook_app

SECRET = "the-right-secret_123"


class Accepting:
    """Stands in for the dispatcher: records what would be stored."""

    def __init__(self, fail: bool = False) -> None:
        self.stored: list[Mapping[str, Any]] = []
        self.fail = fail

    async def accept(self, payloads: Iterable[Mapping[str, Any]]) -> int:
        if self.fail:
            raise OSError("database unreachable")
        self.stored.extend(payloads)
        return 1


async def post(dispatcher: Accepting, body: bytes, secret: str | None) -> int:
    app = webhook_app(dispatcher, path="hook", secret=SECRET)  # type: ignore[arg-type]
    headers = {"Content-Type": "application/json"}
    if secret is not None:
        headers["X-Telegram-Bot-Api-Secret-Token"] = secret
    async with TestClient(TestServer(app)) as client:
        response = await client.post("/hook", data=body, headers=headers)
        return response.status


UPDATE = json.dumps({"update_id": 5, "message": {"message_id": 1}}).encode()


async def test_the_right_secret_stores_the_update_and_answers_200() -> None:
    dispatcher = Accepting()
    assert await post(dispatcher, UPDATE, SECRET) == 200
    assert [p["update_id"] for p in dispatcher.stored] == [5]


async def test_a_missing_or_wrong_secret_is_refused_with_403_and_nothing_stored() -> None:
    dispatcher = Accepting()
    assert await post(dispatcher, UPDATE, None) == 403
    assert await post(dispatcher, UPDATE, "the-right-secret_12") == 403
    assert await post(dispatcher, UPDATE, SECRET + "x") == 403
    assert await post(dispatcher, UPDATE, "ö" * 5) == 403
    assert dispatcher.stored == []


async def test_what_is_not_an_update_is_refused_with_400() -> None:
    dispatcher = Accepting()
    for body in (b"", b"\x00\xff\xfe", b"[1, 2]", b'{"update_id": "5"}', b'{"x": 1}', b"nul"):
        assert await post(dispatcher, body, SECRET) == 400, body
    assert dispatcher.stored == []


async def test_a_huge_body_is_refused() -> None:
    dispatcher = Accepting()
    body = json.dumps({"update_id": 6, "pad": "x" * MAX_WEBHOOK_BYTES}).encode()
    assert await post(dispatcher, body, SECRET) == 413
    assert dispatcher.stored == []


async def test_when_it_cannot_be_stored_telegram_is_asked_to_deliver_again() -> None:
    assert await post(Accepting(fail=True), UPDATE, SECRET) == 503
