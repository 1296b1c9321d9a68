"""How updates come in: stored in the inbox first, acknowledged to Telegram second, then handled.

Two ways in, both at least once:
- long polling: ``getUpdates`` with an offset that only moves past a batch once the batch is in
  the database (Telegram keeps unconfirmed updates and sends them again);
- a webhook: our own small aiohttp server that checks the secret (constant-time), stores the update
  and only then answers 200 (Telegram retries anything else).

Every instance also takes over updates whose handling failed and is due again, and updates an
instance died holding (lease run out). One member's updates are handled one after another, in the
order they came; different members' at the same time (``CONCURRENT_UPDATES``).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hmac
import json
import logging
import os
import secrets
import socket
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any, Generic, TypeVar

from aiohttp import web
from telegram import Update
from telegram.error import NetworkError, TelegramError
from telegram.ext import Application

from bot.app import Services
from bot.services import inbox

logger = logging.getLogger(__name__)

ALLOWED_UPDATES = ["message", "callback_query"]
# How often each instance looks for updates to take over.
RECOVER_EVERY = 2.0
# How often an instance renews the lease on what it is handling (well within inbox.LEASE).
RENEW_EVERY = 10.0
# Telegram sends a webhook update of at most a few kB; anything this big is not one.
MAX_WEBHOOK_BYTES = 1 << 20


def instance_name() -> str:
    """Who holds an inbox row: host, process and a random part (a restarted pid differs)."""
    return f"{socket.gethostname()[:40]}:{os.getpid()}:{secrets.token_hex(3)}"


def alive_here(owner: str, me: str) -> bool | None:
    """Whether the instance named ``owner`` still runs, if it ran on this machine (else None)."""
    parts = owner.rsplit(":", 2)
    if len(parts) != 3 or parts[0] != socket.gethostname()[:40] or not parts[1].isdigit():
        return None
    if owner == me:
        return True
    pid = int(parts[1])
    if pid == os.getpid():
        return False  # an earlier process with this pid (a restarted container, say)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        return True
    return True


class _ChatQueue:
    """One chat's updates wait here for the one before them (asyncio locks are first come,
    first served)."""

    def __init__(self) -> None:
        self.lock = asyncio.Lock()
        self.users = 0


Item = TypeVar("Item")
Result = TypeVar("Result")


class _GroupCommit(Generic[Item, Result]):
    """What arrives while a transaction is being written waits for it, then goes into the next
    one together: under load many updates cost one commit (one disk sync), not one each. Each
    caller returns only once its own item is committed."""

    def __init__(self, write: Callable[[list[Item]], Awaitable[list[Result]]]) -> None:
        self._write = write
        self._waiting: list[tuple[Item, asyncio.Future[Result]]] = []
        self._writing: asyncio.Task[None] | None = None

    async def put(self, item: Item) -> Result:
        future: asyncio.Future[Result] = asyncio.get_running_loop().create_future()
        self._waiting.append((item, future))
        if self._writing is None:
            self._writing = asyncio.create_task(self._write_all(), name="group-commit")
        return await future

    async def _write_all(self) -> None:
        try:
            while self._waiting:
                batch, self._waiting = self._waiting, []
                try:
                    results = await self._write([item for item, _ in batch])
                except Exception as exc:
                    for _, future in batch:
                        if not future.done():
                            future.set_exception(exc)
                    continue
                for (_, future), result in zip(batch, results, strict=True):
                    if not future.done():
                        future.set_result(result)
        finally:
            self._writing = None


class Dispatcher:
    """Stores updates in the inbox and hands them to the Application, at least once."""

    def __init__(
        self, app: Application[Any, Any, Any, Any, Any, Any], services: Services, owner: str
    ) -> None:
        self.app = app
        self.services = services
        self.owner = owner
        self._slots = asyncio.Semaphore(services.settings.concurrent_updates)
        self._chats: dict[int, _ChatQueue] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        # What this instance is handling (or waiting to): its leases are renewed.
        self._held: set[int] = set()
        self._recovering: asyncio.Task[None] | None = None
        self._storing = _GroupCommit(self._store)
        self._finishing = _GroupCommit(self._finish)

    async def accept(self, payloads: Iterable[Mapping[str, Any]]) -> int:
        """Store a batch (returns once it is safe in the database) and start handling it."""
        return await self._storing.put(list(payloads))

    async def _store(self, batches: list[list[Mapping[str, Any]]]) -> list[int]:
        fresh = await self.services.call(
            inbox.store,
            updates=[payload for batch in batches for payload in batch],
            owner=self.owner,
            now=self.services.clock(),
        )
        for claimed in fresh:
            self._start(claimed)
        stored = {claimed.update_id for claimed in fresh}
        return [sum(payload.get("update_id") in stored for payload in batch) for batch in batches]

    async def _finish(self, update_ids: list[int]) -> list[None]:
        await self.services.call(inbox.finish_many, update_ids=update_ids, owner=self.owner)
        return [None] * len(update_ids)

    def _start(self, claimed: inbox.Claimed) -> None:
        chat = _chat_of(claimed.payload)
        self._held.add(claimed.update_id)
        task = asyncio.create_task(self._handle(claimed, chat), name=f"update-{claimed.update_id}")
        self._tasks.add(task)

        def done(finished: asyncio.Task[None]) -> None:
            self._tasks.discard(finished)
            # No longer renewed: if it was not finished (the database was away, say), its lease
            # runs out and it is handled again.
            self._held.discard(claimed.update_id)
            if not finished.cancelled() and finished.exception() is not None:
                logger.error(
                    "update %s: handling stopped", claimed.update_id, exc_info=finished.exception()
                )

        task.add_done_callback(done)

    async def _handle(self, claimed: inbox.Claimed, chat: int | None) -> None:
        if chat is None:
            async with self._slots:
                await self._process(claimed)
            return
        entry = self._chats.get(chat)
        if entry is None:
            entry = self._chats[chat] = _ChatQueue()
        entry.users += 1
        try:
            async with entry.lock, self._slots:
                await self._process(claimed)
        finally:
            entry.users -= 1
            if entry.users == 0:
                self._chats.pop(chat, None)

    async def _process(self, claimed: inbox.Claimed) -> None:
        try:
            update = Update.de_json(claimed.payload, self.app.bot)
        except Exception:
            logger.exception("update %s could not be read; dropped", claimed.update_id)
            await self.services.call(
                inbox.handling_failed, update_id=claimed.update_id, retry=False
            )
            return
        # Handler errors go to the error handler, which moves the row on (retry or give up);
        # then finishing it here finds it no longer ours and does nothing.
        await self.app.process_update(update)
        await self._finishing.put(claimed.update_id)

    async def start_recovering(self) -> None:
        self._recovering = asyncio.create_task(self._recover_forever(), name="inbox-recovery")

    async def _recover_forever(self) -> None:
        freed = await self.services.call(
            inbox.release_dead, alive=functools.partial(alive_here, me=self.owner)
        )
        if freed:
            logger.warning(
                "%s updates held by a stopped process on this machine taken over", freed
            )
        renewed_at = 0.0
        loop = asyncio.get_running_loop()
        while True:
            try:
                if loop.time() - renewed_at >= RENEW_EVERY:
                    await self.services.call(
                        inbox.renew, owner=self.owner, update_ids=sorted(self._held)
                    )
                    renewed_at = loop.time()
                for claimed in await self.services.call(
                    inbox.claim_due, owner=self.owner, now=self.services.clock()
                ):
                    logger.info(
                        "update %s taken over (attempt %s)", claimed.update_id, claimed.attempts
                    )
                    self._start(claimed)
            except Exception:
                logger.exception("inbox recovery round failed; trying again")
            await asyncio.sleep(RECOVER_EVERY)

    async def stop(self) -> None:
        """Stop taking over; let what is being handled finish (rows left stay in the inbox)."""
        if self._recovering is not None:
            self._recovering.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._recovering
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=30)


def _chat_of(payload: Mapping[str, Any]) -> int | None:
    for kind in ("message", "edited_message"):
        message = payload.get(kind)
        if isinstance(message, dict) and isinstance(message.get("chat"), dict):
            chat_id = message["chat"].get("id")
            return chat_id if isinstance(chat_id, int) else None
    query = payload.get("callback_query")
    if isinstance(query, dict) and isinstance(query.get("from"), dict):
        user_id = query["from"].get("id")
        return user_id if isinstance(user_id, int) else None
    return None


# --- long polling ---


async def poll(dispatcher: Dispatcher, *, long_poll: int = 30, stopping: asyncio.Event) -> None:
    """Fetch updates until ``stopping`` is set; confirm a batch only once it is stored."""
    bot = dispatcher.app.bot
    await bot.delete_webhook(drop_pending_updates=False)
    offset: int | None = None
    failures = 0
    while not stopping.is_set():
        try:
            updates = await bot.get_updates(
                offset=offset,
                timeout=long_poll,
                allowed_updates=ALLOWED_UPDATES,
                read_timeout=long_poll + 10,
            )
        except NetworkError as exc:  # includes timeouts: Telegram unreachable for a moment
            failures += 1
            wait = min(30.0, 0.5 * 2**failures)
            logger.warning("getUpdates failed (%s); again in %.1f s", exc, wait)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stopping.wait(), wait)
            continue
        failures = 0
        if not updates:
            continue
        payloads = [update.to_dict() for update in updates]
        while True:
            try:
                await dispatcher.accept(payloads)
                break
            except Exception:
                # Not stored: not confirmed either. Telegram keeps them; try to store again.
                logger.exception("could not store %s updates; trying again", len(payloads))
                await asyncio.sleep(1)
        offset = updates[-1].update_id + 1
    # Confirm the last stored batch, so that a restart does not fetch it again.
    if offset is not None:
        with contextlib.suppress(TelegramError):
            await bot.get_updates(offset=offset, timeout=0, allowed_updates=ALLOWED_UPDATES)


# --- webhook ---


def webhook_app(dispatcher: Dispatcher, *, path: str, secret: str) -> web.Application:
    """The webhook endpoint: wrong secret 403, not an update 400, stored then 200."""
    expected = secret.encode()

    async def receive(request: web.Request) -> web.Response:
        given = request.headers.get("X-Telegram-Bot-Api-Secret-Token", "").encode()
        if not hmac.compare_digest(given, expected):
            logger.warning("webhook request with a wrong secret refused")
            return web.Response(status=403)
        try:
            payload = json.loads(await request.read())
        except (ValueError, UnicodeDecodeError):
            return web.Response(status=400, text="not JSON")
        if not isinstance(payload, dict) or not isinstance(payload.get("update_id"), int):
            return web.Response(status=400, text="not a Telegram update")
        try:
            await dispatcher.accept([payload])
        except Exception:
            # Not stored: Telegram delivers it again later.
            logger.exception("could not store update %s", payload.get("update_id"))
            return web.Response(status=503)
        return web.Response(status=200)

    app = web.Application(client_max_size=MAX_WEBHOOK_BYTES)
    app.router.add_post("/" + path.lstrip("/"), receive)
    return app


async def serve_webhook(
    dispatcher: Dispatcher,
    *,
    listen: str,
    port: int,
    path: str,
    secret: str,
    public_url: str | None,
    stopping: asyncio.Event,
) -> None:
    """Listen until ``stopping`` is set; registers ``public_url`` with Telegram when given.

    Several instances behind one address each run this; any of them may register the address
    (the same URL and secret), and any may receive any update.
    """
    runner = web.AppRunner(webhook_app(dispatcher, path=path, secret=secret), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, listen, port)
    await site.start()
    try:
        if public_url:
            await dispatcher.app.bot.set_webhook(
                public_url,
                secret_token=secret,
                allowed_updates=ALLOWED_UPDATES,
                max_connections=100,
            )
        logger.info("webhook listening on %s:%s/%s", listen, port, path.lstrip("/"))
        await stopping.wait()
    finally:
        await runner.cleanup()
