"""The outbox table's claims against the real database: leases, dependencies, re-claims."""

from __future__ import annotations

from typing import Any

import asyncpg
import orjson

from lookup.accounts import upsert_default_account
from lookup.outbox import (
    CLAIM_DUE,
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


async def test_a_worker_never_claims_again_what_it_still_has_under_way_even_past_its_lease(
    db: asyncpg.Connection,
) -> None:
    account = await _account(db)
    for entry in ("slow", "other"):
        await plan(db, account, NewAction(entry_id=entry, action="create_deal", payload={}))
    [slow] = await claim_due(db, account, limit=1, lease_s=0)  # its lease runs out at once
    again = await claim_due(db, account, limit=10, lease_s=600, under_way=[slow.id])
    assert [r.entry_id for r in again] == ["other"]
    assert await db.fetchval("SELECT attempts FROM crm_actions WHERE id = $1", slow.id) == 1


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


def _scans(node: dict[str, Any]) -> list[tuple[str, str]]:
    found = [(node["Node Type"], node.get("Relation Name", ""))]
    for child in node.get("Plans", []):
        found += _scans(child)
    return found


async def test_a_claim_reads_the_outbox_by_its_indexes_even_on_a_generic_plan(
    db: asyncpg.Connection,
) -> None:
    """asyncpg prepares its statements, and PostgreSQL may then keep a plan made without
    the account and the limit: it must not read the whole history of actions."""
    account = await _account(db)
    await db.execute(  # a history, and a backlog of creates backed off through an outage
        """INSERT INTO crm_actions (account_id, entry_id, action, payload, state)
           SELECT $1, 'd' || i, 'record_call', '{}', 'done'
           FROM generate_series(1, 20000) AS i""", account)
    await db.execute(
        """WITH c AS (INSERT INTO crm_actions (account_id, entry_id, action, payload, due_at)
                      SELECT $1, 'e' || i, 'create_client', '{}', now() + interval '1 minute'
                      FROM generate_series(1, 10000) AS i RETURNING id, entry_id, due_at)
           INSERT INTO crm_actions (account_id, entry_id, action, payload, depends_on, due_at)
           SELECT $1, c.entry_id, a, '{}', c.id, c.due_at
           FROM c, unnest(ARRAY['create_deal', 'record_call']) AS a""", account)
    await db.execute(
        """INSERT INTO crm_actions (account_id, entry_id, action, payload)
           SELECT $1, 'f' || i, 'record_call', '{}' FROM generate_series(1, 200) AS i""",
        account)
    await db.execute("ANALYZE crm_actions")
    await db.execute("SET plan_cache_mode = force_generic_plan")
    await db.execute(f"PREPARE claim(int, int, float8, bigint[]) AS {CLAIM_DUE}")
    explained = await db.fetchval(
        f"EXPLAIN (ANALYZE, FORMAT JSON) EXECUTE claim({int(account)}, 10, 600, '{{1,2}}')")
    scans = _scans(orjson.loads(explained)[0]["Plan"])
    assert ("Seq Scan", "crm_actions") not in scans, scans
    assert await db.fetchval("SELECT count(*) FROM crm_actions WHERE attempts = 1") == 10
