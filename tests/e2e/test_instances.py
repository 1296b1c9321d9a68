"""End to end: two `concierge run` processes behind one webhook address, sharing PostgreSQL.

A small round-robin proxy stands in for the load balancer (it tries the next instance when one
does not answer, as nginx's ``proxy_next_upstream`` does). Checked: any instance takes any update;
a redelivered update creates nothing twice; one instance at a time leads the scheduled work, and
when the leader is killed the other takes over within seconds and every member is still answered.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import re
import signal
import socket
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import sqlalchemy as sa
from aiohttp import web
from sqlmodel import Session, select

from bot.config import Settings
from bot.db import create_schema, make_engine
from bot.loopback import LoopbackBotApi
from bot.models import Case, CaseMessage, Direction, InboxState, InboxUpdate

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "777000:AAE_e2e-test-token"
POSTGRES_URL = os.environ.get("TEST_POSTGRES_URL")
SECRET = "two-instances-secret"
REFERENCE = re.compile(r"F-\d{4}-\d+")

pytestmark = pytest.mark.skipif(
    not POSTGRES_URL, reason="TEST_POSTGRES_URL is not set (.ci/run sets it)"
)


def own_database() -> str:
    """A database of this test's own beside TEST_POSTGRES_URL's (other tests use that one)."""
    assert POSTGRES_URL is not None
    url = sa.make_url(POSTGRES_URL)
    name = f"{url.database}_instances"
    admin = sa.create_engine(url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        exists = connection.execute(
            sa.text("SELECT 1 FROM pg_database WHERE datname = :name"), {"name": name}
        ).first()
        if not exists:
            connection.exec_driver_sql(f'CREATE DATABASE "{name}"')
    admin.dispose()
    return url.set(database=name).render_as_string(hide_password=False)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextlib.asynccontextmanager
async def round_robin(port: int, backends: list[str]) -> AsyncIterator[Counter[str]]:
    """The load balancer: each request to the next backend; a backend that is down is skipped."""
    served: Counter[str] = Counter()
    turn = itertools.cycle(range(len(backends)))
    session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=20))

    async def forward(request: web.Request) -> web.Response:
        body = await request.read()
        headers = {k: v for k, v in request.headers.items() if k.lower() in ("content-type",)} | {
            k: v for k, v in request.headers.items() if k.lower().startswith("x-telegram")
        }
        start = next(turn)
        for offset in range(len(backends)):
            backend = backends[(start + offset) % len(backends)]
            try:
                async with session.post(backend + request.path, data=body, headers=headers) as r:
                    served[backend] += 1
                    return web.Response(status=r.status, body=await r.read())
            except aiohttp.ClientConnectionError:
                continue
        return web.Response(status=502)

    app = web.Application()
    app.router.add_post("/{tail:.*}", forward)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield served
    finally:
        await runner.cleanup()
        await session.close()


class Instance:
    """One `concierge run` process; its log lines are kept to see who leads."""

    def __init__(self, name: str, process: asyncio.subprocess.Process) -> None:
        self.name = name
        self.process = process
        self.lines: list[str] = []
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        assert self.process.stderr is not None
        async for raw in self.process.stderr:
            self.lines.append(raw.decode(errors="replace").rstrip())

    def leads(self) -> bool:
        taken = [i for i, line in enumerate(self.lines) if "leads the scheduled work" in line]
        lost = [i for i, line in enumerate(self.lines) if "no longer leads" in line]
        return bool(taken) and (not lost or taken[-1] > lost[-1])

    async def stop(self, how: int = signal.SIGTERM) -> None:
        if self.process.returncode is None:
            self.process.send_signal(how)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.process.wait(), timeout=30)
        with contextlib.suppress(TimeoutError, asyncio.CancelledError):
            await asyncio.wait_for(self._reader, timeout=5)


async def start_instance(name: str, env: dict[str, str], port: int, cwd: Path) -> Instance:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        "from bot.cli import main; main(['run'])",
        env={**env, "WEBHOOK_PORT": str(port)},
        cwd=cwd,
        stderr=asyncio.subprocess.PIPE,
    )
    return Instance(name, process)


async def wait_until(check: Any, patience: float, every: float = 0.2) -> bool:
    deadline = time.monotonic() + patience
    while time.monotonic() < deadline:
        if check():
            return True
        await asyncio.sleep(every)
    return bool(check())


async def test_two_instances_behind_one_address_share_the_work_and_take_over(
    api: LoopbackBotApi, settings: Settings, tmp_path: Path
) -> None:
    database_url = own_database()
    engine = make_engine(database_url)
    with engine.begin() as connection:
        connection.exec_driver_sql("DROP SCHEMA public CASCADE; CREATE SCHEMA public")
    create_schema(engine)
    balancer, port_a, port_b = free_port(), free_port(), free_port()
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "TELEGRAM_BOT_TOKEN": TOKEN,
        "TELEGRAM_API_URL": api.base_url,
        "TELEGRAM_FILE_URL": api.base_file_url,
        "DATABASE_URL": database_url,
        "RULES_PATH": str(ROOT / "routing_rules.yaml"),
        "KNOWLEDGE_PATH": str(ROOT / "knowledge" / "articles"),
        "CONCIERGE_CACHE_DIR": str(tmp_path / "cache"),
        "WEBHOOK_URL": f"http://127.0.0.1:{balancer}/hook",
        "WEBHOOK_SECRET": SECRET,
        "WEBHOOK_LISTEN": "127.0.0.1",
        "LEADER_CHECK_SECONDS": "1",
        "TELEGRAM_RATE": "2000",
    }
    backends = [f"http://127.0.0.1:{port_a}", f"http://127.0.0.1:{port_b}"]
    people = [api.person(70_001 + n, f"Medlem {n}") for n in range(60)]
    first_wave, second_wave = people[:30], people[30:]

    def told(person_id: int) -> set[str]:
        return {
            match.group(0)
            for m in api.messages(person_id)
            if (match := REFERENCE.search(m.get("text", "")))
        }

    async with round_robin(balancer, backends) as served:
        a = await start_instance("a", env, port_a, tmp_path)
        b = await start_instance("b", env, port_b, tmp_path)
        instances = [a, b]
        try:
            assert await wait_until(lambda: api.webhook_url is not None, patience=60)
            assert await wait_until(lambda: a.leads() or b.leads(), patience=60)
            await asyncio.sleep(2.5)  # a few leader checks: still exactly one leader
            assert [i.leads() for i in instances].count(True) == 1

            # Each member writes twice at once; the two messages may reach different instances.
            for n, person in enumerate(first_wave):
                await person.send(f"Jag vill prata med en person om vår förening nummer {n}")
                await person.send(f"Vi har {n} medlemmar.")
            assert await wait_until(lambda: all(told(p.id) for p in first_wave), patience=60)
            # Both instances took updates: any instance takes any update.
            assert served[backends[0]] > 0 and served[backends[1]] > 0

            # Telegram delivers some updates again (it thought the delivery failed).
            delivered = sorted(api.world.updates)[:10]
            for update_id in delivered:
                api.deliver_again(update_id)
            await asyncio.sleep(3)

            # The leader dies; the other takes over the scheduled work within seconds.
            leader = a if a.leads() else b
            other = b if leader is a else a
            await leader.stop(signal.SIGKILL)
            started = time.monotonic()
            assert await wait_until(other.leads, patience=30)
            takeover = time.monotonic() - started

            # Traffic while one instance is gone: the balancer skips it.
            for n, person in enumerate(second_wave, start=len(first_wave)):
                await person.send(f"Jag vill prata med en person om vår förening nummer {n}")
                await person.send(f"Vi har {n} medlemmar.")
            assert await wait_until(lambda: all(told(p.id) for p in second_wave), patience=90)
        finally:
            for instance in instances:
                await instance.stop()

    with Session(engine) as session:
        cases = session.exec(select(Case)).all()
        messages = session.exec(
            select(CaseMessage).where(CaseMessage.direction == Direction.FROM_MEMBER)
        ).all()
        inbox_rows = session.exec(select(InboxUpdate)).all()
    engine.dispose()
    print(f"\nleader takeover after SIGKILL: {takeover:.1f} s; served: {dict(served)}")  # noqa: T201
    # One case per member, each member told exactly that case, each message stored once.
    assert sorted(c.member_id for c in cases) == sorted(p.id for p in people)
    for person in people:
        (reference,) = told(person.id)
        assert any(c.reference == reference and c.member_id == person.id for c in cases)
    # Each member's two messages in one case, in the order written, each once.
    by_case: dict[int, list[str]] = {}
    for message in sorted(messages, key=lambda m: m.id or 0):
        by_case.setdefault(message.case_id, []).append(message.text)
    for n, person in enumerate(people):
        (case,) = [c for c in cases if c.member_id == person.id]
        assert by_case[case.id or 0] == [
            f"Jag vill prata med en person om vår förening nummer {n}",
            f"Vi har {n} medlemmar.",
        ]
    assert all(row.state == InboxState.DONE for row in inbox_rows)
    assert takeover < 60
