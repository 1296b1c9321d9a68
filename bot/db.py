"""The database engine and sessions; created once at start and passed in."""

from __future__ import annotations

import contextlib
import fcntl
import functools
import os
import sqlite3
import threading
import weakref
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TypeVar

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.orm import make_transient_to_detached
from sqlalchemy.orm.util import identity_key
from sqlmodel import Session, SQLModel, create_engine

from bot import models  # noqa: F401  (registers the tables)

# How long a writer waits for another (the same as SQLite's own busy timeout).
SQLITE_WRITE_WAIT = 30.0
_READING = ("SELECT", "PRAGMA", "EXPLAIN")

M = TypeVar("M", bound=SQLModel)


class _Writer:
    """The writer of one SQLite file: this process's lock, and the file beside the database
    that writers of every process ``flock`` (none for an in-memory database)."""

    def __init__(self, lock_file: str | None) -> None:
        self.lock = threading.Lock()
        self.lock_file = lock_file
        self._probe: int | None = None  # a descriptor of the lock file, to look without waiting

    def __del__(self) -> None:
        if self._probe is not None:
            os.close(self._probe)

    def busy(self) -> bool:
        """Whether someone (of this process or another) is writing now."""
        if self.lock.locked():
            return True
        if self.lock_file is None:
            return False
        try:
            if self._probe is None:
                flags = os.O_RDWR | os.O_CREAT | os.O_CLOEXEC
                self._probe = os.open(self.lock_file, flags, 0o600)
            fcntl.flock(self._probe, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        except OSError:
            return False  # cannot tell: the writer itself will say what is wrong
        fcntl.flock(self._probe, fcntl.LOCK_UN)
        return False


def _one_writer_at_a_time(writer: _Writer) -> type[sqlite3.Connection]:
    """sqlite3 connections that queue for writing, inside this process and across processes.

    SQLite lets one transaction write at a time; a second writer is refused and retries after
    sleeping (1, 2, 5, 10 … 100 ms), so under load updates waited for sleeps rather than for
    the writer before them (``bench/load.py``: answers held up to several hundred ms). Here a
    transaction takes a lock with its first write and gives it back when it commits or rolls
    back: the next writer starts the moment the one before it is done. Reads never wait (WAL).
    With a ``lock_file``, the writer also holds an exclusive ``flock`` on it, so that writers in
    other processes on the same file (``concierge run`` twice) queue the same way instead of
    meeting SQLite's sleeps (two processes, think 0: +7–17 % updates/s, ``bench/load.py
    --instances 2``). The kernel lets go of it when a process dies; waiting for it has no time
    limit (a writer stuck elsewhere holds everyone up, as SQLite's lock would, only without the
    error after 30 s). A write by anything else (the sqlite3 shell) meets SQLite's busy timeout.
    """
    lock, lock_file = writer.lock, writer.lock_file
    held: list[int] = []  # the lock file, open while this process writes

    def queue_across_processes() -> None:
        if lock_file is not None:
            descriptor = os.open(lock_file, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            try:
                fcntl.flock(descriptor, fcntl.LOCK_EX)
            except BaseException:
                os.close(descriptor)
                raise
            held.append(descriptor)

    def let_other_processes_in() -> None:
        if held:
            os.close(held.pop())  # closing lets go of the flock

    class Cursor(sqlite3.Cursor):
        def execute(self, sql: str, parameters: Any = (), /) -> Cursor:
            self.connection.wants_to_write(sql)  # type: ignore[attr-defined]
            return super().execute(sql, parameters)

        def executemany(self, sql: str, seq_of_parameters: Any, /) -> Cursor:
            self.connection.wants_to_write(sql)  # type: ignore[attr-defined]
            return super().executemany(sql, seq_of_parameters)

    class Connection(sqlite3.Connection):
        writing = False

        def wants_to_write(self, sql: str) -> None:
            if self.writing or sql.lstrip()[:7].upper().startswith(_READING):
                return
            if not lock.acquire(timeout=SQLITE_WRITE_WAIT):
                raise sqlite3.OperationalError("database is locked")
            try:
                queue_across_processes()
            except BaseException:
                lock.release()
                raise
            self.writing = True

        def done_writing(self) -> None:
            if self.writing:
                self.writing = False
                try:
                    let_other_processes_in()
                finally:
                    lock.release()

        def cursor(self, factory: Any = Cursor) -> Any:
            return super().cursor(factory)

        def execute(self, sql: str, parameters: Any = (), /) -> sqlite3.Cursor:
            cursor: sqlite3.Cursor = self.cursor()
            return cursor.execute(sql, parameters)

        def commit(self) -> None:
            try:
                super().commit()
            finally:
                self.done_writing()

        def rollback(self) -> None:
            try:
                super().rollback()
            finally:
                self.done_writing()

        def close(self) -> None:
            try:
                super().close()
            finally:
                self.done_writing()

    return Connection


def make_engine(url: str) -> sa.Engine:
    if url.startswith("sqlite"):
        database = sa.make_url(url).database
        lock_file = f"{database}.writing" if database and database != ":memory:" else None
        writer = _Writer(lock_file)
        engine = create_engine(
            url,
            connect_args={
                "check_same_thread": False,
                "timeout": SQLITE_WRITE_WAIT,
                "factory": _one_writer_at_a_time(writer),
            },
            hide_parameters=True,  # error messages must not carry what members wrote
        )
        _WRITERS[engine] = writer

        @sa.event.listens_for(engine, "connect")
        def _sqlite_pragmas(connection, _record):  # type: ignore[no-untyped-def]
            cursor = connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA busy_timeout=30000")
            cursor.close()

        return engine
    return create_engine(url, pool_pre_ping=True, hide_parameters=True)


_WRITERS: weakref.WeakKeyDictionary[sa.Engine, _Writer] = weakref.WeakKeyDictionary()


def writer_busy(engine: sa.Engine) -> bool:
    """Whether a transaction (of this process or another) is writing to the engine's SQLite
    file now, so that a writer would wait for it; ``False`` for other databases."""
    writer = _WRITERS.get(engine)
    return writer is not None and writer.busy()


def insert_row(session: Session, row: SQLModel) -> int:
    """Write ``row`` (a new table model) with one ``INSERT … RETURNING id`` in the session's
    transaction; it comes back with its id and detached, as if loaded: ``session.add`` of it
    later writes only what changes after.

    For the rows every message writes (questions, cases, their messages): under load the
    ORM's unit of work cost the bot more than routing the question (``bench/load.py``).
    """
    session.flush()  # what the session holds first (a new member the row refers to)
    table: sa.Table = row.__table__  # type: ignore[attr-defined]
    values = row.model_dump(exclude={"id"})
    new_id: int = session.connection().execute(_insert_returning_id(table), values).scalar_one()
    row.id = new_id
    make_transient_to_detached(row)
    return new_id


@functools.cache
def _insert_returning_id(table: sa.Table) -> sa.Insert:
    return sa.insert(table).returning(table.c.id)


def get_row(session: Session, model: type[M], row_id: int) -> M | None:
    """``session.get`` for the rows read for every message (the member): one statement built
    once, the object put in the session as if the ORM had loaded it, for about half the cost."""
    if identity_key(model, row_id) in session.identity_map:
        return session.get(model, row_id)
    table: sa.Table = model.__table__  # type: ignore[attr-defined]
    row = session.connection().execute(_by_id(table), {"id": row_id}).first()
    if row is None:
        return None
    found = model(**row._mapping)
    make_transient_to_detached(found)
    session.add(found)
    return found


@functools.cache
def _by_id(table: sa.Table) -> sa.Select[Any]:
    return sa.select(table).where(table.c.id == sa.bindparam("id"))


_MIGRATIONS = Path(__file__).resolve().parent / "migrations"


def _alembic_config(connection: sa.Connection) -> Config:
    config = Config()
    config.set_main_option("script_location", str(_MIGRATIONS))
    config.attributes["connection"] = connection
    return config


# Instances starting together must not run the migrations at the same time.
_MIGRATION_LOCK = 0x466F726C6F7400


def upgrade(engine: sa.Engine, revision: str = "head") -> None:
    """Bring the database to ``revision`` with the project's Alembic migrations."""
    with _sqlite_migration_lock(engine), engine.begin() as connection:
        if engine.dialect.name == "postgresql":
            # Held until this transaction ends: the second instance waits, then finds the
            # schema up to date.
            connection.execute(
                sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": _MIGRATION_LOCK}
            )
        command.upgrade(_alembic_config(connection), revision)


@contextlib.contextmanager
def _sqlite_migration_lock(engine: sa.Engine) -> Iterator[None]:
    """Instances starting together on one SQLite file migrate one after another (SQLite's
    schema changes are not transactional here): a lock file beside the database."""
    database = engine.url.database if engine.dialect.name == "sqlite" else None
    if not database or database == ":memory:":
        yield
        return
    with Path(f"{database}.migrating").open("ab") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def downgrade(engine: sa.Engine, revision: str) -> None:
    with engine.begin() as connection:
        command.downgrade(_alembic_config(connection), revision)


def head_revision() -> str | None:
    """The newest migration the code ships."""
    config = Config()
    config.set_main_option("script_location", str(_MIGRATIONS))
    return ScriptDirectory.from_config(config).get_current_head()


def current_revision(engine: sa.Engine) -> str | None:
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def create_schema(engine: sa.Engine) -> None:
    """The schema as the migrations make it (also for a fresh test database)."""
    upgrade(engine)
