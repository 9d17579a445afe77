"""Deals applied once: the look-before-create of an uncertain deal finds its own deal and
no other, and one client's deals are made one at a time (the Megaplan emulator as a real
server, the outbox in a real database)."""

from __future__ import annotations

import asyncio

import pytest

from emulators.megaplan_store import LINE_FIELD_NAME
from lookup.outbox import ActionRow, NewAction, claim_due, plan
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


async def _new_client_row(outbox: Outbox, entry_id: str, phone_key: int) -> ActionRow:
    async with outbox.pool.acquire() as con:
        action_id, _ = await plan(con, outbox.account.id, NewAction(
            entry_id=entry_id, action="create_client", payload={
                "name": f"Новый {entry_id}", "phone": f"+{phone_key}", "phone_key": phone_key,
                "responsible_id": outbox.manager_id, "creator_id": outbox.manager_id,
                "line": "74951112233"}))
        [row] = [r for r in await claim_due(con, outbox.account.id, limit=100, lease_s=600)
                 if r.id == action_id]
    return row


async def test_the_line_field_added_while_the_worker_runs_is_used_once_looked_up_again(
    outbox: Outbox, monkeypatch: pytest.MonkeyPatch,
) -> None:
    fields = list(outbox.mp.extra_fields)
    outbox.mp.extra_fields = [f for f in fields if f[0] != LINE_FIELD_NAME]  # not there yet
    async with crm_client(outbox) as crm:
        applier = outbox.applier(crm)
        first, _ = await applier.apply(await _new_client_row(outbox, "before", 79990000101))
        outbox.mp.extra_fields = fields  # the admin adds it
        monkeypatch.setattr("automation.actions._LINE_FIELD_TTL_S", 0.0)  # time has passed
        second, _ = await applier.apply(await _new_client_row(outbox, "after", 79990000102))
    assert first is not None
    assert second is not None
    assert LINE_FIELD_NAME not in outbox.mp.clients[first].extra
    assert outbox.mp.clients[second].extra.get(LINE_FIELD_NAME) == "74951112233"


_CALL = {"type": "in", "from_phone": "79161234567", "to_phone": "74951112233",
         "from_user": None, "time_from": 1764590400, "time_to": 1764590700}


async def _claimed(outbox: Outbox, action: NewAction) -> ActionRow:
    async with outbox.pool.acquire() as con:
        action_id, _ = await plan(con, outbox.account.id, action)
        [row] = [r for r in await claim_due(con, outbox.account.id, limit=100, lease_s=600)
                 if r.id == action_id]
    return row


async def test_a_call_goes_on_the_card_as_a_comment_when_the_crm_has_no_call_history(
    outbox: Outbox,
) -> None:
    outbox.mp.call_history = False  # callInfo/history answers 404
    first = await _claimed(outbox, NewAction(entry_id="no-history", action="record_call",
                                             payload={**_CALL, "client_id": outbox.client_id,
                                                      "to_user": outbox.manager_id,
                                                      "recordings": ["rec-1"]}))
    async with crm_client(outbox) as crm:
        crm_id, note = await outbox.applier(crm).apply(first)
        await outbox.complete(first, crm_id)
        # the post with the recording's link acts on what the first one made: the client
        links = await _claimed(outbox, NewAction(
            entry_id="no-history", action="record_call", subject="recordings:rec-1",
            depends_on=first.id, payload={**_CALL, "to_user": outbox.manager_id,
                                          "recordings": ["rec-1"]}))
        again, _ = await outbox.applier(crm).apply(links)
    comment, with_link = outbox.mp.comments
    assert (crm_id, note) == (outbox.client_id,
                              f"comment {comment['id']}: the CRM has no call history")
    assert again == outbox.client_id
    assert comment["subject"]["id"] == with_link["subject"]["id"] == outbox.client_id
    # 12:00-12:05 UTC, in the account's timezone (Moscow by default)
    assert comment["content"].startswith("Входящий звонок: 79161234567 → 74951112233\n"
                                         "01.12.2025 15:00–15:05\nЗапись: http")
