"""SQLite writers queue for each other, inside one process and across processes; the hot
rows are read and written with statements built once, as the ORM would; service calls run
on the database threads."""

from __future__ import annotations

import asyncio
import fcntl
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import sqlalchemy as sa
from conftest import services_with_threads
from sqlmodel import Session, select

from bot.app import LoopTurns, database_threads
from bot.config import Settings
from bot.db import get_row, insert_row, make_engine, writer_busy
from bot.models import Member, Question, utcnow
from knowledge.loading import Routing


def lock_is_free(path: Path) -> bool:
    """Whether another process could take the writers' lock file now."""
    descriptor = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    finally:
        os.close(descriptor)  # closing also lets go of a lock taken here
    return True


def test_a_writer_holds_the_lock_other_processes_queue_on(tmp_path: Path) -> None:
    database = tmp_path / "bot.sqlite3"
    lock_file = Path(f"{database}.writing")
    first = make_engine(f"sqlite:///{database}")
    # A second engine on the same file opens its own lock file: like another process.
    second = make_engine(f"sqlite:///{database}")
    with first.begin() as connection:
        connection.execute(sa.text("CREATE TABLE note (text TEXT)"))
    assert lock_is_free(lock_file)
    assert not writer_busy(first) and not writer_busy(second)

    with first.connect() as connection:
        connection.execute(sa.text("SELECT count(*) FROM note")).scalar_one()
        assert lock_is_free(lock_file), "reading takes no lock"
        assert not writer_busy(second)
        connection.execute(sa.text("INSERT INTO note VALUES ('first')"))
        assert not lock_is_free(lock_file), "a write holds it until the transaction ends"
        assert writer_busy(first), "this process writes"
        assert writer_busy(second), "the other process sees a writer"

        written = threading.Event()

        def other_process_writes() -> None:
            with second.begin() as other:
                other.execute(sa.text("INSERT INTO note VALUES ('second')"))
            written.set()

        thread = threading.Thread(target=other_process_writes)
        thread.start()
        assert not written.wait(0.3), "the other writer waits for this one"
        connection.commit()
        assert written.wait(5), "and writes as soon as this one is done"
        thread.join()
    assert lock_is_free(lock_file)
    with first.connect() as connection:
        rows = connection.execute(sa.text("SELECT text FROM note ORDER BY rowid")).scalars()
        assert list(rows) == ["first", "second"]


def test_a_failed_write_lets_go_of_the_lock(tmp_path: Path) -> None:
    database = tmp_path / "bot.sqlite3"
    engine = make_engine(f"sqlite:///{database}")
    with engine.begin() as connection:
        connection.execute(sa.text("CREATE TABLE note (text TEXT NOT NULL)"))
    with pytest.raises(sa.exc.IntegrityError), engine.begin() as connection:
        connection.execute(sa.text("INSERT INTO note VALUES (NULL)"))
    assert lock_is_free(Path(f"{database}.writing"))


def test_a_row_read_with_get_row_is_the_sessions_own_object(engine: sa.Engine) -> None:
    now = utcnow()
    with Session(engine) as session:
        session.add(Member(id=7, first_name="Anna", created_at=now, last_seen_at=now))
        session.commit()
    with Session(engine, expire_on_commit=False) as session:
        member = get_row(session, Member, 7)
        assert member is not None and member.first_name == "Anna"
        assert member.last_seen_at == now
        assert get_row(session, Member, 7) is member, "read once per session, like session.get"
        assert session.get(Member, 7) is member
        assert not session.dirty, "nothing to write until something changes"
        assert get_row(session, Member, 8) is None
        member.first_name = "Anna-Karin"
        session.commit()
    with Session(engine) as session:
        stored = session.get(Member, 7)
        assert stored is not None and stored.first_name == "Anna-Karin"


def test_a_row_written_with_insert_row_is_changed_later_not_written_twice(
    engine: sa.Engine,
) -> None:
    now = utcnow()
    with Session(engine, expire_on_commit=False) as session:
        # A new member in the session goes first: the question refers to it.
        session.add(Member(id=7, first_name="Anna", created_at=now, last_seen_at=now))
        question = Question(member_id=7, text="Hur söker vi bidrag?", action="answer")
        question_id = insert_row(session, question)
        session.commit()
    assert question.id == question_id
    with Session(engine) as session:
        question.department = "kultur"
        session.add(question)
        session.commit()  # an UPDATE of the one row: a second INSERT would fail on the id
        assert session.exec(select(Question)).all() == [question]
        stored = session.get(Question, question_id)
        assert stored is not None and stored.department == "kultur"


def test_database_threads_none_for_sqlite_some_for_a_server(
    settings: Settings, tmp_path: Path
) -> None:
    sqlite = make_engine(f"sqlite:///{tmp_path / 'bot.sqlite3'}")
    server = sa.create_engine("postgresql+psycopg://postgres@127.0.0.1:5432/test")  # not opened
    assert database_threads(settings, sqlite) == 0
    assert database_threads(settings, server) == min(32, (os.cpu_count() or 1) + 4)
    chosen = settings.model_copy(update={"database_threads": 3})
    assert database_threads(chosen, sqlite) == database_threads(chosen, server) == 3


def _thread_name(session: Session) -> str:
    session.exec(select(Member)).all()
    return threading.current_thread().name


async def test_service_calls_run_on_the_database_threads(
    settings: Settings, shipped_routing: Routing
) -> None:
    services = services_with_threads(settings, shipped_routing, 2)
    names = await asyncio.gather(*(services.call(_thread_name) for _ in range(8)))
    assert all(name.startswith("database") for name in names)
    assert len(set(names)) <= 2
    services.close()
    assert (await services.call(_thread_name)).startswith("database"), "new threads after close"
    services.close()


async def test_without_threads_calls_take_turns_on_the_loop_and_long_ones_get_a_thread(
    settings: Settings, shipped_routing: Routing
) -> None:
    services = services_with_threads(settings, shipped_routing, 0)
    happened: list[str] = []

    def step(session: Session, name: str) -> str:
        session.exec(select(Member)).all()
        happened.append(name)
        if name == "call 0":
            # What a call makes ready (a reply to send, say) runs before the next call.
            asyncio.get_running_loop().call_soon(happened.append, "other work")
        return threading.current_thread().name

    names = await asyncio.gather(*(services.call(step, name=f"call {i}") for i in range(3)))
    assert names == [threading.current_thread().name] * 3, "on the event loop's own thread"
    assert happened == ["call 0", "other work", "call 1", "call 2"]

    assert (await services.call_long(_thread_name)).startswith("database")
    services.close()


async def test_a_call_waiting_its_turn_can_be_given_up_and_errors_reach_the_caller(
    settings: Settings, shipped_routing: Routing
) -> None:
    services = services_with_threads(settings, shipped_routing, 0)
    ran: list[str] = []

    def step(session: Session, name: str) -> None:
        ran.append(name)
        if name == "broken":
            raise ValueError("no such case")

    first = asyncio.ensure_future(services.call(step, name="first"))
    given_up = asyncio.ensure_future(services.call(step, name="given up"))
    broken = asyncio.ensure_future(services.call(step, name="broken"))
    await asyncio.sleep(0)  # all three queued, none run yet
    given_up.cancel()
    await first
    with pytest.raises(ValueError, match="no such case"):
        await broken
    assert ran == ["first", "broken"]
    assert given_up.cancelled()
    # The queue goes on after an error.
    await services.call(step, name="after")
    assert ran[-1] == "after"


async def test_while_a_long_job_writes_a_call_waits_for_it_on_a_thread_not_on_the_loop(
    settings: Settings, shipped_routing: Routing, tmp_path: Path
) -> None:
    # SQLite's one writer at a time, whatever database the rest of the suite runs on.
    on_sqlite = settings.model_copy(update={"database_url": f"sqlite:///{tmp_path / 'w.db'}"})
    services = services_with_threads(on_sqlite, shipped_routing, 0)
    writing, finish = threading.Event(), threading.Event()

    def long_job(session: Session) -> None:
        now = utcnow()
        session.add(Member(id=1, first_name="Job", created_at=now, last_seen_at=now))
        session.flush()  # holds the writer from here to the commit
        writing.set()
        finish.wait(10)
        session.commit()

    def member_writes(session: Session) -> str:
        now = utcnow()
        session.add(Member(id=2, first_name="Anna", created_at=now, last_seen_at=now))
        session.commit()
        return threading.current_thread().name

    job = asyncio.ensure_future(services.call_long(long_job))
    await asyncio.to_thread(writing.wait, 10)
    call = asyncio.ensure_future(services.call(member_writes))
    turns = 0
    for _ in range(20):  # the loop goes on turning while the call waits for the writer
        await asyncio.sleep(0.005)
        turns += 1
    assert turns == 20 and not call.done()
    finish.set()
    assert (await call).startswith("database")
    await job
    with Session(services.engine) as session:
        assert {m.id for m in session.exec(select(Member))} == {1, 2}
    assert not writer_busy(services.engine)
    services.close()


async def test_a_stop_iteration_from_a_call_reaches_the_caller_as_an_error(
    settings: Settings, shipped_routing: Routing
) -> None:
    services = services_with_threads(settings, shipped_routing, 0)

    def exhausted(session: Session) -> None:
        next(iter(()))

    with pytest.raises(RuntimeError, match="StopIteration"):
        await asyncio.wait_for(services.call(exhausted), 5)


async def test_a_turn_waits_for_a_short_writer_on_the_loop_for_a_long_one_on_a_thread() -> None:
    writing = [True]
    with ThreadPoolExecutor(1, thread_name_prefix="elsewhere") as threads:

        def where() -> str:
            return threading.current_thread().name

        patient = LoopTurns(busy=lambda: writing[0], elsewhere=lambda: threads, patience=60)
        call = asyncio.ensure_future(patient.run(where))
        for _ in range(10):  # looks again and again; the loop goes on meanwhile
            await asyncio.sleep(0.002)
        assert not call.done()
        writing[0] = False
        assert await call == threading.current_thread().name, "run on the loop once free"

        writing[0] = True
        impatient = LoopTurns(busy=lambda: writing[0], elsewhere=lambda: threads, patience=0)
        assert (await impatient.run(where)).startswith("elsewhere")
