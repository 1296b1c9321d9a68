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
import contextvars
import functools
import hashlib
import hmac
import json
import logging
import os
import secrets
import socket
import warnings
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any, Generic, TypeVar

from aiohttp import web
from telegram import Update
from telegram.error import RetryAfter, TelegramError
from telegram.ext import Application
from telegram.warnings import PTBUserWarning

from bot.app import Services
from bot.services import inbox

logger = logging.getLogger(__name__)

ALLOWED_UPDATES = ["message", "callback_query"]
# How often each instance looks for updates to take over.
RECOVER_EVERY = 2.0
# How often an instance looks in the inbox while updates wait there for room.
LOOK_AGAIN_EVERY = 0.05
# How often an instance renews the lease on what it is handling (well within inbox.LEASE).
RENEW_EVERY = 10.0
# One update handled longer than this is given up for now and tried again later.
HANDLING_TIMEOUT = 120.0
# Telegram sends a webhook update of at most a few kB; anything this big is not one.
MAX_WEBHOOK_BYTES = 1 << 20


def _machine() -> str:
    """This machine and process namespace: pids mean the same thing only where this matches
    (containers sharing a host name have their own pid numbering)."""
    parts = [socket.gethostname()]
    for path in ("/proc/sys/kernel/random/boot_id", "/proc/self/ns/pid"):
        with contextlib.suppress(OSError):
            parts.append(os.readlink(path) if path.endswith("/pid") else open(path).read())  # noqa: PTH123, SIM115
    return hashlib.sha256("|".join(parts).encode()).hexdigest()[:12]


def instance_name() -> str:
    """Who holds an inbox row: host, machine, process and a random part."""
    return f"{socket.gethostname()[:24]}:{_machine()}:{os.getpid()}:{secrets.token_hex(3)}"


def alive_here(owner: str, me: str) -> bool | None:
    """Whether the instance named ``owner`` still runs, if it ran here (else None: unknown)."""
    parts = owner.split(":")
    if len(parts) != 4 or parts[1] != _machine() or not parts[2].isdigit():
        return None
    if owner == me:
        return True
    pid = int(parts[2])
    if pid == os.getpid():
        return False  # an earlier process with this pid (a restarted container, say)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        return True
    return True


# The instance handling the current update (read by the error handler).
HANDLING_OWNER: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "handling_owner", default=None
)
# Whether the current update came through the inbox and is handled for the first time: then no
# earlier handling can have left anything behind, and the handlers need not look for it.
FIRST_ATTEMPT: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "first_attempt", default=False
)


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
    """Stores updates in the inbox and hands them to the Application, at least once.

    Which update may be handled when is decided in the database (``inbox.claim``): one chat's
    updates one after another, whichever instance stored them.
    """

    def __init__(
        self, app: Application[Any, Any, Any, Any, Any, Any], services: Services, owner: str
    ) -> None:
        self.app = app
        self.services = services
        self.owner = owner
        self._capacity = services.settings.concurrent_updates
        self._slots = asyncio.Semaphore(self._capacity)
        self._tasks: set[asyncio.Task[None]] = set()
        # What this instance holds (handling, or waiting for a slot): its leases are renewed.
        self._held: Counter[int] = Counter()
        self._recovering: asyncio.Task[None] | None = None
        self._renewing: asyncio.Task[None] | None = None
        # Whether updates were left in the inbox for lack of room (by this instance, or found
        # by its last look): then finishing one also takes what waits, and looks come often.
        self._left_waiting = False
        self._found_waiting = False
        self._storing = _GroupCommit(self._store)
        self._finishing = _GroupCommit(self._finish)

    async def accept(self, payloads: Iterable[Mapping[str, Any]]) -> int:
        """Store a batch (returns once it is safe in the database) and start handling it."""
        return await self._storing.put(list(payloads))

    async def _store(self, batches: list[list[Mapping[str, Any]]]) -> list[int]:
        # Stored and, where first in their chat, taken in the same transaction.
        fresh, taken = await self.services.call(
            inbox.store_and_claim,
            updates=[payload for batch in batches for payload in batch],
            owner=self.owner,
            now=self.services.clock(),
            room=self._room(),
        )
        if len(taken) < len(fresh):
            # Left for whoever has room first: another instance may be idle.
            self._left_waiting = True
        for claimed in taken:
            self._start(claimed)
        stored = set(fresh)
        return [sum(payload.get("update_id") in stored for payload in batch) for batch in batches]

    async def _finish(self, handled: list[tuple[int, int | None]]) -> list[None]:
        """Finish handled updates and start what waited behind them in their chats."""
        # The finished ones still count in ``_held`` until their tasks end: room for them too.
        room = self._room() + len(handled)
        for following in await self.services.call(
            inbox.finish_and_take_next,
            update_ids=[update_id for update_id, _ in handled],
            chat_ids=[chat for _, chat in handled if chat is not None],
            owner=self.owner,
            now=self.services.clock(),
            room=room if self._left_waiting or self._found_waiting else 0,
        ):
            self._start(following)
        return [None] * len(handled)

    def _room(self) -> int:
        """How many more updates this instance takes: what its slots handle now and the same
        again waiting, so that under load the rest waits in the inbox for any instance with
        room (spread by work, not by which instance Telegram's connection reached)."""
        return max(self._capacity * 2 - len(self._held), 0)

    def _start(self, claimed: inbox.Claimed) -> None:
        self._held[claimed.update_id] += 1
        task = asyncio.create_task(self._handle(claimed), name=f"update-{claimed.update_id}")
        self._tasks.add(task)

        def done(finished: asyncio.Task[None]) -> None:
            self._tasks.discard(finished)
            # No longer renewed: if it was not finished (the database was away, say), its lease
            # runs out and it is handled again.
            self._held[claimed.update_id] -= 1
            if self._held[claimed.update_id] <= 0:
                del self._held[claimed.update_id]
            if not finished.cancelled() and finished.exception() is not None:
                logger.error(
                    "update %s: handling stopped", claimed.update_id, exc_info=finished.exception()
                )

        task.add_done_callback(done)

    async def _handle(self, claimed: inbox.Claimed) -> None:
        async with self._slots:
            await self._process(claimed)
        # Finished (or, when handling failed, left to the retry the error handler set up); the
        # chat's next update waited for this one: it is taken now, not at the next round.
        await self._finishing.put((claimed.update_id, _chat_of(claimed.payload)))

    async def _process(self, claimed: inbox.Claimed) -> None:
        try:
            update = Update.de_json(claimed.payload, self.app.bot)
        except Exception:
            logger.exception("update %s could not be read; given up", claimed.update_id)
            await self.services.call(
                inbox.handling_failed, update_id=claimed.update_id, retry=False, owner=self.owner
            )
            return
        HANDLING_OWNER.set(self.owner)
        FIRST_ATTEMPT.set(claimed.attempts == 1)
        try:
            async with asyncio.timeout(HANDLING_TIMEOUT):
                await self.app.process_update(update)
        except TimeoutError:
            logger.error("update %s took too long; tried again later", claimed.update_id)
            await self.services.call(
                inbox.handling_failed, update_id=claimed.update_id, retry=True, owner=self.owner
            )
        # Handler errors went to the error handler, which moved the row on (retry or give up):
        # then it is no longer ours in hand, and finishing does nothing.

    async def start_recovering(self) -> None:
        freed = await self.services.call(
            inbox.release_dead, alive=functools.partial(alive_here, me=self.owner)
        )
        if freed:
            logger.warning(
                "%s updates held by a stopped process on this machine taken over", freed
            )
        self._renewing = asyncio.create_task(self._renew_forever(), name="inbox-renewal")
        self._recovering = asyncio.create_task(self._recover_forever(), name="inbox-recovery")

    async def _renew_forever(self) -> None:
        while True:
            await asyncio.sleep(RENEW_EVERY)
            try:
                await self.services.call(
                    inbox.renew, owner=self.owner, update_ids=sorted(self._held)
                )
            except Exception:
                logger.exception("renewing the inbox leases failed; trying again")

    async def _recover_forever(self) -> None:
        last_full_round = -RECOVER_EVERY
        loop = asyncio.get_running_loop()
        while True:
            full = loop.time() - last_full_round >= RECOVER_EVERY
            try:
                # Only as much as there is room for: the rest stays for other instances.
                room = self._room()
                taken = await self.services.call(
                    inbox.claim_due,
                    owner=self.owner,
                    limit=room,
                    now=self.services.clock(),
                    give_up=full,
                )
                if full:
                    last_full_round = loop.time()
                # Work found (or left behind by this instance): look again soon, while it lasts.
                self._found_waiting = bool(taken) or (room == 0 and self._found_waiting)
                if room > len(taken):
                    self._left_waiting = False
                for claimed in taken:
                    if claimed.attempts > 1:
                        logger.info(
                            "update %s taken (attempt %s)", claimed.update_id, claimed.attempts
                        )
                    self._start(claimed)
            except Exception:
                logger.exception("inbox recovery round failed; trying again")
            busy = self._found_waiting or self._left_waiting
            await asyncio.sleep(LOOK_AGAIN_EVERY if busy else RECOVER_EVERY)

    async def stop(self) -> None:
        """Take nothing new; let what is in hand finish (still renewed), then stop renewing."""
        for task in (self._recovering,):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=30)
        if self._renewing is not None:
            self._renewing.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._renewing


def _chat_of(payload: Mapping[str, Any]) -> int | None:
    return inbox.who(payload)[1]


# --- long polling ---


async def _until_done(call: Any, what: str, stopping: asyncio.Event) -> bool:
    """A call Telegram must accept before updates can come in: tried until it works."""
    failures = 0
    while not stopping.is_set():
        try:
            await call()
            return True
        except TelegramError as exc:
            failures += 1
            wait = _wait_after(exc, failures)
            logger.warning("%s failed (%s); again in %.1f s", what, exc, wait)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stopping.wait(), wait)
    return False


def _wait_after(error: Exception, failures: int) -> float:
    if isinstance(error, RetryAfter):
        wait = error.retry_after
        return float(wait if isinstance(wait, int | float) else wait.total_seconds())
    return float(min(30.0, 0.5 * 2**failures))


async def poll(dispatcher: Dispatcher, *, long_poll: int = 30, stopping: asyncio.Event) -> None:
    """Fetch updates until ``stopping`` is set; confirm a batch only once it is stored.

    Updates are fetched as Telegram sends them (not parsed first): one that this version of
    python-telegram-bot cannot read is stored and given up on, not fetched forever.
    """
    bot = dispatcher.app.bot
    if not await _until_done(
        lambda: bot.delete_webhook(drop_pending_updates=False), "deleteWebhook", stopping
    ):
        return
    offset: int | None = None
    failures = 0
    while not stopping.is_set():
        try:
            arguments: dict[str, Any] = {"timeout": long_poll, "allowed_updates": ALLOWED_UPDATES}
            if offset is not None:
                arguments["offset"] = offset
            with warnings.catch_warnings():  # raw on purpose (see above)
                warnings.simplefilter("ignore", PTBUserWarning)
                batch = await bot.do_api_request(
                    "getUpdates", api_kwargs=arguments, read_timeout=long_poll + 10
                )
        except Exception as exc:  # timeouts, Telegram away, 409 (another poller), 429, …
            failures += 1
            wait = _wait_after(exc, failures)
            logger.warning("getUpdates failed (%s); again in %.1f s", exc, wait)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stopping.wait(), wait)
            continue
        failures = 0
        payloads = [u for u in batch if isinstance(u, dict)] if isinstance(batch, list) else []
        ids = [u["update_id"] for u in payloads if isinstance(u.get("update_id"), int)]
        if not ids:
            continue
        while True:
            try:
                await dispatcher.accept(payloads)
                break
            except Exception:
                # Not stored: not confirmed either. Telegram keeps them; try to store again.
                logger.exception("could not store %s updates; trying again", len(payloads))
                await asyncio.sleep(1)
        offset = max(ids) + 1
    # Confirm the last stored batch, so that a restart does not fetch it again.
    if offset is not None:
        with contextlib.suppress(TelegramError), warnings.catch_warnings():
            warnings.simplefilter("ignore", PTBUserWarning)
            await bot.do_api_request("getUpdates", api_kwargs={"offset": offset, "timeout": 0})


# --- webhook ---


def webhook_app(dispatcher: Dispatcher, *, path: str, secret: str) -> web.Application:
    """The webhook endpoint: wrong secret 403, not an update 400, stored then 200."""
    if not secret:
        raise ValueError("a webhook needs a secret (WEBHOOK_SECRET)")
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
    reuse_port: bool = False,
) -> None:
    """Listen until ``stopping`` is set; registers ``public_url`` with Telegram when given.

    Several instances behind one address each run this; any of them may register the address
    (the same URL and secret), and any may receive any update. ``reuse_port``: instances on
    the same machine share the port (the kernel spreads connections between them).
    """
    runner = web.AppRunner(webhook_app(dispatcher, path=path, secret=secret), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, listen, port, reuse_port=reuse_port or None)
    await site.start()
    try:
        if public_url:
            await _until_done(
                lambda: dispatcher.app.bot.set_webhook(
                    public_url,
                    secret_token=secret,
                    allowed_updates=ALLOWED_UPDATES,
                    max_connections=100,
                ),
                "setWebhook",
                stopping,
            )
        logger.info("webhook listening on %s:%s/%s", listen, port, path.lstrip("/"))
        await stopping.wait()
    finally:
        await runner.cleanup()
