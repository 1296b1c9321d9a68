"""The webhook endpoint: only Telegram (the secret) gets in; what is not an update is refused."""

from __future__ import annotations

import asyncio
import dataclasses
import json
from collections import Counter
from collections.abc import Iterable, Mapping
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from sqlmodel import Session, select
from test_inbox import update  # the same update the inbox tests store

from bot.app import Services
from bot.ingress import MAX_WEBHOOK_BYTES, Dispatcher, _GroupCommit, webhook_app
from bot.models import InboxUpdate

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


async def test_what_comes_while_a_commit_is_written_goes_into_the_next_one_together() -> None:
    written: list[list[int]] = []
    first_written = asyncio.Event()
    release = asyncio.Event()

    async def write(items: list[int]) -> list[str]:
        if not written:
            first_written.set()
            await release.wait()  # the first commit is slow to reach the disk
        if 13 in items:
            raise OSError("database unreachable")
        written.append(items)
        return [f"stored {item}" for item in items]

    commits = _GroupCommit(write)
    first = asyncio.create_task(commits.put(1))
    await first_written.wait()
    later = [asyncio.create_task(commits.put(n)) for n in (2, 3, 4)]
    await asyncio.sleep(0.01)
    # Nobody is told "stored" before their own commit is written.
    assert not first.done() and not any(task.done() for task in later)
    release.set()
    assert await first == "stored 1"
    assert await asyncio.gather(*later) == ["stored 2", "stored 3", "stored 4"]
    assert written == [[1], [2, 3, 4]]
    # A commit that fails fails for those in it, and the next one is written as usual.
    with pytest.raises(OSError):
        await commits.put(13)
    assert await commits.put(5) == "stored 5"


class Handling:
    """Stands in for the Application: records what it is given and holds it until released."""

    bot = None

    def __init__(self, release: asyncio.Event) -> None:
        self.handled: list[int] = []
        self.release = release

    async def process_update(self, update: Any) -> None:
        self.handled.append(update.update_id)
        await self.release.wait()


async def until(check: Any, patience: float = 20.0) -> bool:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + patience
    while not check():
        if loop.time() > deadline:
            return False
        await asyncio.sleep(0.02)
    return True


async def test_an_instance_without_room_leaves_updates_for_another_one(services: Services) -> None:
    release = asyncio.Event()
    # Instance "a" has one slot: it takes two updates (one handled, one waiting for the slot).
    busy = dataclasses.replace(
        services, settings=services.settings.model_copy(update={"concurrent_updates": 1})
    )
    first, second = Handling(release), Handling(release)
    a = Dispatcher(first, busy, "a")  # type: ignore[arg-type]
    b = Dispatcher(second, services, "b")  # type: ignore[arg-type]
    # Eight members write at once and Telegram's connection reaches "a".
    assert await a.accept([update(n, user=n) for n in range(1, 9)]) == 8

    def states() -> Counter[tuple[str, str | None]]:
        with Session(services.engine) as session:
            return Counter(
                (row.state.value, row.owner) for row in session.exec(select(InboxUpdate))
            )

    assert states() == {("working", "a"): 2, ("pending", None): 6}
    # "b" has room: its first look takes what waits, while "a" is still busy.
    await b.start_recovering()
    assert await until(lambda: len(second.handled) == 6)
    assert states() == {("working", "a"): 2, ("working", "b"): 6}
    release.set()
    assert await until(lambda: states() == {("done", "a"): 2, ("done", "b"): 6})
    assert sorted(first.handled + second.handled) == list(range(1, 9))
    assert len(first.handled) == 2
    await a.stop()
    await b.stop()
