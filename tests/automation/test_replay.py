"""``mango-router replay``: yesterday's calls with other settings, compared, nothing written."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

import orjson

from tests.automation import calls
from tests.automation.calls import EntryWriter
from tests.automation.conftest import Crm
from tests.automation.test_engine import DEAL, LINE, NEW, known_client
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
