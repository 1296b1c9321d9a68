"""Wiring: builds the python-telegram-bot ``Application`` and the services handlers use."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import contextvars
import functools
import logging
import os
import signal
import warnings
import weakref
from collections.abc import AsyncIterator, Callable, Coroutine
from concurrent.futures import Executor, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlmodel import Session
from telegram import BotCommand
from telegram.ext import (
    Application,
    ApplicationBuilder,
    CallbackContext,
    ContextTypes,
    ExtBot,
)
from telegram.warnings import PTBUserWarning

from bot.config import Settings
from bot.db import create_schema, make_engine, writer_busy
from bot.leader import Leadership
from bot.locales import DEFAULT_LANGUAGE, shipped_catalogue
from bot.models import utcnow
from bot.retrying import RetryingRateLimiter
from bot.services.conversation import ConversationPolicy
from bot.services.languages import LanguageDetector
from bot.texts import languages, text
from bot.transport import AiohttpRequest
from knowledge.loading import Routing, default_cache_dir, load_routing

logger = logging.getLogger(__name__)

T = TypeVar("T")

MEMBER_COMMANDS = (
    "start",
    "help",
    "language",
    "mycases",
    "register",
    "find",
    "events",
    "subscribe",
    "unsubscribe",
    "mydata",
    "forget",
    "cancel",
)
ADMIN_COMMANDS = ("reload", "rules", "rollback")


@dataclass
class Services:
    """What handlers need, built once at start and reached through ``context.services``."""

    settings: Settings
    engine: sa.Engine
    routing: Routing
    policy: ConversationPolicy
    # Whether the coordinator group has topics: asked of Telegram once, not stored.
    desk_is_forum: bool | None = None
    # The time; tests put a fixed clock here.
    clock: Callable[[], datetime] = utcnow
    # What is on disk as last seen by the watcher, and what is live (content hashes).
    watched_fingerprint: str | None = None
    live_fingerprint: str | None = None
    reload_lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    # Which instance runs the scheduled work (None: this is the only one).
    leadership: Leadership | None = None
    # The members' language from what they write; lingua is loaded on first use.
    language_detector: LanguageDetector = field(
        default_factory=LanguageDetector.for_supported_languages
    )
    # The threads database work runs on, started with the first call that needs one.
    _database: ThreadPoolExecutor | None = field(default=None, init=False, repr=False)
    _thread_count: int | None = field(default=None, init=False, repr=False)
    # Where ``call`` runs without threads (SQLite).
    _turns: LoopTurns = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._turns = LoopTurns(
            busy=functools.partial(writer_busy, self.engine), elsewhere=self._executor
        )

    @property
    def is_leader(self) -> bool:
        return self.leadership is None or self.leadership.is_leader

    async def call_plain(self, function: Callable[..., T], /, *args: Any) -> T:
        """Run a function that needs no database in a worker thread."""
        return await asyncio.to_thread(function, *args)

    async def call(self, function: Callable[..., T], /, **kwargs: Any) -> T:
        """Run a service function with a fresh session: what one update needs (one member's or
        one case's rows). On SQLite by default on the event loop's own thread, one call per
        turn of the loop (``DATABASE_THREADS=0``, see ``database_threads``), else on a
        database thread. Work over many rows, or that computes for long, goes to
        ``call_long``."""
        if self._threads() == 0:
            return await self._turns.run(self._work(function, kwargs))
        return await self._in_thread(self._work(function, kwargs))

    async def call_long(self, function: Callable[..., T], /, **kwargs: Any) -> T:
        """``call`` for work that may take long (scheduled jobs over all cases, broadcasts to
        every subscriber, exports, searches of the whole register, building a routing table):
        always on a database thread, so that the event loop goes on serving members
        meanwhile."""
        return await self._in_thread(self._work(function, kwargs))

    def _work(self, function: Callable[..., T], kwargs: dict[str, Any]) -> Callable[[], T]:
        def work() -> T:
            with Session(self.engine, expire_on_commit=False) as session:
                return function(session=session, **kwargs)

        return work

    def _threads(self) -> int:
        if self._thread_count is None:
            self._thread_count = database_threads(self.settings, self.engine)
        return self._thread_count

    def _executor(self) -> ThreadPoolExecutor:
        if self._database is None:
            # Without threads for ``call``, two for long work (a read need not wait for a job).
            self._database = ThreadPoolExecutor(
                self._threads() or LONG_WORK_THREADS, thread_name_prefix="database"
            )
        return self._database

    async def _in_thread(self, work: Callable[[], T]) -> T:
        context = contextvars.copy_context()  # as asyncio.to_thread does
        return await asyncio.get_running_loop().run_in_executor(
            self._executor(), context.run, work
        )

    def close(self) -> None:
        """Let the database threads go once their work is done (a later call starts new ones)."""
        database, self._database = self._database, None
        if database is not None:
            database.shutdown(wait=False)


# Threads for ``call_long`` when ``call`` has none.
LONG_WORK_THREADS = 2

_Waiting = collections.deque[tuple[asyncio.Future[Any], contextvars.Context, Callable[[], Any]]]


class LoopTurns:
    """Work run on the event loop's own thread, one piece per turn of the loop, in the order
    asked for.

    For SQLite's short transactions: the process's one core (the GIL) does not pass back and
    forth between the event loop and a database thread, which cost about a fifth of the CPU
    per update (``bench/load.py``, think 0). One piece per turn, with what came in over the
    network handled between two pieces, so that a burst of updates does not hold up the
    replies already on their way (doing them all at once doubled p99 at think 3).

    When its turn comes and ``busy()`` (someone else holds the writer: a job on a thread,
    another process), a piece waits for it without holding up the loop: it looks again every
    millisecond, and once someone has been writing for ``patience`` seconds (a long job) it
    goes to a thread of ``elsewhere()``, to wait there. Not at once: a piece on a thread that
    writes makes the next one wait too, and the next, and all would end up on threads.
    """

    LOOK_AGAIN = 0.001

    def __init__(
        self,
        *,
        busy: Callable[[], bool] = lambda: False,
        elsewhere: Callable[[], Executor] | None = None,
        patience: float = 0.02,
    ) -> None:
        self._busy = busy
        self._elsewhere = elsewhere
        self._patience = patience
        # One queue per event loop (a test's, a run's): a loop only ever runs its own.
        self._queues: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Waiting] = (
            weakref.WeakKeyDictionary()
        )
        # Since when someone else has been writing, as far as the last look saw.
        self._busy_since: float | None = None

    async def run(self, work: Callable[[], T]) -> T:
        loop = asyncio.get_running_loop()
        waiting = self._queues.setdefault(loop, collections.deque())
        future: asyncio.Future[T] = loop.create_future()
        waiting.append((future, contextvars.copy_context(), work))
        if len(waiting) == 1:
            loop.call_soon(self._next, waiting)
        return await future

    def _next(self, waiting: _Waiting) -> None:
        future, context, work = waiting[0]
        loop = future.get_loop()
        thread: Executor | None = None
        if not future.cancelled() and self._elsewhere is not None and self._busy():
            now = loop.time()
            if self._busy_since is None:
                self._busy_since = now
            if now - self._busy_since < self._patience:
                loop.call_later(self.LOOK_AGAIN, self._next, waiting)
                return
            thread = self._elsewhere()
        else:
            self._busy_since = None
        waiting.popleft()
        try:
            if future.cancelled():  # the caller stopped waiting (a timeout, say)
                pass
            elif thread is not None:
                done = loop.run_in_executor(thread, context.run, work)
                done.add_done_callback(functools.partial(_settle, future))
            else:
                _run(future, context, work)
        finally:
            # The next piece in the loop's next turn: after what this one made ready, and
            # after what came in over the network meanwhile.
            if waiting:
                loop.call_soon(self._next, waiting)


def _run(
    future: asyncio.Future[Any], context: contextvars.Context, work: Callable[[], Any]
) -> None:
    """``work`` here and now; what it returns or raises goes to ``future``."""
    try:
        result = context.run(work)
    except StopIteration as exc:  # a future cannot hold it
        future.set_exception(RuntimeError(f"StopIteration: {exc}"))
    except Exception as exc:
        future.set_exception(exc)
    except BaseException:
        future.cancel()  # the caller is not left waiting; the loop gets the exception
        raise
    else:
        future.set_result(result)


def _settle(future: asyncio.Future[Any], done: asyncio.Future[Any]) -> None:
    """Pass what ``done`` came to on to ``future`` (unless its caller stopped waiting)."""
    if future.cancelled():
        return
    if done.cancelled():
        future.cancel()
    elif (error := done.exception()) is not None:
        future.set_exception(error)
    else:
        future.set_result(done.result())


def database_threads(settings: Settings, engine: sa.Engine) -> int:
    """Threads for the services' database work (``call``): ``DATABASE_THREADS``, else none for
    SQLite and Python's default for a server (it waits on the network).

    0: ``call`` runs on the event loop's thread (``LoopTurns``). SQLite writes one
    transaction at a time anyway and a transaction there takes a millisecond or two
    (``bench/load.py``, think 0, one process: +12 to +26 % updates/s against one thread,
    p99 at think 3 about halved). ``call_long`` still gets a thread.
    """
    if settings.database_threads is not None:
        return settings.database_threads
    if engine.dialect.name == "sqlite":
        return 0
    return min(32, (os.cpu_count() or 1) + 4)


class ConciergeContext(
    CallbackContext[ExtBot[None], dict[Any, Any], dict[Any, Any], dict[Any, Any]]
):
    """The callback context, typed, with the services at hand."""

    @property
    def services(self) -> Services:
        services: Services = self.bot_data["services"]
        return services


JobCallback = Callable[["ConciergeContext"], Coroutine[Any, Any, None]]


def leader_only(callback: JobCallback) -> JobCallback:
    """A scheduled job that runs on the leading instance only (once in total, not per instance)."""

    @functools.wraps(callback)
    async def job(context: ConciergeContext) -> None:
        if context.services.is_leader:
            await callback(context)

    return job


def build_services(settings: Settings, routing: Routing | None = None) -> Services:
    shipped_catalogue()  # a broken locale file stops the start here, naming the file
    engine = make_engine(settings.database_url)
    create_schema(engine)
    routing = routing or load_routing(
        settings.rules_path, settings.knowledge_path, cache_dir=default_cache_dir()
    )
    policy = ConversationPolicy(
        hours=settings.office_hours,
        business_days=settings.response_business_days,
        follow_up_minutes=settings.follow_up_minutes,
        reopen_days=settings.reopen_days,
    )
    return Services(settings=settings, engine=engine, routing=routing, policy=policy)


def build_application(
    settings: Settings, services: Services | None = None
) -> Application[Any, ConciergeContext, Any, Any, Any, Any]:
    """The bot, ready to run; services are built in ``post_init`` unless given (tests)."""
    from handlers import register_all

    async def post_init(app: Application[Any, ConciergeContext, Any, Any, Any, Any]) -> None:
        if "services" not in app.bot_data:
            app.bot_data["services"] = await asyncio.to_thread(build_services, settings)
        await set_commands(app)
        from handlers.admin import record_start, schedule_watch
        from handlers.desk import schedule_jobs

        schedule_jobs(app, app.bot_data["services"])
        await record_start(app.bot_data["services"])
        schedule_watch(app, app.bot_data["services"])
        from handlers.announce import start_outbox
        from handlers.privacy import schedule_retention

        schedule_retention(app, settings.zone)

        await start_outbox(app)
        if settings.coordinator_chat_id is None:
            logger.warning("COORDINATOR_CHAT_ID is not set: cases are kept but no desk is told")

    # handlers.common.send calls sendMessage through do_api_request on purpose (no Message is
    # built from each answer); PTB's advice to use send_message instead is declined there.
    warnings.filterwarnings(
        "ignore", message=r"Please use 'Bot\.sendMessage' instead", category=PTBUserWarning
    )
    builder = (
        ApplicationBuilder()
        .token(settings.telegram_bot_token.get_secret_value())
        .base_url(settings.telegram_api_url)
        .context_types(ContextTypes(context=ConciergeContext))
        # Telegram's flood limits for everything the bot sends: 429 retry_after is waited out,
        # network errors are tried again with backoff (bot.retrying). Broadcasts are paced more
        # evenly by the outbox (TELEGRAM_RATE); this net is never tighter than that pace (above
        # 30/s only against a local test server).
        .rate_limiter(
            RetryingRateLimiter(
                overall_max_rate=max(30.0, settings.telegram_rate * 1.2), max_retries=3
            )
        )
        .request(AiohttpRequest())
        .get_updates_request(AiohttpRequest())
        .post_init(post_init)
        # Updates come in through bot.ingress (stored first), not PTB's updater.
        .updater(None)
    )
    if settings.telegram_file_url:
        builder = builder.base_file_url(settings.telegram_file_url)
    app = builder.build()
    if services is not None:
        app.bot_data["services"] = services
    register_all(app)
    return app


async def set_commands(app: Application[Any, Any, Any, Any, Any, Any]) -> None:
    """The command menu, in Swedish by default and in each language for its clients."""
    for language in languages():
        commands = [
            BotCommand(name, text(f"command_{name}", language)) for name in MEMBER_COMMANDS
        ]
        await app.bot.set_my_commands(
            commands, language_code=None if language == DEFAULT_LANGUAGE else language
        )


@contextlib.asynccontextmanager
async def serving(
    settings: Settings,
    services: Services | None = None,
    *,
    webhook_port: int = 0,
    poll_timeout: int = 30,
) -> AsyncIterator[Application[Any, ConciergeContext, Any, Any, Any, Any]]:
    """The real Application with its way in, running until the block ends.

    Long polling unless ``WEBHOOK_URL`` is set (then a webhook as configured). ``webhook_port``
    (tests) listens on 127.0.0.1 at ``/hook`` instead, with ``WEBHOOK_SECRET``.
    """
    from bot.ingress import Dispatcher, instance_name, poll, serve_webhook

    app = build_application(settings, services)
    await app.initialize()
    assert app.post_init is not None
    await app.post_init(app)
    services = app.bot_data["services"]
    assert services is not None
    services.leadership = Leadership(services.engine, interval=settings.leader_check_seconds)
    await services.leadership.start()
    await app.start()
    dispatcher = Dispatcher(app, services, instance_name())
    await dispatcher.start_recovering()
    stopping = asyncio.Event()
    secret = settings.webhook_secret.get_secret_value() if settings.webhook_secret else ""
    way_in: Any
    if webhook_port:
        way_in = serve_webhook(
            dispatcher,
            listen="127.0.0.1",
            port=webhook_port,
            path="hook",
            secret=secret,
            public_url=f"http://127.0.0.1:{webhook_port}/hook",
            stopping=stopping,
        )
    elif settings.webhook_url:
        way_in = serve_webhook(
            dispatcher,
            listen=settings.webhook_listen,
            port=settings.webhook_port,
            path=settings.webhook_path,
            secret=secret,
            public_url=settings.webhook_url,
            stopping=stopping,
            reuse_port=settings.webhook_reuse_port,
        )
    else:
        way_in = poll(dispatcher, long_poll=poll_timeout, stopping=stopping)
    receiving = asyncio.create_task(way_in, name="ingress")
    try:
        yield app
    finally:
        stopping.set()
        try:
            await asyncio.wait_for(asyncio.shield(receiving), 2)
        except TimeoutError:
            receiving.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await receiving
        except Exception:  # the rest must still stop
            logger.exception("the way in stopped with an error")
        await dispatcher.stop()
        from handlers.desk import stop_announcing

        await stop_announcing(app)
        await services.leadership.stop()
        await app.stop()
        await app.shutdown()
        services.close()


def run(settings: Settings, services: Services | None = None) -> None:
    """Start the bot (webhook when ``WEBHOOK_URL`` is set, else long polling) until stopped."""

    async def until_stopped() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        logger.info("starting with %s", "a webhook" if settings.webhook_url else "long polling")
        async with serving(settings, services):
            await stop.wait()
        logger.info("stopped")

    asyncio.run(until_stopped())
