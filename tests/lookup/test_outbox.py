"""The outbox table's claims against the real database: leases, dependencies, re-claims."""

from __future__ import annotations

import asyncpg

from lookup.accounts import upsert_default_account
from lookup.outbox import (
    NewAction,
    claim_due,
    complete,
    fail,
    give_back,
    plan,
    release_leases,
    retry_later,
)


async def _account(db: asyncpg.Connection) -> int:
    return await upsert_default_account(db, mango_api_key="k", mango_api_salt="s",
                                        mango_api_url="http://127.0.0.1:1/vpbx/",
                                        megaplan=(None, None, None))


async def test_planning_an_action_twice_stores_it_once(db: asyncpg.Connection) -> None:
    account = await _account(db)
    first = await plan(db, account, NewAction(entry_id="e", action="record_call", payload={}))
    again = await plan(db, account, NewAction(entry_id="e", action="record_call", payload={}))
    assert first == (first[0], True)
    assert again == (first[0], False)


async def test_a_claimed_action_is_not_claimed_again_until_its_lease_is_given_back(
    db: asyncpg.Connection,
) -> None:
    account = await _account(db)
    await plan(db, account, NewAction(entry_id="e", action="record_call", payload={}))
    assert len(await claim_due(db, account, limit=10, lease_s=600)) == 1
    assert await claim_due(db, account, limit=10, lease_s=600) == []
    await release_leases(db, account, older_than_s=60)  # claimed just now: kept
    assert await claim_due(db, account, limit=10, lease_s=600) == []
    await release_leases(db, account, older_than_s=0)
    assert len(await claim_due(db, account, limit=10, lease_s=600)) == 1


async def test_a_create_claimed_again_is_uncertain_whatever_became_of_its_worker(
    db: asyncpg.Connection,
) -> None:
    account = await _account(db)
    await plan(db, account, NewAction(entry_id="e", action="create_client", payload={}))
    await plan(db, account, NewAction(entry_id="e", action="record_call", payload={}))
    first = {r.action: r for r in await claim_due(db, account, limit=10, lease_s=600)}
    assert not first["create_client"].uncertain
    await release_leases(db, account, older_than_s=0)  # its worker vanished mid-request
    again = {r.action: r for r in await claim_due(db, account, limit=10, lease_s=600)}
    assert again["create_client"].uncertain  # it may have landed: look before creating
    assert not again["record_call"].uncertain  # safe to repeat anyway


async def test_a_stopping_worker_gives_back_only_claims_nobody_took_since(
    db: asyncpg.Connection,
) -> None:
    account = await _account(db)
    for entry in ("mine", "taken"):
        await plan(db, account, NewAction(entry_id=entry, action="create_deal", payload={}))
    claimed = {r.entry_id: r for r in await claim_due(db, account, limit=10, lease_s=600)}
    # another worker (its lock lost by this one) took "taken" back and claimed it again
    await db.execute("UPDATE crm_actions SET due_at = now() WHERE entry_id = 'taken'")
    again = await claim_due(db, account, limit=10, lease_s=600)
    assert [r.entry_id for r in again] == ["taken"]
    await give_back(db, [(r.id, r.attempts) for r in claimed.values()], after_s=0)
    # "mine" is due again; "taken" stays with the worker that has it now
    assert [r.entry_id for r in await claim_due(db, account, limit=10, lease_s=600)] == ["mine"]


async def test_a_backoff_is_kept_when_a_new_worker_takes_over(db: asyncpg.Connection) -> None:
    account = await _account(db)
    await plan(db, account, NewAction(entry_id="e", action="record_call", payload={}))
    [row] = await claim_due(db, account, limit=10, lease_s=600)
    await retry_later(db, row.id, error="down", delay_s=30, uncertain=False)
    await release_leases(db, account, older_than_s=0)
    assert await claim_due(db, account, limit=10, lease_s=600) == []


async def test_an_action_waits_for_the_one_that_makes_its_client(db: asyncpg.Connection) -> None:
    account = await _account(db)
    create, _ = await plan(db, account, NewAction(entry_id="e", action="create_client",
                                                  payload={}))
    await plan(db, account, NewAction(entry_id="e", action="create_deal", payload={},
                                      depends_on=create))
    assert [r.action for r in await claim_due(db, account, limit=10, lease_s=600)] == [
        "create_client"]
    await complete(db, create, crm_id="42")
    [deal] = await claim_due(db, account, limit=10, lease_s=600)
    assert (deal.action, deal.dependency_state, deal.dependency_crm_id) == (
        "create_deal", "done", "42")


async def _due(db: asyncpg.Connection, *ids: int) -> list[bool]:
    """Whether each of these actions is due now."""
    return [await db.fetchval("SELECT due_at <= now() FROM crm_actions WHERE id = $1", i)
            for i in ids]


async def test_a_backoff_moves_what_waits_for_the_action_behind_it_and_its_end_brings_it_back(
    db: asyncpg.Connection,
) -> None:
    """Left in front of the due order, the dependents of a backed-off create would be
    read and skipped by every claim while it waits."""
    account = await _account(db)
    create, _ = await plan(db, account, NewAction(entry_id="e", action="create_client",
                                                  payload={}))
    record, _ = await plan(db, account, NewAction(entry_id="e", action="record_call",
                                                  payload={}, depends_on=create))
    link, _ = await plan(db, account, NewAction(entry_id="e", action="recording", payload={},
                                                depends_on=record))
    other, _ = await plan(db, account, NewAction(entry_id="f", action="record_call",
                                                 payload={}))
    [claimed] = await claim_due(db, account, limit=1, lease_s=600)
    assert claimed.id == create
    await retry_later(db, create, error="down", delay_s=60, uncertain=True)
    times = await db.fetch("SELECT id, due_at FROM crm_actions ORDER BY id")
    assert [r["due_at"] for r in times[:3]] == [times[0]["due_at"]] * 3  # with the create
    assert await _due(db, create, record, link, other) == [False, False, False, True]
    later, _ = await plan(db, account, NewAction(entry_id="g", action="record_call",
                                                 payload={}, depends_on=create))
    assert await _due(db, later) == [False]  # a call of the same number, planned now

    await db.execute("UPDATE crm_actions SET due_at = now() WHERE id = $1", create)
    await complete(db, create, crm_id="42")
    assert await _due(db, record, link, later) == [True, False, True]  # the link: the record
    await fail(db, record, error="refused")
    assert await _due(db, link) == [True]


async def test_an_action_planned_while_the_one_it_waits_for_is_tried_is_due_at_once(
    db: asyncpg.Connection,
) -> None:
    """Not at the end of that try's lease: the try's end makes due only the actions
    there were when it ended, and one planned meanwhile may commit after it."""
    account = await _account(db)
    create, _ = await plan(db, account, NewAction(entry_id="e", action="create_client",
                                                  payload={}))
    [claimed] = await claim_due(db, account, limit=1, lease_s=600)
    assert claimed.id == create
    record, _ = await plan(db, account, NewAction(entry_id="f", action="record_call",
                                                  payload={}, depends_on=create))
    assert await _due(db, record) == [True]
