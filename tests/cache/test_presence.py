"""The busy set in memory: notifications applied, a resync that loses nothing heard
meanwhile, and legs that never end forgotten after the bound."""

from __future__ import annotations

from typing import Any

import asyncpg
import orjson
import pytest

from cache.presence import Presence
from lookup.presence import BUSY_BOUND_S


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def note(call: str, extension: str, busy: bool, account: int = 1) -> str:
    return orjson.dumps({"a": account, "c": call, "x": extension, "b": busy}).decode()


def test_an_extension_is_busy_while_any_of_its_legs_is() -> None:
    presence = Presence()
    presence.on_notify(note("l1", "101", True))
    presence.on_notify(note("l2", "101", True))  # a second call on hold, say
    presence.on_notify(note("l1", "101", True))  # heard twice: counted once
    assert "101" in presence.busy(1)
    presence.on_notify(note("l1", "101", False))
    assert "101" in presence.busy(1)
    presence.on_notify(note("l2", "101", False))
    assert "101" not in presence.busy(1)
    presence.on_notify(note("l2", "101", False))  # an end heard twice changes nothing
    assert len(presence) == 0


def test_accounts_do_not_see_each_others_busy_extensions() -> None:
    presence = Presence()
    presence.on_notify(note("l1", "101", True, account=1))
    assert "101" in presence.busy(1)
    assert "101" not in presence.busy(2)


def test_unreadable_notifications_are_ignored() -> None:
    presence = Presence()
    for bad in ("", "{", '{"a": 1}', '{"a": "x", "c": "l", "x": "1", "b": true}', "[]"):
        presence.on_notify(bad)
    assert len(presence) == 0


def test_a_leg_that_never_ends_stops_counting_after_the_bound() -> None:
    clock = Clock()
    presence = Presence(clock)
    presence.on_notify(note("stuck", "101", True))
    clock.now += BUSY_BOUND_S - 1
    presence.on_notify(note("fresh", "102", True))
    assert presence.expire() == 0
    clock.now += 2
    assert presence.expire() == 1
    assert set(presence.busy(1)) == {"102"}


class _Rows:
    """Stands in for the pool: ``live_legs`` fetches, and the test speaks meanwhile."""

    def __init__(self, rows: list[dict[str, Any]], during: Any) -> None:
        self.rows, self.during = rows, during

    async def fetch(self, *_args: object) -> list[dict[str, Any]]:
        self.during()
        return self.rows


async def test_a_resync_replaces_the_set_and_replays_what_was_heard_meanwhile() -> None:
    presence = Presence()
    presence.on_notify(note("gone", "103", True))  # its end was missed while disconnected

    def meanwhile() -> None:  # committed after the read began: heard, and replayed
        presence.on_notify(note("l1", "101", False))
        presence.on_notify(note("l3", "104", True))

    rows = [{"account_id": 1, "call_id": "l1", "extension": "101", "age": 5.0},
            {"account_id": 1, "call_id": "l2", "extension": "102", "age": 5.0}]
    await presence.resync(_Rows(rows, meanwhile))  # type: ignore[arg-type]
    assert set(presence.busy(1)) == {"102", "104"}


async def test_a_resync_keeps_how_long_a_leg_has_been_busy() -> None:
    clock = Clock()
    presence = Presence(clock)
    rows = [{"account_id": 1, "call_id": "l1", "extension": "101", "age": BUSY_BOUND_S - 10.0}]
    await presence.resync(_Rows(rows, lambda: None))  # type: ignore[arg-type]
    assert "101" in presence.busy(1)
    clock.now += 11
    presence.expire()
    assert "101" not in presence.busy(1)


async def test_a_failed_resync_keeps_what_it_had() -> None:
    presence = Presence()
    presence.on_notify(note("l1", "101", True))

    class Broken:
        async def fetch(self, *_args: object) -> list[dict[str, Any]]:
            raise asyncpg.InterfaceError("gone")

    with pytest.raises(asyncpg.InterfaceError):
        await presence.resync(Broken())  # type: ignore[arg-type]
    presence.on_notify(note("l2", "102", True))
    assert set(presence.busy(1)) == {"101", "102"}
