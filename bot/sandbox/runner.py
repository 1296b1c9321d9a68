"""Starting the sandbox: the loopback Bot API, the made-up people, the real bot and the page."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import os
import secrets
import shutil
import signal
import sys
import tempfile
import webbrowser
from collections.abc import Callable, Coroutine, Iterator
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from aiohttp import web

from bot.app import Services, build_services, serving
from bot.config import Settings, load_settings
from bot.loopback import LoopbackBotApi
from bot.sandbox.cast import Cast, create_cast
from bot.sandbox.web import make_web_app
from knowledge.loading import Routing, default_rules_path

logger = logging.getLogger(__name__)

DEFAULT_PORT = 8080
#: How many ports after the asked one are tried before any free port is taken.
PORT_ATTEMPTS = 20
BOT_ID = 7_000_000_001


def database_url(database: str | None, workdir: Path) -> str:
    """``--database``: a URL as it is, a path as a SQLite file; none: a fresh file in workdir."""
    if not database:
        return f"sqlite:///{workdir / 'sandbox.sqlite3'}"
    if "://" in database or database.startswith("sqlite:"):
        return database
    return f"sqlite:///{Path(database).expanduser().resolve()}"


async def listen(runner: web.AppRunner, port: int) -> web.TCPSite:
    """Listen on 127.0.0.1:``port``, or the next free port after it, or any free port."""
    candidates = [port] if port == 0 else [*range(port, port + PORT_ATTEMPTS), 0]
    for candidate in candidates:
        site = web.TCPSite(runner, "127.0.0.1", candidate)
        try:
            await site.start()
        except OSError as exc:
            if exc.errno != errno.EADDRINUSE or candidate == 0:
                raise
            continue
        return site
    raise OSError(errno.EADDRINUSE, "no free port")  # pragma: no cover (port 0 always binds)


class Sandbox:
    """Everything on one asyncio loop, on 127.0.0.1; ``async with Sandbox() as sandbox``."""

    def __init__(
        self,
        *,
        port: int = DEFAULT_PORT,
        database: str | None = None,
        workdir: Path | None = None,
        rules_source: Path | None = None,
        routing: Routing | None = None,
        rules_watch_seconds: float = 5.0,
    ) -> None:
        self.requested_port = port
        self.database = database
        self.requested_workdir = workdir
        self.rules_source = rules_source
        self.routing = routing
        self.rules_watch_seconds = rules_watch_seconds
        self._stack = contextlib.AsyncExitStack()
        self._api: LoopbackBotApi | None = None
        self._cast: Cast | None = None
        self._services: Services | None = None
        self._settings: Settings | None = None
        self._site: web.TCPSite | None = None
        self.workdir: Path | None = None

    # -- what is running -----------------------------------------------------------------------

    @property
    def api(self) -> LoopbackBotApi:
        assert self._api is not None, "the sandbox is not started"
        return self._api

    @property
    def cast(self) -> Cast:
        assert self._cast is not None, "the sandbox is not started"
        return self._cast

    @property
    def services(self) -> Services:
        assert self._services is not None, "the sandbox is not started"
        return self._services

    @property
    def settings(self) -> Settings:
        assert self._settings is not None, "the sandbox is not started"
        return self._settings

    @property
    def port(self) -> int:
        assert self._site is not None, "the sandbox is not started"
        return self._site.port

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    @property
    def rules_path(self) -> Path:
        return self.settings.rules_path

    # -- lifecycle -------------------------------------------------------------------------------

    async def start(self) -> None:
        try:
            await self._start()
        except BaseException:
            await self._stack.aclose()
            raise

    async def _start(self) -> None:
        stack = self._stack
        if self.requested_workdir is None:
            workdir = Path(tempfile.mkdtemp(prefix="foreningslotsen-sandbox-"))
            stack.callback(shutil.rmtree, workdir, ignore_errors=True)
        else:
            workdir = self.requested_workdir.expanduser().resolve()
            workdir.mkdir(parents=True, exist_ok=True)
        self.workdir = workdir
        # The bot reads (and /rollback writes) this copy; the repository's file stays as it is.
        rules = workdir / "routing_rules.yaml"
        if not rules.is_file():
            shutil.copyfile(self.rules_source or default_rules_path(), rules)

        token = f"{BOT_ID}:{secrets.token_urlsafe(24)}"
        api = LoopbackBotApi(
            token,
            bot_username="foreningslotsen_bot",
            bot_first_name="Föreningslotsen",
            # As Telegram: a stray "&" in the bot's HTML is kept, not refused.
            strict_html=False,
        )
        await stack.enter_async_context(api)
        self._api = api
        self._cast = cast = create_cast(api)
        coordinators = tuple(c.user_id for c in cast.coordinators)
        self._settings = settings = load_settings(
            _env_file=None,
            telegram_bot_token=token,
            telegram_api_url=api.base_url,
            telegram_file_url=api.base_file_url,
            database_url=database_url(self.database, workdir),
            coordinator_chat_id=cast.desk_chat_id,
            coordinator_user_ids=(),
            admin_user_ids=coordinators,
            rules_path=rules,
            rules_watch_seconds=self.rules_watch_seconds,
            webhook_url=None,
            webhook_secret=None,
        )
        services = await _finished_even_if_cancelled(
            asyncio.to_thread(build_services, settings, self.routing)
        )
        stack.callback(services.engine.dispose)
        self._services = services
        await stack.enter_async_context(serving(settings, services))

        info = {
            "rules_path": str(rules),
            "workdir": str(workdir),
            "database": _shown_database(settings.database_url),
        }
        runner = web.AppRunner(
            make_web_app(api, cast, info), access_log=None, shutdown_timeout=1.0
        )
        await runner.setup()
        stack.push_async_callback(runner.cleanup)
        self._site = await listen(runner, self.requested_port)

    async def stop(self) -> None:
        await self._stack.aclose()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.stop()


async def _finished_even_if_cancelled(work: Coroutine[Any, Any, Services]) -> Services:
    """Await work running in a thread; if cancelled (Ctrl-C while starting), first let the
    thread finish: it cannot be stopped, and it would go on writing the database into the
    folder that the cancellation is about to remove."""
    task = asyncio.ensure_future(work)
    try:
        return await asyncio.shield(task)
    except asyncio.CancelledError:
        with contextlib.suppress(Exception):
            (await task).engine.dispose()
        raise


def _shown_database(url: str) -> str:
    """The database as the page shows it: a SQLite path, or a URL without its password."""
    if url.startswith("sqlite:///"):
        return url.removeprefix("sqlite:///")
    head, _, tail = url.rpartition("@")
    if not head:
        return url
    scheme, _, credentials = head.partition("://")
    user = credentials.split(":", 1)[0]
    return f"{scheme}://{user}@{tail}"


def can_open_browser() -> bool:
    """Whether opening a page will show a window (and not start a text browser here)."""
    if sys.platform in ("darwin", "win32"):
        return True
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


async def serve(
    *,
    echo: Callable[[str], Any],
    port: int = DEFAULT_PORT,
    database: str | None = None,
    workdir: Path | None = None,
    open_browser: bool | None = None,
) -> None:
    """Run the sandbox until Ctrl-C or SIGTERM, printing where it is.

    A signal while it starts cancels the start (everything started so far is stopped and
    the temporary folder removed: asyncio.CancelledError); once it runs, it stops in order.
    """
    stop = asyncio.Event()
    starting = asyncio.current_task()

    def on_signal() -> None:
        if starting is not None and not starting.done() and not running:
            starting.cancel()
        stop.set()

    running = False
    with _signals(on_signal):
        async with Sandbox(port=port, database=database, workdir=workdir) as sandbox:
            running = True
            if port and sandbox.port != port:
                echo(f"Port {port} is taken; using {sandbox.port}.")
            echo(f"Föreningslotsen sandbox: {sandbox.url}")
            echo(f"  members: {', '.join(c.label for c in sandbox.cast.members)}")
            echo(
                "  coordinators and admins: "
                + ", ".join(c.first_name for c in sandbox.cast.coordinators)
            )
            echo(
                f"  routing table (a copy; edit it, then /reload as an admin): "
                f"{sandbox.rules_path}"
            )
            echo(f"  database: {_shown_database(sandbox.settings.database_url)}")
            echo("Ctrl-C stops it.")
            if open_browser if open_browser is not None else can_open_browser():
                await asyncio.to_thread(webbrowser.open, sandbox.url)
            await stop.wait()
            echo("Stopping …")


@contextlib.contextmanager
def _signals(handler: Callable[[], None]) -> Iterator[None]:
    """Ctrl-C and SIGTERM call ``handler`` on the loop, so everything is stopped in order."""
    loop = asyncio.get_running_loop()
    installed = []
    for number in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(number, handler)
        except (NotImplementedError, RuntimeError):  # Windows: Ctrl-C arrives as KeyboardInterrupt
            continue
        installed.append(number)
    try:
        yield
    finally:
        for number in installed:
            loop.remove_signal_handler(number)
