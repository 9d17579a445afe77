"""Deals applied once: the look-before-create of an uncertain deal finds its own deal and
no other, and one client's deals are made one at a time (the Megaplan emulator as a real
server, the outbox in a real database)."""

from __future__ import annotations

import asyncio

import pytest

from megaplan.errors import MegaplanUncertainError
from tests.automation.conftest import Outbox, crm_client


async def test_an_uncertain_deal_that_landed_is_found_not_made_again(outbox: Outbox) -> None:
    async with crm_client(outbox) as crm:
        applier = outbox.applier(crm)
        row = await outbox.deal("call-1")
        outbox.mp.faults.lost_answer_count = 1  # made, and its answer lost
        with pytest.raises(MegaplanUncertainError):
            await applier.apply(row)
        crm_id, note = await applier.apply(await outbox.uncertain_again(row))
    [deal] = outbox.mp.deals.values()
    assert (crm_id, note) == (deal["id"], "made by an earlier attempt")


async def test_an_uncertain_deal_is_not_taken_for_the_deal_of_another_call_in_that_minute(
    outbox: Outbox,
) -> None:
    async with crm_client(outbox) as crm:
        first = await outbox.deal("call-1")
        made, _ = await outbox.applier(crm).apply(first)
        await outbox.complete(first, made)
        second = await outbox.deal("call-2")
        outbox.mp.faults.write_error_count = 1  # refused before it was made: nothing landed
        with pytest.raises(MegaplanUncertainError):
            await outbox.applier(crm).apply(second)
        # after a restart: the worker knows the first deal from the outbox only
        crm_id, note = await outbox.applier(crm).apply(await outbox.uncertain_again(second))
    assert len(outbox.mp.deals) == 2
    assert crm_id != made
    assert note is None


async def test_a_deal_just_made_for_another_call_is_not_taken_before_it_is_recorded(
    outbox: Outbox,
) -> None:
    async with crm_client(outbox) as crm:
        applier = outbox.applier(crm)
        first, second = await outbox.deal("call-1"), await outbox.deal("call-2")
        outbox.mp.faults.write_error_count = 1
        with pytest.raises(MegaplanUncertainError):
            await applier.apply(second)
        made, _ = await applier.apply(first)  # made; the worker has not recorded it yet
        crm_id, _ = await applier.apply(await outbox.uncertain_again(second))
    assert len(outbox.mp.deals) == 2
    assert crm_id != made


async def test_calls_of_one_client_at_once_make_one_deal_when_only_if_none_open(
    outbox: Outbox,
) -> None:
    outbox.mp.faults.latency_ms = 50  # both would look before either made its deal
    async with crm_client(outbox) as crm:
        applier = outbox.applier(crm)
        rows = [await outbox.deal(f"call-{n}", only_if_none_open=True) for n in range(3)]
        results = await asyncio.gather(*(applier.apply(r) for r in rows))
    assert len(outbox.mp.deals) == 1
    assert sorted(note or "" for _, note in results) == [
        "", "the client has an open deal", "the client has an open deal"]
