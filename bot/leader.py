"""Which instance runs the scheduled work: one at a time, another takes over when it dies.

Any number of instances answer updates; reminders, digests, retention and the outbox run on the
leader only. On PostgreSQL the leader holds a session-level advisory lock on a connection of
its own: the server releases it the moment that connection ends, so a killed leader frees it at
once and another instance takes it at its next try (every ``interval`` seconds). On SQLite (one
machine) an exclusive lock on a file beside the database plays the same part; the operating
system releases it when the process dies. An in-memory database has one process: it leads.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
from pathlib import Path
from typing import IO

import sqlalchemy as sa

logger = logging.getLogger(__name__)

# Any fixed 64-bit number, the same for every instance of this bot.
ADVISORY_KEY = 0x466F726C6F7473  # "Forlots"


class Leadership:
    """Tries to become (and stay) the leader; ``is_leader`` tells the jobs whether to run."""

    def __init__(self, engine: sa.Engine, *, interval: float = 10.0) -> None:
        self._engine = engine
        self.interval = interval
        self.is_leader = False
        # Counts how often leadership was gained: work that must be settled once per new leader
        # (what the old one left in flight) compares it.
        self.term = 0
        self._connection: sa.Connection | None = None
        self._file: IO[bytes] | None = None
        self._task: asyncio.Task[None] | None = None

    # --- one attempt (blocking; run in a worker thread) ---

    def try_lead(self) -> bool:
        """One attempt: keep the lock if held (and still alive), else try to take it."""
        dialect = self._engine.dialect.name
        if dialect == "postgresql":
            held = self._try_postgresql()
        elif dialect == "sqlite":
            held = self._try_file()
        else:
            held = True
        if held and not self.is_leader:
            self.term += 1
            logger.info("this instance leads the scheduled work (term %s)", self.term)
        elif not held and self.is_leader:
            logger.warning("this instance no longer leads the scheduled work")
        self.is_leader = held
        return held

    def _try_postgresql(self) -> bool:
        try:
            if self._connection is None:
                self._connection = self._engine.connect().execution_options(
                    isolation_level="AUTOCOMMIT"
                )
            if self.is_leader:
                self._connection.execute(sa.text("SELECT 1"))
                return True
            return bool(
                self._connection.execute(
                    sa.text("SELECT pg_try_advisory_lock(:key)"), {"key": ADVISORY_KEY}
                ).scalar()
            )
        except Exception:  # whatever went wrong, this instance cannot be sure it leads
            logger.warning("lost the leader connection to the database", exc_info=True)
            self._drop_connection()
            return False

    def _try_file(self) -> bool:
        database = self._engine.url.database
        if not database or database == ":memory:":
            return True
        if self._file is not None:
            return True
        path = Path(database).with_suffix(Path(database).suffix + ".leader")
        handle = path.open("ab")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.close()
            return False
        self._file = handle
        return True

    def _drop_connection(self) -> None:
        if self._connection is not None:
            with contextlib.suppress(Exception):
                self._connection.invalidate()
                self._connection.close()
        self._connection = None

    def release(self) -> None:
        """Give the lead up (at a clean stop), so another instance takes over at once."""
        if self._connection is not None:
            with contextlib.suppress(sa.exc.DBAPIError):
                self._connection.execute(
                    sa.text("SELECT pg_advisory_unlock(:key)"), {"key": ADVISORY_KEY}
                )
            self._drop_connection()
        if self._file is not None:
            with contextlib.suppress(OSError):
                fcntl.flock(self._file, fcntl.LOCK_UN)
            self._file.close()
            self._file = None
        self.is_leader = False

    # --- the loop ---

    async def start(self) -> None:
        """Try once now (so a single instance leads from its first second), then keep trying."""
        await asyncio.to_thread(self.try_lead)
        self._task = asyncio.create_task(self._keep_trying(), name="leadership")

    async def _keep_trying(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            try:
                await asyncio.to_thread(self.try_lead)
            except Exception:  # the next round tries again; never let the loop die
                logger.exception("leader check failed")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await asyncio.to_thread(self.release)
