"""The inbox: stored before acknowledged, taken by one instance, taken over when one dies."""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from sqlmodel import Session, select

from bot.leader import Leadership
from bot.models import InboxState, InboxUpdate
from bot.services import inbox

NOW = datetime(2026, 11, 25, 9, 0, tzinfo=UTC)


def update(update_id: int, user: int = 42, text: str = "Hej") -> dict[str, object]:
    return {
        "update_id": update_id,
        "message": {
            "message_id": update_id,
            "date": 0,
            "chat": {"id": user, "type": "private"},
            "from": {"id": user, "is_bot": False, "first_name": "Ana"},
            "text": text,
        },
    }


def taken_by(session: Session, owner: str, *updates: dict[str, object]) -> list[int]:
    """Store and take, as an instance does when updates come in."""
    fresh = inbox.store(session=session, updates=updates, now=NOW)
    return [
        c.update_id for c in inbox.claim(session=session, update_ids=fresh, owner=owner, now=NOW)
    ]


def test_a_stored_update_is_taken_once_and_a_repeat_is_dropped(session: Session) -> None:
    assert taken_by(session, "a", update(1, user=1), update(2, user=2)) == [1, 2]
    # Telegram delivers 2 again (to this or another instance), and 3 for the first time.
    assert taken_by(session, "b", update(2, user=2), update(3, user=3)) == [3]
    row = session.get(InboxUpdate, 1)
    assert row is not None and row.state == InboxState.WORKING and row.owner == "a"
    assert (
        row.user_id == 1
        and row.chat_id == 1
        and "Hej" in json.loads(row.payload)["message"]["text"]
    )


def test_one_members_updates_are_taken_one_after_another_in_order(session: Session) -> None:
    # Three messages from one member and one from another arrive at once.
    assert taken_by(session, "a", update(1), update(2), update(3), update(4, user=7)) == [1, 4]
    # Another instance gets nothing of that member while update 1 is in hand.
    assert inbox.claim_due(session=session, owner="b", now=NOW) == []
    inbox.finish(session=session, update_id=1, owner="a")
    following = inbox.claim_next(session=session, chat_id=42, owner="b", now=NOW)
    assert following is not None and following.update_id == 2
    # A retry of 2 waits; 3 waits behind it instead of overtaking.
    inbox.handling_failed(session=session, update_id=2, retry=True, owner="b", now=NOW)
    assert inbox.claim_due(session=session, owner="b", now=NOW) == []
    later = NOW + inbox.BACKOFF[0]
    assert [c.update_id for c in inbox.claim_due(session=session, owner="b", now=later)] == [2]


def test_finishing_forgets_the_text_and_only_the_owner_can_finish(session: Session) -> None:
    taken_by(session, "a", update(1))
    assert not inbox.finish(session=session, update_id=1, owner="b")
    assert inbox.finish(session=session, update_id=1, owner="a")
    session.expire_all()
    row = session.get(InboxUpdate, 1)
    assert row is not None and row.state == InboxState.DONE and row.payload == ""
    # Seen before: a repeat delivery is not handled.
    assert not inbox.first_delivery(session=session, update_id=1)


def test_several_finished_at_once_only_those_still_held_by_the_instance(
    session: Session,
) -> None:
    taken_by(session, "a", update(1, user=1), update(2, user=2))
    taken_by(session, "b", update(3, user=3))
    assert inbox.finish_many(session=session, update_ids=[1, 2, 3, 4], owner="a") == 2
    session.expire_all()
    states = {n: session.get(InboxUpdate, n) for n in (1, 2, 3)}
    assert {n: (row.state, row.payload == "") for n, row in states.items() if row} == {
        1: (InboxState.DONE, True),
        2: (InboxState.DONE, True),
        3: (InboxState.WORKING, False),
    }


def test_an_instance_that_died_is_taken_over_when_its_lease_runs_out(session: Session) -> None:
    taken_by(session, "dead", update(1))
    assert inbox.claim_due(session=session, owner="alive", now=NOW + timedelta(seconds=20)) == []
    taken = inbox.claim_due(session=session, owner="alive", now=NOW + inbox.LEASE * 2)
    assert [(c.update_id, c.attempts) for c in taken] == [(1, 2)]
    assert taken[0].payload["message"]["text"] == "Hej"  # type: ignore[index]
    # The dead instance coming back can neither finish nor fail what is no longer its own.
    assert not inbox.finish(session=session, update_id=1, owner="dead")
    assert not inbox.handling_failed(session=session, update_id=1, retry=True, owner="dead")
    assert inbox.finish(session=session, update_id=1, owner="alive")


def test_a_failure_is_tried_again_later_then_given_up(session: Session) -> None:
    taken_by(session, "a", update(1))
    now = NOW
    for attempt in range(1, inbox.MAX_ATTEMPTS):
        assert inbox.handling_failed(session=session, update_id=1, retry=True, owner="a", now=now)
        assert inbox.claim_due(session=session, owner="a", now=now) == []  # not yet
        now = now + inbox.BACKOFF[attempt - 1]
        taken = inbox.claim_due(session=session, owner="a", now=now)
        assert [c.attempts for c in taken] == [attempt + 1]
    assert not inbox.handling_failed(session=session, update_id=1, retry=True, owner="a", now=now)
    session.expire_all()
    row = session.get(InboxUpdate, 1)
    assert row is not None and row.state == InboxState.FAILED and "Hej" in row.payload


def test_an_update_that_kills_every_instance_is_given_up(session: Session) -> None:
    taken_by(session, "a", update(1))
    now = NOW
    for _ in range(inbox.MAX_ATTEMPTS - 1):  # each instance dies holding it
        now = now + inbox.LEASE * 2
        assert [c.update_id for c in inbox.claim_due(session=session, owner="b", now=now)] == [1]
    now = now + inbox.LEASE * 2
    assert inbox.claim_due(session=session, owner="c", now=now) == []
    session.expire_all()
    row = session.get(InboxUpdate, 1)
    assert row is not None and row.state == InboxState.FAILED


def test_a_bug_is_not_retried(session: Session) -> None:
    taken_by(session, "a", update(1))
    assert not inbox.handling_failed(session=session, update_id=1, retry=False, owner="a", now=NOW)
    assert inbox.claim_due(session=session, owner="a", now=NOW + timedelta(days=1)) == []


def test_updates_handed_in_directly_are_at_most_once_and_forgotten_on_failure(
    session: Session,
) -> None:
    assert inbox.first_delivery(session=session, update_id=9, user_id=42)
    assert not inbox.first_delivery(session=session, update_id=9, user_id=42)
    # Handling failed: forgotten, so that a repeat delivery gets another chance.
    assert not inbox.handling_failed(session=session, update_id=9, retry=True)
    assert inbox.first_delivery(session=session, update_id=9, user_id=42)


def test_text_that_is_not_valid_unicode_is_stored(session: Session) -> None:
    assert taken_by(session, "a", update(1, text="trasig \ud800 text")) == [1]


def test_what_a_member_sent_in_the_last_minute_is_counted(session: Session) -> None:
    inbox.store(session=session, updates=[update(i) for i in range(1, 6)], now=NOW)
    inbox.store(session=session, updates=[update(9, user=7)], now=NOW)
    assert inbox.sent_recently(session=session, user_id=42, since=NOW - timedelta(minutes=1)) == 5
    assert inbox.sent_recently(session=session, user_id=42, since=NOW + timedelta(seconds=1)) == 0


def test_two_instances_taking_over_at_once_take_each_update_once(any_engine: sa.Engine) -> None:
    with Session(any_engine) as session:
        fresh = inbox.store(
            session=session, updates=[update(i, user=i) for i in range(1, 41)], now=NOW
        )
        inbox.claim(session=session, update_ids=fresh, owner="dead", now=NOW)
    later = NOW + inbox.LEASE * 2
    taken: dict[str, list[int]] = {}
    start = threading.Barrier(4)

    def instance(name: str) -> None:
        start.wait()
        with Session(any_engine) as session:
            taken[name] = [
                c.update_id for c in inbox.claim_due(session=session, owner=name, now=later)
            ]

    threads = [threading.Thread(target=instance, args=(f"i{n}",)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    everything = sorted(u for ids in taken.values() for u in ids)
    assert everything == list(range(1, 41))


def test_one_leader_at_a_time_and_another_takes_over(any_engine: sa.Engine) -> None:
    first = Leadership(any_engine)
    second = Leadership(any_engine)
    try:
        assert first.try_lead()
        assert not second.try_lead()
        assert first.try_lead()  # still leading
        first.release()  # it stops (or dies: the lock goes with its connection or file)
        assert second.try_lead()
        assert second.term == 1
        assert not first.try_lead()
    finally:
        first.release()
        second.release()


def test_a_living_instance_keeps_its_updates_and_a_dead_one_is_freed_at_once(
    session: Session,
) -> None:
    taken_by(session, "host:1:aa", update(1, user=1))
    taken_by(session, "host:2:bb", update(2, user=2))
    # Alive: it renews, and nobody takes its update even after the first lease.
    later = NOW + inbox.LEASE - timedelta(seconds=1)
    assert inbox.renew(session=session, owner="host:1:aa", update_ids=[1, 2], now=later) == 1
    assert inbox.claim_due(session=session, owner="new", now=NOW + inbox.LEASE) == []
    # Known dead (a restart on the same machine): free at once, no lease to wait for.
    freed = inbox.release_dead(session=session, alive=lambda owner: owner != "host:2:bb", now=NOW)
    assert freed == 1
    assert [c.update_id for c in inbox.claim_due(session=session, owner="new", now=NOW)] == [2]


def test_whether_an_owner_on_this_machine_lives() -> None:
    import os

    from bot.ingress import alive_here, instance_name

    me = instance_name()
    host, machine, pid, _ = me.split(":")
    assert alive_here(me, me) is True
    assert alive_here(f"{host}:{machine}:{os.getpid()}:000000", me) is False  # an earlier life
    assert alive_here(f"{host}:{machine}:{2**22 + 12345}:abcdef", me) is False  # no such process
    # Another machine, or a container with its own pids under the same name: the lease decides.
    assert alive_here(f"{host}:000000000000:{pid}:abcdef", me) is None
    assert alive_here("elsewhere:1:abcdef", me) is None


def test_an_instance_without_room_leaves_updates_for_one_with_room(session: Session) -> None:
    # Instance "a" can take one more; four members write at once.
    fresh, taken = inbox.store_and_claim(
        session=session,
        updates=[update(1, user=1), update(2, user=2), update(3, user=3), update(4, user=4)],
        owner="a",
        now=NOW,
        room=1,
    )
    assert fresh == [1, 2, 3, 4] and [c.update_id for c in taken] == [1]
    # "b" has room for two: it takes the oldest waiting, without the give-up sweep (a write).
    by_b = inbox.claim_due(session=session, owner="b", limit=2, now=NOW, give_up=False)
    assert [c.update_id for c in by_b] == [2, 3]
    # "a" finishes 1 and, with room again, takes what still waits, not only its chat's next.
    following = inbox.finish_and_take_next(
        session=session, update_ids=[1], chat_ids=[1], owner="a", now=NOW, room=5
    )
    assert [c.update_id for c in following] == [4]
    states = {row.update_id: (row.state, row.owner) for row in session.exec(select(InboxUpdate))}
    assert states == {
        1: (InboxState.DONE, "a"),
        2: (InboxState.WORKING, "b"),
        3: (InboxState.WORKING, "b"),
        4: (InboxState.WORKING, "a"),
    }


def test_without_room_finishing_takes_only_the_chats_next(session: Session) -> None:
    inbox.store_and_claim(
        session=session,
        updates=[update(1, user=1), update(2, user=1), update(3, user=3)],
        owner="a",
        now=NOW,
        room=0,
    )
    assert [c.update_id for c in inbox.claim_due(session=session, owner="a", now=NOW)] == [1, 3]
    following = inbox.finish_and_take_next(
        session=session, update_ids=[1], chat_ids=[1], owner="a", now=NOW
    )
    assert [c.update_id for c in following] == [2]
