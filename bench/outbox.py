"""``python -m bench.outbox [--quick]``: the CRM outbox's three figures.

- Backlog drain: the actions of many calls are planned while the account has no
  CRM yet (the outbox's worker is not running), then its CRM is set: the time
  until the outbox is empty, against (actions ÷ rate cap) + 10 %.
- Outage: calls while the CRM answers 503 to everything for a minute; afterwards
  every action has landed once, and the time from the CRM's return to an empty
  outbox.
- Memory of the live call model: bytes per call in progress that
  ``CallAutomation`` keeps.

Real components on loopback: ``mango-router serve`` on an embedded PostgreSQL
(this process owns it and watches the outbox with SQL), calls posted through the
real webhooks in the PBX's signed form by the benchmark's load generator, the
Megaplan emulator (150 ms per request, its rate cap equal to ``MEGAPLAN_RATE``)
in its own process; "exactly once" is read from the emulator's counters. Prints
the figures and writes ``bench/out/outbox.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import atexit
import base64
import gc
import logging
import os
import shutil
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, cast

import asyncpg
import orjson

from automation.engine import CallAutomation
from automation.outbox import LOCK_CLASS as OUTBOX_LOCK
from bench.auto import (
    action_counts,
    automation_settings,
    ivr_employee,
    pbx_users,
    prepare_account,
    put_settings,
    service_counts,
)
from bench.command import output_folder, start_command
from bench.crm import CrmProcess
from bench.data import DatasetInfo, plan_calls, write_dataset
from bench.loadgen import StepReport, StepSpec, loadgen_main
from bench.modes import LINE_NUMBER
from bench.pbxproc import PbxProcess
from bench.procs import ChildProcess, free_port
from bench.report import machine_description
from bench.service import ServiceProcess, ServiceSpec, product_command, run_import

__all__ = [
    "OutboxConfig",
    "bytes_per_live_call",
    "expected_actions",
    "landed_once",
    "main",
    "run",
]

logger = logging.getLogger(__name__)

HOST = "127.0.0.1"
API_KEY = "bench-outbox-key"
API_SALT = "bench-outbox-salt"
TOKEN = "bench-outbox-operator"
_OUT = Path(__file__).resolve().parent / "out"
_ENV_DROP = ("ROUTER_", "MANGO_", "MEGAPLAN_", "ROUTE_", "DATABASE_URL", "XDG_RUNTIME_DIR")
_POLL_S = 0.2
_PLANNED_QUIET_S = 1.5  # the outbox's size has not changed this long: every call is planned
# what each action landing once does to the emulator's counters
_APPLIED = {"create_client": "client_created", "create_deal": "deal_created",
            "record_call": "call_recorded"}


@dataclass(frozen=True, slots=True, kw_only=True)
class OutboxConfig:
    quick: bool
    clients: int  # the data set (the CRM and the copy)
    backlog_calls: int
    outage_calls: int
    down_s: float
    post_rate: int  # calls per second posted to the webhooks
    outage_post_rate: int
    crm_rate: int  # the emulator's rate cap and MEGAPLAN_RATE
    crm_latency_ms: float
    live_calls: int
    margin: float  # the drain may take this much longer than actions ÷ rate
    seed: int
    out_dir: Path

    @staticmethod
    def full() -> OutboxConfig:
        # 10,000 calls plan ~21,000 actions (a deal and the call for a known client, and
        # the client too for a new number): 140 s at 150 requests/s
        return OutboxConfig(quick=False, clients=20_000, backlog_calls=10_000,
                            outage_calls=1000, down_s=60.0, post_rate=500, outage_post_rate=100,
                            crm_rate=150, crm_latency_ms=150.0, live_calls=100_000,
                            margin=0.10, seed=20240601, out_dir=_OUT)

    @staticmethod
    def quick_run() -> OutboxConfig:
        # 2,000 calls: the worker's start (about a second) stays within the 10 % margin
        return replace(OutboxConfig.full(), quick=True, clients=5000, backlog_calls=2000,
                       outage_calls=200, down_s=15.0)


# --- checks --------------------------------------------------------------------------
def expected_actions(numbers: Iterable[str], known: Mapping[str, str], new_before: set[str]
                     ) -> int:
    """What the benchmark's calls (missed in the voice menu) plan with
    ``bench.auto.automation_settings``: a deal and the call on the card for a client's
    number; a new number's first call makes its client too. ``new_before``: new numbers
    that called before (updated)."""
    total = 0
    for number in numbers:
        total += 2
        if number not in known and number not in new_before:
            new_before.add(number)
            total += 1
    return total


def landed_once(done: Mapping[str, int], applied: Mapping[str, int]) -> list[str]:
    """How the emulator's counters (a delta over the measured part) differ from every
    done action having landed exactly once; empty when they agree."""
    problems = []
    for action, counter in _APPLIED.items():
        if done.get(action, 0) != applied.get(counter, 0):
            problems.append(f"{action}: {done.get(action, 0)} done, the CRM counted "
                            f"{applied.get(counter, 0)} {counter}")
    if applied.get("call_updated", 0):
        problems.append(f"{applied['call_updated']} calls were posted again")
    others = set(done) - set(_APPLIED)
    if others:
        problems.append(f"unexpected actions {sorted(others)}")
    return problems


def _delta(after: Mapping[str, int], before: Mapping[str, int]) -> dict[str, int]:
    return {k: after.get(k, 0) - before.get(k, 0) for k in set(after) | set(before)
            if after.get(k, 0) != before.get(k, 0)}


# --- memory --------------------------------------------------------------------------
class _NoAccounts:
    def by_id(self, account_id: int, /) -> None:
        return None


def _entry_id(i: int) -> str:
    """Shaped like MANGO OFFICE's: base64 of the PBX's ids, 40-odd characters."""
    return base64.b64encode(f"{400000000 + i}:{1000 + i % 97}:{1700000000 + i}".encode()
                            ).decode()


def bytes_per_live_call(calls: int) -> dict[str, float]:
    """What ``CallAutomation`` keeps per call in progress (its entry id included: it
    holds the only reference once the request is answered): traced allocations,
    and the process's RSS growth."""
    gc.collect()
    rss0 = _rss()
    automation = CallAutomation(cast(asyncpg.Pool, None), _NoAccounts())
    for i in range(calls):
        automation.seen(1, _entry_id(i), plan_now=False, at=time.time())
    rss = (_rss() - rss0) / calls
    assert len(automation) == calls
    del automation
    gc.collect()
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        automation = CallAutomation(cast(asyncpg.Pool, None), _NoAccounts())
        for i in range(calls):
            automation.seen(1, _entry_id(i), plan_now=False, at=time.time())
        traced = (tracemalloc.get_traced_memory()[0] - base) / calls
        del automation
    finally:
        tracemalloc.stop()
    return {"traced_bytes_per_call": round(traced, 1), "rss_bytes_per_call": round(rss, 1)}


def _rss() -> int:
    with open("/proc/self/statm", encoding="ascii") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


# --- the run ---------------------------------------------------------------------------
@dataclass(slots=True, kw_only=True)
class _Rig:
    cfg: OutboxConfig
    dsn: str
    work: Path
    info: DatasetInfo
    con: asyncpg.Connection
    account_id: int
    crm: CrmProcess
    pbx: PbxProcess
    loadgen: ChildProcess
    service: ServiceProcess
    new_numbers: set[str]
    notes: list[str]


def _env(data_dir: Path, dsn: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(_ENV_DROP)}
    (data_dir / "run").mkdir(parents=True, exist_ok=True, mode=0o700)
    env.update(ROUTER_DATA_DIR=str(data_dir), XDG_RUNTIME_DIR=str(data_dir / "run"),
               DATABASE_URL=dsn, ROUTER_HOST=HOST, MANGO_API_KEY=API_KEY,
               MANGO_API_SALT=API_SALT, ROUTER_LOG_LEVEL="WARNING")
    env.update(extra)
    return env


async def _post_calls(rig: _Rig, n: int, rate: int, prefix: str, seed: int) -> tuple[int, float]:
    """``n`` calls through the webhooks; (actions they should plan, seconds posting)."""
    plan = plan_calls(rig.info, n, seed=seed, known_share=0.9)
    seconds = n / rate
    spec = StepSpec(host=HOST, port=rig.service.spec.port, api_key=API_KEY, salt=API_SALT,
                    rate=rate, seconds=seconds, connected_s=0.1, end_s=1.1,
                    numbers=plan.numbers, line_number=LINE_NUMBER, call_prefix=prefix)
    t = time.monotonic()
    report: StepReport = await asyncio.to_thread(rig.loadgen.call, ("step", spec),
                                                 seconds + 120)
    took = time.monotonic() - t
    await asyncio.to_thread(rig.pbx.drain)  # the routes are not measured here
    if report.errors:
        rig.notes.append(f"{prefix}: {report.errors} webhook requests failed "
                         f"({report.first_error})")
    return expected_actions(plan.numbers, rig.info.expected, rig.new_numbers), took


async def _planned(rig: _Rig, expected_total: int, *, within: float) -> int:
    """Wait until the outbox holds ``expected_total`` actions and stops growing."""
    deadline = time.monotonic() + within
    last, quiet_since = -1, time.monotonic()
    while True:
        n: int = await rig.con.fetchval(
            "SELECT count(*) FROM crm_actions WHERE account_id = $1", rig.account_id)
        now = time.monotonic()
        if n != last:
            last, quiet_since = n, now
        elif n >= expected_total and now - quiet_since >= _PLANNED_QUIET_S:
            return n
        if now > deadline:
            return n
        await asyncio.sleep(_POLL_S)


async def _drained(rig: _Rig, *, within: float) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        pending: int = await rig.con.fetchval(
            "SELECT count(*) FROM crm_actions WHERE account_id = $1 AND state = 'pending'",
            rig.account_id)
        if pending == 0:
            return True
        await asyncio.sleep(_POLL_S)
    return False


def _attempts(rig: _Rig) -> dict[str, dict[str, int]]:
    """The worker's attempts by action and outcome (done, retry, uncertain, failed)."""
    found: dict[str, dict[str, int]] = service_counts(rig.service.base_url)["attempts"]
    return found


def _attempts_delta(after: Mapping[str, Mapping[str, int]],
                    before: Mapping[str, Mapping[str, int]]) -> dict[str, dict[str, int]]:
    out = {k: _delta(after.get(k, {}), before.get(k, {})) for k in after}
    return {k: v for k, v in out.items() if v}


async def _last_done(rig: _Rig) -> datetime:
    found: datetime = await rig.con.fetchval(
        "SELECT max(done_at) FROM crm_actions WHERE account_id = $1", rig.account_id)
    return found


def _done(counts: Mapping[str, Mapping[str, int]]) -> dict[str, int]:
    return {a: s.get("done", 0) for a, s in counts.items() if s.get("done")}


def _state_total(counts: Mapping[str, Mapping[str, int]], state: str) -> int:
    return sum(s.get(state, 0) for s in counts.values())


async def _backlog_drain(rig: _Rig) -> dict[str, Any]:
    cfg = rig.cfg
    logger.info("drain: posting %d calls at %d/s (the outbox's lock held here meanwhile)",
                cfg.backlog_calls, cfg.post_rate)
    # As another replica would: while this connection holds the account's outbox lock,
    # no worker of the service applies anything, and the planned actions pile up.
    holder = await asyncpg.connect(rig.dsn)
    assert await holder.fetchval("SELECT pg_try_advisory_lock($1, $2)", OUTBOX_LOCK,
                                 rig.account_id)
    await rig.con.execute(
        """UPDATE accounts SET megaplan_url = $2, megaplan_username = 'demo',
                               megaplan_password = 'demo' WHERE id = $1""",
        rig.account_id, rig.crm.url)
    expected, took = await _post_calls(rig, cfg.backlog_calls, cfg.post_rate, "drain-", 1)
    planned = await _planned(rig, expected, within=60)
    counts = await action_counts(rig.con, rig.account_id)
    logger.info("drain: %d actions planned (%d expected) in %.1f s of posting: %s",
                planned, expected, took, counts)
    before = await asyncio.to_thread(rig.crm.stats)
    tried = await asyncio.to_thread(_attempts, rig)
    # the lock goes with its connection: the service's worker takes it within its retry
    started: datetime = await rig.con.fetchval("SELECT clock_timestamp()")
    await holder.close()
    ideal = planned / cfg.crm_rate
    target = ideal * (1 + cfg.margin)
    emptied = await _drained(rig, within=max(120.0, target * 3))
    seconds = ((await _last_done(rig)) - started).total_seconds()
    first: datetime = await rig.con.fetchval(
        "SELECT min(done_at) FROM crm_actions WHERE account_id = $1", rig.account_id)
    after_counts = await action_counts(rig.con, rig.account_id)
    after = await asyncio.to_thread(rig.crm.stats)
    attempts = _attempts_delta(await asyncio.to_thread(_attempts, rig), tried)
    per_second = [r["n"] for r in await rig.con.fetch(
        """SELECT s, count(a.id) AS n
           FROM generate_series(0, floor(extract(epoch FROM $2::timestamptz - $1))::int) s
           LEFT JOIN crm_actions a ON a.account_id = $3 AND a.state = 'done'
                AND floor(extract(epoch FROM a.done_at - $1))::int = s
           GROUP BY s ORDER BY s""", started, await _last_done(rig), rig.account_id)]
    applied = _delta(after["applied"], before["applied"])
    done = _done(after_counts)
    problems = landed_once(done, applied)
    failed = _state_total(after_counts, "failed")
    if failed:
        problems.append(f"{failed} actions failed")
    if not emptied:
        problems.append("the outbox was not empty in time")
    if planned != expected:
        problems.append(f"{planned} actions planned, {expected} expected")
    out = {
        "calls": cfg.backlog_calls,
        "actions": planned,
        "expected_actions": expected,
        "by_action": done,
        "crm_rate": cfg.crm_rate,
        "crm_latency_ms": cfg.crm_latency_ms,
        "seconds": round(seconds, 2),
        "ideal_seconds": round(ideal, 2),
        "target_seconds": round(target, 2),
        "passed": emptied and seconds <= target,
        "achieved_rate": round(planned / seconds, 1) if seconds > 0 else None,
        "first_done_after_s": round((first - started).total_seconds(), 2),
        "crm_requests": after["requests"] - before["requests"],
        "tokens_issued": after["tokens_issued"] - before["tokens_issued"],
        "attempts": attempts,
        "done_per_second": per_second,
        "exactly_once": not problems,
        "problems": problems,
    }
    logger.info("drain: %d actions in %.1f s (target %.1f s): %.1f actions/s; %s",
                planned, seconds, target, out["achieved_rate"] or 0,
                "every one landed once" if not problems else "; ".join(problems))
    return out


async def _outage(rig: _Rig) -> dict[str, Any]:
    cfg = rig.cfg
    counts0 = await action_counts(rig.con, rig.account_id)
    last0: int = await rig.con.fetchval(
        "SELECT coalesce(max(id), 0) FROM crm_actions WHERE account_id = $1", rig.account_id)
    before = await asyncio.to_thread(rig.crm.stats)
    tried = await asyncio.to_thread(_attempts, rig)
    await asyncio.to_thread(rig.crm.down_for, cfg.down_s)
    back_at = time.monotonic() + cfg.down_s
    down: datetime = await rig.con.fetchval("SELECT clock_timestamp()")
    logger.info("outage: the CRM is down for %.0f s; posting %d calls at %d/s",
                cfg.down_s, cfg.outage_calls, cfg.outage_post_rate)
    expected, _took = await _post_calls(rig, cfg.outage_calls, cfg.outage_post_rate, "outage-",
                                        2)
    planned_all = await _planned(rig, sum(sum(s.values()) for s in counts0.values()) + expected,
                                 within=60)
    planned = planned_all - sum(sum(s.values()) for s in counts0.values())
    await asyncio.sleep(max(0.0, back_at - time.monotonic()))
    back: datetime = await rig.con.fetchval("SELECT clock_timestamp()")
    emptied = await _drained(rig, within=max(120.0, cfg.down_s + 60))
    seconds = ((await _last_done(rig)) - back).total_seconds()
    early: int = await rig.con.fetchval(
        """SELECT count(*) FROM crm_actions
           WHERE account_id = $1 AND id > $2 AND done_at < $3""",
        rig.account_id, last0, down + timedelta(seconds=cfg.down_s))
    after_counts = await action_counts(rig.con, rig.account_id)
    after = await asyncio.to_thread(rig.crm.stats)
    attempts = _attempts_delta(await asyncio.to_thread(_attempts, rig), tried)
    applied = _delta(after["applied"], before["applied"])
    done = _delta(_done(after_counts), _done(counts0))
    problems = landed_once(done, applied)
    failed = _state_total(after_counts, "failed") - _state_total(counts0, "failed")
    pending = _state_total(after_counts, "pending")
    if failed:
        problems.append(f"{failed} actions failed")
    if pending:
        problems.append(f"{pending} actions still pending")
    if planned != expected:
        problems.append(f"{planned} actions planned, {expected} expected")
    if early:
        problems.append(f"{early} actions done while the CRM was down")
    out = {
        "calls": cfg.outage_calls,
        "down_seconds": cfg.down_s,
        "actions": planned,
        "expected_actions": expected,
        "by_action": done,
        "drain_after_back_s": round(seconds, 2) if emptied else None,
        "crm_requests": after["requests"] - before["requests"],
        "attempts": attempts,
        "every_action_once": not problems,
        "problems": problems,
    }
    logger.info("outage: %d actions; the outbox was empty %.1f s after the CRM came back; %s",
                planned, seconds, "every one landed once" if not problems else
                "; ".join(problems))
    return out


def run(cfg: OutboxConfig, *, work_dir: Path | None = None) -> dict[str, Any]:
    started = time.monotonic()
    notes: list[str] = []
    logger.info("memory: %d live calls", cfg.live_calls)
    memory = {"live_calls": cfg.live_calls, **bytes_per_live_call(cfg.live_calls)}
    logger.info("memory: %.0f bytes per live call traced, %.0f by RSS",
                memory["traced_bytes_per_call"], memory["rss_bytes_per_call"])
    work = work_dir or Path(tempfile.mkdtemp(prefix="mango-outbox-"))
    if work_dir is None:
        # at exit, after the embedded server's own handler (registered later, so run
        # first) has stopped it and deleted its data: it takes a lock under ``work``
        atexit.register(shutil.rmtree, work, ignore_errors=True)
    drain, outage = asyncio.run(_crm_figures(cfg, work, notes))
    results: dict[str, Any] = {
        "machine": machine_description(),
        "quick": cfg.quick,
        "config": {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(cfg).items()},
        "drain": drain,
        "outage": outage,
        "memory": memory,
        "notes": notes,
        "elapsed_s": round(time.monotonic() - started, 1),
    }
    (output_folder(cfg.out_dir) / "outbox.json").write_bytes(
        orjson.dumps(results, option=orjson.OPT_INDENT_2) + b"\n")
    return results


async def _crm_figures(cfg: OutboxConfig, work: Path, notes: list[str]
                       ) -> tuple[dict[str, Any], dict[str, Any]]:
    data_dir = (work / "db").resolve()
    (data_dir / "run").mkdir(parents=True, exist_ok=True, mode=0o700)
    os.environ["XDG_RUNTIME_DIR"] = str(data_dir / "run")  # the wheel's lock, read at import
    from lookup.embedded import ensure_embedded

    dsn = await asyncio.to_thread(ensure_embedded, data_dir, throwaway=True)
    info = write_dataset(work / "data.jsonl", clients=cfg.clients, seed=cfg.seed)
    logs = cfg.out_dir / "logs"
    env = _env(data_dir, dsn)
    took = await asyncio.to_thread(run_import, info.path, env=env, cwd=work,
                                   log_path=logs / "outbox-import.log", timeout_s=300)
    logger.info("imported %d clients in %.1f s", info.clients, took)
    con = await asyncpg.connect(dsn)
    stack: list[Any] = []
    try:
        account_id: int = await con.fetchval("SELECT id FROM accounts WHERE name = 'default'")
        await prepare_account(con, account_id)
        pbx = PbxProcess(HOST, free_port(), api_key=API_KEY, salt=API_SALT)
        stack.append(pbx)
        pbx.set_users(pbx_users(info.path))
        crm = CrmProcess(HOST, free_port(), data_file=info.path, clients=info.clients,
                         seed=cfg.seed, latency_ms=cfg.crm_latency_ms,
                         rate_cap_per_s=cfg.crm_rate)
        stack.append(crm)
        loadgen = ChildProcess("load-generator", loadgen_main)
        stack.append(loadgen)
        port = free_port()
        # no MEGAPLAN_URL: the account gets its CRM when the drain's backlog is posted
        spec = ServiceSpec(
            name="mango-router serve (outbox)", argv=[*product_command(), "serve"],
            env=_env(data_dir, dsn, ROUTER_PORT=str(port), MANGO_API_URL=pbx.url,
                     ROUTER_ADMIN_TOKEN=TOKEN, MEGAPLAN_RATE=str(cfg.crm_rate),
                     MEGAPLAN_POLL_SECONDS="3600"),
            cwd=work, host=HOST, port=port, log_path=logs / "serve-outbox.log")
        service = ServiceProcess(spec)
        stack.append(service)
        await asyncio.to_thread(service.start)
        await asyncio.to_thread(put_settings, service.base_url, TOKEN,
                                automation_settings(ivr_employee(info.path)))
        rig = _Rig(cfg=cfg, dsn=dsn, work=work, info=info, con=con, account_id=account_id, crm=crm,
                   pbx=pbx, loadgen=loadgen, service=service, new_numbers=set(), notes=notes)
        drain = await _backlog_drain(rig)
        outage = await _outage(rig)
        return drain, outage
    finally:
        for each in reversed(stack):
            try:
                each.stop()
            except Exception:  # the others are stopped all the same
                logger.exception("stopping %s", each)
        await con.close()


def _verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def _problems(figure: Mapping[str, Any]) -> str:
    return ": " + "; ".join(figure["problems"]) if figure["problems"] else ""


def format_outbox(results: Mapping[str, Any]) -> str:
    d, o, m = results["drain"], results["outage"], results["memory"]
    lines = [
        f"machine: {results['machine']}  quick: {results['quick']}  run: {results['elapsed_s']} s",
        f"backlog drain: {d['calls']} calls, {d['actions']} actions "
        f"({', '.join(f'{k} {v}' for k, v in sorted(d['by_action'].items()))}); CRM at "
        f"{d['crm_latency_ms']:g} ms, cap {d['crm_rate']}/s: empty after {d['seconds']} s "
        f"({d['achieved_rate']} actions/s; first done after {d['first_done_after_s']} s; "
        f"{d['crm_requests']} CRM requests)",
        f"outage: {o['calls']} calls, {o['actions']} actions while the CRM was down "
        f"{o['down_seconds']:g} s; empty {o['drain_after_back_s']} s after it came back; "
        f"{o['crm_requests']} CRM requests",
        f"live call model: {m['live_calls']} calls, {m['traced_bytes_per_call']:.0f} bytes per "
        f"call (tracemalloc), {m['rss_bytes_per_call']:.0f} (RSS growth)",
        "",
        "targets:",
        f"  [{_verdict(d['passed'])}] drain <= actions / rate + 10 %: "
        f"{d['seconds']} s against {d['target_seconds']} s",
        f"  [{_verdict(d['exactly_once'])}] drain: every action landed exactly once"
        + _problems(d),
        f"  [{_verdict(o['every_action_once'])}] outage: every action landed exactly once, "
        "nothing lost" + _problems(o),
    ]
    if results["notes"]:
        lines += ["", "notes:", *(f"  - {n}" for n in results["notes"])]
    return "\n".join(lines)


def parse_args(argv: Sequence[str] | None = None) -> OutboxConfig:
    p = argparse.ArgumentParser(prog="python -m bench.outbox",
                                description="The CRM outbox: backlog drain, outage, memory.")
    p.add_argument("--quick", action="store_true", help="fewer calls, a shorter outage")
    p.add_argument("--calls", type=int, help="backlog calls")
    p.add_argument("--outage-calls", type=int)
    p.add_argument("--down-seconds", type=float)
    p.add_argument("--rate", type=int, help="the CRM's rate cap and MEGAPLAN_RATE")
    p.add_argument("--clients", type=int, help="clients in the data set")
    p.add_argument("--live-calls", type=int)
    p.add_argument("--out", type=Path, help="output directory (default bench/out)")
    a = p.parse_args(argv)
    cfg = OutboxConfig.quick_run() if a.quick else OutboxConfig.full()
    changes: dict[str, Any] = {}
    for name, value in (("backlog_calls", a.calls), ("outage_calls", a.outage_calls),
                        ("down_s", a.down_seconds), ("crm_rate", a.rate),
                        ("clients", a.clients), ("live_calls", a.live_calls),
                        ("out_dir", a.out)):
        if value is not None:
            if not isinstance(value, Path) and value <= 0:
                p.error(f"{name}: must be positive")
            changes[name] = value
    cfg = replace(cfg, **changes)
    if cfg.clients < 100:
        p.error("--clients: at least 100")
    return cfg


def main(argv: Sequence[str] | None = None) -> int:
    cfg = parse_args(argv)
    start_command()
    results = run(cfg)
    sys.stdout.write(format_outbox(results) + "\n")
    logger.info("wrote %s", cfg.out_dir / "outbox.json")
    ok = results["drain"]["exactly_once"] and results["outage"]["every_action_once"]
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
