"""SQLite writers queue for each other, inside one process and across processes."""

from __future__ import annotations

import fcntl
import os
import threading
from pathlib import Path

import pytest
import sqlalchemy as sa

from bot.db import make_engine


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

    with first.connect() as connection:
        connection.execute(sa.text("SELECT count(*) FROM note")).scalar_one()
        assert lock_is_free(lock_file), "reading takes no lock"
        connection.execute(sa.text("INSERT INTO note VALUES ('first')"))
        assert not lock_is_free(lock_file), "a write holds it until the transaction ends"

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
