"""``mango-router replay``: yesterday's calls with other settings, compared, nothing written."""

from __future__ import annotations

import asyncio
import os
import sys
import time
from pathlib import Path

import orjson

from lookup.journal import JournalEntry, write_journal
from tests.automation import calls
from tests.automation.calls import EntryWriter
from tests.automation.conftest import Crm
from tests.automation.test_engine import DEAL, LINE, MISSED_DEAL, NEW, known_client
from tests.cli.test_main import ENV

OTHER_NEW = "79990003344"


async def _replay(crm: Crm, tmp_path: Path, settings: dict[str, object], *extra: str
                  ) -> tuple[int, str, str]:
    path = tmp_path / "try.json"
    path.write_bytes(orjson.dumps(settings))
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "router", "replay", "--since", "24h", "--settings", str(path),
        *extra, env={**os.environ, **ENV, "DATABASE_URL": crm.svc.dsn},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def test_replay_shows_what_other_settings_would_have_done_and_writes_nothing(
    crm: Crm, tmp_path: Path,
) -> None:
    await crm.settings(accepted_incoming="client")
    _client, phone = known_client(crm)
    answered, missed, known = EntryWriter("r-new"), EntryWriter("r-missed"), EntryWriter("r-known")
    calls.answered(answered, NEW, LINE, [crm.ext(0)])
    calls.offered_and_missed(missed, OTHER_NEW, LINE, [crm.ext(1)])
    calls.answered(known, phone, LINE, [crm.ext(2)])
    for w, count in ((answered, 2), (missed, 0), (known, 1)):
        await crm.play(w.events)
        if count:
            await crm.settled(w.entry_id, count)
    await asyncio.sleep(0.3)
    before = await crm.db.fetchval("SELECT count(*) FROM crm_actions")

    code, out, err = await _replay(crm, tmp_path, {
        "accepted_incoming": "client_and_deal", "accepted_deal": DEAL,
        "missed_incoming": "client"}, "--json")
    assert code == 0, err
    report = orjson.loads(out)
    assert report["calls"] == 3
    changes = {c["entry_id"]: c for c in report["changes"]}
    assert set(changes) == {"r-new", "r-missed"}  # the known client's call is the same
    assert changes["r-new"]["would"] == [
        f"create_client (responsible {crm.employee(0)})",
        f"create_deal (program 1, state 2, manager {crm.employee(0)})",
        "record_call (in)"]
    assert changes["r-missed"]["done"] == []
    assert changes["r-missed"]["would"] == [
        f"create_client (responsible {crm.employee(1)})", "record_call (miss)"]
    assert report["totals"]["create_deal"] == {"done": 0, "would": 1}
    assert report["totals"]["create_client"] == {"done": 1, "would": 2}
    assert await crm.db.fetchval("SELECT count(*) FROM crm_actions") == before

    code, text, _ = await _replay(crm, tmp_path, {"accepted_incoming": "client"})
    assert code == 0
    assert "3 calls since" in text
    assert "0 would change" in text


async def test_replay_refuses_settings_that_put_would_refuse(crm: Crm, tmp_path: Path) -> None:
    code, _, err = await _replay(crm, tmp_path, {"accepted_incoming": "client_and_deal"})
    assert code == 2
    assert "accepted_deal" in err
    code, _, err = await _replay(crm, tmp_path, {"no_such_setting": 1})
    assert code == 2
    assert "no_such_setting" in err


CHAINED = "79990005566"


async def _three_calls(crm: Crm, settled: tuple[int, int, int]) -> None:
    """The same new number calls three times, answered at the first extension."""
    for n, count in enumerate(settled, start=1):
        w = EntryWriter(f"chain-{n}", start=int(time.time()))  # as the PBX stamps them
        calls.answered(w, CHAINED, LINE, [crm.ext(0)])
        await crm.play(w.events)
        if count:
            await crm.settled(w.entry_id, count)
    await asyncio.sleep(0.3)


async def test_replay_makes_the_client_a_first_call_would_have_created_known_to_the_next(
    crm: Crm, tmp_path: Path,
) -> None:
    await crm.settings(accepted_incoming="nothing")
    await _three_calls(crm, (0, 0, 0))
    code, out, err = await _replay(crm, tmp_path, {"accepted_incoming": "client"}, "--json")
    assert code == 0, err
    report = orjson.loads(out)
    changes = {c["entry_id"]: c["would"] for c in report["changes"]}
    assert changes == {
        "chain-1": [f"create_client (responsible {crm.employee(0)})", "record_call (in)"],
        "chain-2": ["record_call (in)"], "chain-3": ["record_call (in)"]}
    assert report["totals"]["create_client"] == {"done": 0, "would": 1}
    assert report["totals"]["record_call"] == {"done": 0, "would": 3}
    assert report["responsibles_changed"] == 1


async def test_replay_leaves_a_number_new_when_its_first_call_would_not_have_made_a_client(
    crm: Crm, tmp_path: Path,
) -> None:
    await crm.settings(accepted_incoming="client")
    await _three_calls(crm, (2, 1, 1))
    code, out, err = await _replay(crm, tmp_path, {"accepted_incoming": "nothing"}, "--json")
    assert code == 0, err
    report = orjson.loads(out)
    assert {c["entry_id"]: c["would"] for c in report["changes"]} == {
        "chain-1": [], "chain-2": [], "chain-3": []}
    assert report["totals"]["create_client"] == {"done": 1, "would": 0}
    assert report["totals"]["record_call"] == {"done": 3, "would": 0}


async def test_replay_marks_actions_that_failed_and_does_not_count_them_as_changes(
    crm: Crm, tmp_path: Path,
) -> None:
    await crm.settings(accepted_incoming="client")
    await _three_calls(crm, (2, 1, 1))
    await crm.db.execute("UPDATE crm_actions SET state = 'failed', last_error = 'refused'"
                         " WHERE entry_id = 'chain-2'")
    code, out, err = await _replay(crm, tmp_path, {"accepted_incoming": "client"}, "--json")
    assert code == 0, err
    report = orjson.loads(out)
    assert report["changes"] == []  # what the rules planned is the same; the CRM refused it
    assert report["not_done"] == {"failed": 1}
    code, out, _ = await _replay(crm, tmp_path, {"accepted_incoming": "nothing"})
    assert code == 0
    assert "done:  record_call (in) [failed]" in out
    assert "not (yet) in the CRM: 1 failed" in out


async def test_replay_skips_a_notification_journaled_with_an_empty_entry_id(
    crm: Crm, tmp_path: Path,
) -> None:
    w = EntryWriter("")
    calls.answered(w, CHAINED, LINE, [crm.ext(0)])
    summary = next(e for e in w.events if e.kind == "summary")
    status, text = await crm.svc.event("events/summary", dict(summary.payload))
    assert (status, orjson.loads(text)["error"]) == (400, "entry_id must not be empty")
    # journaled before the webhook refused it
    account_id = await crm.db.fetchval("SELECT id FROM accounts WHERE name = 'default'")
    await write_journal(crm.db, [JournalEntry(account_id, "summary", "", None, None, None, None,
                                              orjson.dumps(summary.payload).decode())])
    code, out, err = await _replay(crm, tmp_path, {"accepted_incoming": "client"}, "--json")
    assert code == 0, err
    report = orjson.loads(out)
    assert (report["calls"], report["unreadable"]) == (0, 0)  # not even looked at


async def test_replay_keeps_a_client_dropped_since_the_call_as_the_callers_client(
    crm: Crm, tmp_path: Path,
) -> None:
    await crm.settings(accepted_incoming="client")
    client, phone = known_client(crm)
    w = EntryWriter("dropped-since", start=int(time.time()))
    calls.answered(w, phone, LINE, [crm.ext(2)])
    await crm.play(w.events)
    await crm.settled(w.entry_id, 1)
    await crm.db.execute("UPDATE clients SET dropped = true WHERE crm_id = $1", client)
    code, out, err = await _replay(crm, tmp_path, {"accepted_incoming": "client"}, "--json")
    assert code == 0, err
    assert orjson.loads(out)["changes"] == []  # not a new number that would make a client


async def test_replay_in_a_dry_run_leaves_every_call_of_a_new_number_new(
    crm: Crm, tmp_path: Path,
) -> None:
    await crm.settings(accepted_incoming="client", dry_run=True)
    await _three_calls(crm, (2, 2, 2))  # nothing is made, so each call plans a client
    code, out, err = await _replay(crm, tmp_path, {"accepted_incoming": "client"}, "--json")
    assert code == 0, err
    report = orjson.loads(out)
    assert report["changes"] == []
    assert report["not_done"] == {"dry_run": 6}


async def test_replay_gives_a_client_dropped_since_its_responsible_as_the_deals_manager(
    crm: Crm, tmp_path: Path,
) -> None:
    await crm.settings(repeat_calls="always_deal", accepted_deal=DEAL, missed_deal=MISSED_DEAL)
    client, phone = known_client(crm)
    w = EntryWriter("missed-dropped", start=int(time.time()))
    calls.offered_and_missed(w, phone, LINE, [crm.ext(2)])
    await crm.play(w.events)
    done = await crm.settled(w.entry_id, 2)
    assert {a["action"] for a in done} == {"create_deal", "record_call"}
    await crm.db.execute("UPDATE clients SET dropped = true WHERE crm_id = $1", client)
    code, out, err = await _replay(crm, tmp_path, {"repeat_calls": "always_deal"}, "--json")
    assert code == 0, err
    assert orjson.loads(out)["changes"] == []  # the deal's manager: the client's responsible
