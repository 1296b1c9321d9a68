"""The sandbox: its JSON API over the real bot and the loopback server (aiohttp's test
client), the sandbox as a whole (a copy of the rules, /reload), and `concierge sandbox` as a
new user runs it."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient, TestServer
from conftest import ROOT, database_url, running_bot

from bot.app import build_services
from bot.config import Settings
from bot.loopback import LoopbackBotApi
from bot.sandbox import Cast, Sandbox, create_cast, make_web_app
from knowledge.loading import Routing

ERIK, AMIRA, SARAH, KARIN, JOHAN = 9201, 9202, 9203, 9101, 9102
HALLS = "Hur bokar vi träningstider i en idrottshall?"

Message = dict[str, Any]


class Page:
    """What the page does, through the same API calls."""

    def __init__(self, client: TestClient[Any, Any], cast: Cast) -> None:
        self.client = client
        self.cast = cast
        self.version = -1

    async def get(self, path: str) -> Any:
        response = await self.client.get(path)
        assert response.status == 200, await response.text()
        return await response.json()

    async def post(self, path: str, body: dict[str, Any], status: int = 200) -> Any:
        response = await self.client.post(path, json=body)
        assert response.status == status, await response.text()
        return await response.json()

    async def messages(self, chat: int, thread: int | None = None) -> list[Message]:
        query = "" if thread is None else f"?thread={thread}"
        data = await self.get(f"/api/chats/{chat}/messages{query}")
        messages: list[Message] = data["messages"]
        return messages

    async def until(self, probe: Callable[[], Any], what: str, patience: float = 15.0) -> Any:
        """Follow /api/changes as the page does until ``probe()`` finds something."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + patience
        while True:
            found = await probe()
            if found:
                return found
            if loop.time() > deadline:
                raise AssertionError(f"the page never showed {what}")
            change = await self.get(f"/api/changes?after={self.version}")
            self.version = change["version"]

    async def bot_message(
        self, chat: int, contains: str, thread: int | None = None, *, after: int = 0
    ) -> Message:
        async def probe() -> Message | None:
            for message in await self.messages(chat, thread):
                if message["from_bot"] and message["id"] > after and contains in message["text"]:
                    return message
            return None

        found: Message = await self.until(probe, f"a bot message with {contains!r} in {chat}")
        return found

    async def press(self, chat: int, message: Message, label: str, as_: int) -> Any:
        for r, row in enumerate(message["buttons"]):
            for c, button in enumerate(row):
                if button["text"] == label:
                    return await self.post(
                        "/api/press",
                        {"as": as_, "chat": chat, "message": message["id"], "row": r, "column": c},
                    )
        raise AssertionError(f"no button {label!r} in {message['buttons']}")


@pytest.fixture
async def sandbox_page(
    api: LoopbackBotApi, settings: Settings, shipped_routing: Routing
) -> AsyncIterator[Page]:
    cast = create_cast(api)
    desk_settings = settings.model_copy(
        update={
            "coordinator_chat_id": cast.desk_chat_id,
            "admin_user_ids": tuple(c.user_id for c in cast.coordinators),
        }
    )
    services = build_services(desk_settings, routing=shipped_routing)
    async with (
        running_bot(desk_settings, services),
        TestClient(TestServer(make_web_app(api, cast))) as client,
    ):
        yield Page(client, cast)


@pytest.fixture
async def page_alone(api: LoopbackBotApi) -> AsyncIterator[Page]:
    """The page over the loopback server without the bot: for what is refused before it."""
    cast = create_cast(api)
    async with TestClient(TestServer(make_web_app(api, cast))) as client:
        yield Page(client, cast)


def buttons(message: Message) -> list[str]:
    return [button["text"] for row in message["buttons"] for button in row]


async def test_the_page_knows_the_members_and_the_coordinator_group(sandbox_page: Page) -> None:
    world = await sandbox_page.get("/api/world")
    people = {p["id"]: p for p in world["people"]}
    assert people[AMIRA]["language_code"] == "ar" and people[SARAH]["language_code"] == "en"
    assert people[KARIN]["role"] == "coordinator" and people[KARIN]["admin"]
    assert people[ERIK]["role"] == "member" and not people[ERIK]["admin"]
    assert world["desk"] == {
        "chat_id": sandbox_page.cast.desk_chat_id,
        "title": "Föreningssamordnare · Helsingborgs stad",
        "is_forum": True,
    }
    overview = await sandbox_page.get("/api/overview")
    assert [t["name"] for t in overview["topics"]] == ["Allmänt"]
    response = await sandbox_page.client.get("/")
    assert response.status == 200 and "sandbox.js" in await response.text()
    assert "script-src 'self'" in response.headers["Content-Security-Policy"]
    script = await sandbox_page.client.get("/static/sandbox.js")
    assert script.status == 200 and "innerHTML" not in await script.text()


async def test_a_member_asks_and_sees_the_answer_with_its_buttons(sandbox_page: Page) -> None:
    await sandbox_page.post("/api/send", {"as": ERIK, "chat": ERIK, "text": HALLS})
    answer = await sandbox_page.bot_message(ERIK, "Skol- och fritidsförvaltningen")
    assert "👍 Det hjälpte" in buttons(answer)
    shown = await sandbox_page.messages(ERIK)
    assert shown[0]["text"] == HALLS and not shown[0]["from_bot"]
    assert shown[0]["sender"]["name"] == "Erik"
    # The bot's HTML arrives as text with Telegram's entities, for the page to draw.
    assert any(e["type"] == "bold" for e in answer["entities"])
    overview = await sandbox_page.get("/api/overview")
    assert overview["chats"][str(ERIK)] == 1 and overview["chats"][str(SARAH)] == 0


async def test_escalation_claim_and_reply_reach_the_member(sandbox_page: Page) -> None:
    page, desk = sandbox_page, sandbox_page.cast.desk_chat_id
    await page.post("/api/send", {"as": ERIK, "chat": ERIK, "text": HALLS})
    answer = await page.bot_message(ERIK, "Skol- och fritidsförvaltningen")
    await page.press(ERIK, answer, "Nej — koppla mig till samordnaren", ERIK)
    confirmation = await page.bot_message(ERIK, "Ärendenummer", after=answer["id"])
    reference = re.search(r"F-\d{4}-\d{4}", confirmation["text"])
    assert reference is not None

    async def case_topic() -> Any:
        overview = await page.get("/api/overview")
        return next((t for t in overview["topics"] if reference[0] in t["name"]), None)

    topic = await page.until(case_topic, "the case's topic")
    card = await page.bot_message(desk, reference[0], thread=topic["thread_id"])
    assert HALLS in card["text"]
    assert buttons(card)[0] == "Ta ärendet"

    claimed = await page.press(desk, card, "Ta ärendet", KARIN)
    assert claimed["answer"]["text"] == "Du har tagit ärendet."
    await page.post(
        "/api/send",
        {
            "as": KARIN,
            "chat": desk,
            "thread": topic["thread_id"],
            "text": "Hej Erik! Vi ringer dig i morgon om halltiderna.",
        },
    )
    reply = await page.bot_message(ERIK, "Vi ringer dig i morgon", after=confirmation["id"])
    assert f"Svar i ärende {reference[0]}" in reply["text"]
    assert "Föreningssamordnaren, Helsingborgs stad" in reply["text"]
    # The coordinator's own message is in the topic, from her.
    in_topic = await page.messages(desk, topic["thread_id"])
    assert any(m["sender"]["name"] == "Karin" and "ringer dig" in m["text"] for m in in_topic)

    # The member answers with a reply to the bot's message: it reaches the topic.
    await page.post(
        "/api/send",
        {"as": ERIK, "chat": ERIK, "text": "Tack, ring efter 16.", "reply_to": reply["id"]},
    )
    relayed = await page.bot_message(desk, "Tack, ring efter 16.", thread=topic["thread_id"])
    assert "Erik" in relayed["text"]
    shown = await page.messages(ERIK)
    mine = next(m for m in shown if m["text"] == "Tack, ring efter 16.")
    assert mine["reply_to"]["id"] == reply["id"]
    assert mine["reply_to"]["text"].startswith("💬 Svar i ärende")

    # Closed with /close in the topic: the member is told, and the topic takes no more posts.
    await page.post(
        "/api/send",
        {"as": KARIN, "chat": desk, "thread": topic["thread_id"], "text": "/close Klart."},
    )
    await page.bot_message(ERIK, "avslutat", after=reply["id"])

    async def closed() -> bool:
        overview = await page.get("/api/overview")
        return any(t["closed"] for t in overview["topics"] if t["thread_id"] == topic["thread_id"])

    await page.until(closed, "the topic closed")
    late = {"as": KARIN, "chat": desk, "thread": topic["thread_id"], "text": "En sak till"}
    assert "the topic is closed" in (await page.post("/api/send", late, 400))["error"]


async def test_files_from_the_bot_can_be_opened(sandbox_page: Page) -> None:
    await sandbox_page.post("/api/send", {"as": SARAH, "chat": SARAH, "text": "/mydata"})

    async def document() -> Message | None:
        return next((m for m in await sandbox_page.messages(SARAH) if m["file"]), None)

    message = await sandbox_page.until(document, "the /mydata document")
    assert message["file"]["kind"] == "document"
    response = await sandbox_page.client.get(message["file"]["url"])
    assert response.status == 200
    assert response.headers["Content-Security-Policy"] == "sandbox"
    assert '"first_name": "Sarah"' in (await response.text())


async def test_a_member_sends_a_file(sandbox_page: Page) -> None:
    form = aiohttp.FormData()
    form.add_field("as", str(ERIK))
    form.add_field("chat", str(ERIK))
    form.add_field(
        "file", b"%PDF-1.4 stadgar", filename="stadgar.pdf", content_type="application/pdf"
    )
    response = await sandbox_page.client.post("/api/upload", data=form)
    assert response.status == 200, await response.text()
    shown = await sandbox_page.messages(ERIK)
    assert shown[0]["file"]["name"] == "stadgar.pdf" and shown[0]["file"]["kind"] == "document"
    content = await sandbox_page.client.get(shown[0]["file"]["url"])
    assert await content.read() == b"%PDF-1.4 stadgar"


@pytest.mark.parametrize(
    ("body", "status", "reason"),
    [
        ({"as": 1, "chat": ERIK, "text": "hej"}, 400, "nobody with id 1"),
        ({"as": ERIK, "chat": SARAH, "text": "hej"}, 400, "another person's chat"),
        ({"as": ERIK, "chat": "desk", "text": "hej"}, 400, "chat must be a number"),
        ({"as": ERIK, "chat": ERIK, "text": "   "}, 400, "write something"),
        ({"as": ERIK, "chat": ERIK, "text": "x" * 4097}, 400, "at most 4096"),
        ({"as": ERIK, "chat": ERIK, "text": ["hej"]}, 400, "write something"),
        ({"as": ERIK, "chat": -5, "text": "hej"}, 404, "no such chat"),
    ],
)
async def test_bad_messages_are_refused_with_a_reason(
    page_alone: Page, body: dict[str, Any], status: int, reason: str
) -> None:
    response = await page_alone.client.post("/api/send", json=body)
    assert response.status == status
    assert reason in await response.text()
    assert await page_alone.messages(ERIK) == []
    assert (await page_alone.get("/api/overview"))["version"] == 0


async def test_refusals_keep_the_world_as_it_was(sandbox_page: Page) -> None:
    page, desk = sandbox_page, sandbox_page.cast.desk_chat_id
    # A member is not in the coordinator group.
    refused = await page.post("/api/send", {"as": ERIK, "chat": desk, "text": "/queue"}, 400)
    assert "not in the coordinator group" in refused["error"]
    # Not JSON, broken JSON, not an object.
    for data, kind in (
        ("as=1", "text/plain"),
        ("{", "application/json"),
        ("[1]", "application/json"),
    ):
        response = await page.client.post("/api/send", data=data, headers={"Content-Type": kind})
        assert response.status == 400
    # Another site's page may not act here, and only loopback names are answered.
    foreign = await page.client.post(
        "/api/send",
        json={"as": ERIK, "chat": ERIK, "text": "hej"},
        headers={"Origin": "https://evil.example"},
    )
    assert foreign.status == 403
    rebinding = await page.client.get("/api/world", headers={"Host": "evil.example:8080"})
    assert rebinding.status == 403
    # Buttons that are not there, and topics that do not exist.
    await page.post("/api/send", {"as": ERIK, "chat": ERIK, "text": HALLS})
    answer = await page.bot_message(ERIK, "Skol- och fritidsförvaltningen")
    gone = {"as": ERIK, "chat": ERIK, "message": answer["id"], "row": 9, "column": 0}
    assert "no longer there" in (await page.post("/api/press", gone, 400))["error"]
    missing = await page.client.get(f"/api/chats/{desk}/messages?thread=999")
    assert missing.status == 404
    assert (await page.client.get("/api/files/nope")).status == 404
    assert (await page.client.get("/api/changes?after=x")).status == 400
    assert len(await page.messages(ERIK)) == 2


async def test_changes_wake_the_page(sandbox_page: Page) -> None:
    before = (await sandbox_page.get("/api/changes?after=-1"))["version"]
    waiting = asyncio.create_task(sandbox_page.get(f"/api/changes?after={before}"))
    await asyncio.sleep(0.2)
    assert not waiting.done()
    await sandbox_page.post("/api/send", {"as": SARAH, "chat": SARAH, "text": "/start"})
    woken = await asyncio.wait_for(waiting, 5)
    assert woken["version"] > before


# -- the whole sandbox -------------------------------------------------------------------------


async def test_an_admin_edits_the_copy_of_the_rules_and_reloads(
    tmp_path: Path, engine: Any, shipped_routing: Routing
) -> None:
    shipped = (ROOT / "routing_rules.yaml").read_text(encoding="utf-8")
    async with (
        Sandbox(
            port=0,
            workdir=tmp_path / "work",
            database=database_url(tmp_path),
            routing=shipped_routing,
            rules_watch_seconds=3600,
        ) as sandbox,
        aiohttp.ClientSession(sandbox.url) as http,
    ):
        rules = sandbox.rules_path
        assert rules == tmp_path / "work" / "routing_rules.yaml"
        assert rules.read_text(encoding="utf-8") == shipped
        world = await (await http.get("/api/world")).json()
        assert world["info"]["rules_path"] == str(rules)

        original = rules.read_text(encoding="utf-8")
        start = original.index("  - id: halltider")
        rules.write_text(
            original[:start]
            + original[start:].replace("department: skola_fritid", "department: fastighet", 1),
            encoding="utf-8",
        )
        await http.post("/api/send", json={"as": KARIN, "chat": KARIN, "text": "/reload force"})
        api = sandbox.api
        await api.wait_for_message(
            KARIN, lambda m: "Den nya routingtabellen gäller nu" in m.get("text", ""), timeout=60
        )
        await http.post("/api/send", json={"as": ERIK, "chat": ERIK, "text": HALLS})
        answer = await api.wait_for_message(ERIK, timeout=15)
        assert answer["text"].startswith("Det här hör till Fastighetsförvaltningen")
    assert (ROOT / "routing_rules.yaml").read_text(encoding="utf-8") == shipped
    assert (tmp_path / "work" / "routing_rules.yaml").is_file()  # a given folder is kept


def _start_command(tmp_path: Path) -> subprocess.Popen[str]:
    """`concierge sandbox --port 0 --no-open`, with its temporary folder under tmp_path."""
    return subprocess.Popen(
        [sys.executable, "-c", "from bot.cli import main; main()", "sandbox", "--port", "0"]
        + ["--no-open"],
        cwd=tmp_path,
        env={**os.environ, "TMPDIR": str(tmp_path)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _work_folders(tmp_path: Path) -> list[Path]:
    return [p for p in tmp_path.iterdir() if p.name.startswith("foreningslotsen-sandbox-")]


def test_concierge_sandbox_prints_its_address_and_stops_on_ctrl_c(tmp_path: Path) -> None:
    process = _start_command(tmp_path)
    try:
        assert process.stdout is not None
        first = process.stdout.readline()
        match = re.match(r"Föreningslotsen sandbox: (http://127\.0\.0\.1:\d+/)$", first.strip())
        assert match, first + (process.stderr.read() if process.stderr else "")
        page = asyncio.run(_fetch(match[1]))
        assert "<title>Föreningslotsen · sandlåda</title>" in page
        work = _work_folders(tmp_path)
        assert len(work) == 1 and (work[0] / "routing_rules.yaml").is_file()
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 0, err
    assert "Stopping" in out
    assert _work_folders(tmp_path) == []


def test_sigterm_while_starting_leaves_nothing_behind(tmp_path: Path) -> None:
    process = _start_command(tmp_path)
    try:
        for _ in range(600):
            if _work_folders(tmp_path) or process.poll() is not None:
                break
            time.sleep(0.05)
        assert _work_folders(tmp_path), "the sandbox never started"
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 0, err
    assert "Stopped." in out or "Stopping" in out
    assert _work_folders(tmp_path) == []


async def _fetch(url: str) -> str:
    async with aiohttp.ClientSession() as http, http.get(url) as response:
        assert response.status == 200
        return await response.text()


async def test_a_taken_port_falls_back_to_the_next_free_one() -> None:
    from aiohttp import web

    from bot.sandbox.runner import listen

    runner = web.AppRunner(web.Application())
    await runner.setup()
    try:
        first = await listen(runner, 0)
        taken = first.port
        second = await listen(runner, taken)
        assert second.port != taken and second.port > 0
    finally:
        await runner.cleanup()


def test_the_database_option_takes_a_file_or_a_url(tmp_path: Path) -> None:
    from bot.sandbox.runner import database_url as sandbox_database

    assert sandbox_database(None, tmp_path) == f"sqlite:///{tmp_path / 'sandbox.sqlite3'}"
    kept = sandbox_database("kept.sqlite3", tmp_path)
    assert kept.startswith("sqlite:///") and Path(kept.removeprefix("sqlite:///")).is_absolute()
    url = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
    assert sandbox_database(url, tmp_path) == url
