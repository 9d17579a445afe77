"""The call automation in its own process (``ROUTER_AUTOMATION=process``, the default of
``serve``): the real app starts the real child, tells it of the calls it journals,
shows its metrics, restarts it when it dies and ends it on shutdown."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import time

import pytest
from prometheus_client import CollectorRegistry, Counter, Gauge
from prometheus_client.parser import text_string_to_metric_families

from automation.engine import CallAutomation
from cache.index import IndexRegistry
from router import automation_process
from router.automation_process import NICE, SESSIONS_NAME, AutomationProcess
from router.automation_wire import (
    MISSED,
    RelayedMetrics,
    decode_seen,
    encode_metrics,
    encode_seen,
)
from router.config import ConfigError
from router.keys import AUTOMATION
from tests.automation import calls
from tests.automation.calls import EntryWriter
from tests.automation.conftest import (
    Crm,
    CrmFactory,
    crm_factory,  # noqa: F401  # the fixture, shared
    eventually,
)
from tests.automation.test_engine import until_answered
from tests.conftest import make_config

NEW = "79990001122"  # nobody in the emulated CRM has it
LINE = "74951112233"


def child_of(crm: Crm) -> AutomationProcess:
    child = crm.svc.client.app[AUTOMATION]
    assert isinstance(child, AutomationProcess)
    return child


async def running_pid(child: AutomationProcess, *, other_than: int | None = None) -> int:
    async def started() -> bool:
        return child.pid is not None and child.pid != other_than
    await eventually(started, within=15)
    assert child.pid is not None
    return child.pid


async def metric(crm: Crm, name: str, **labels: str) -> float | None:
    text = await (await crm.svc.client.get("/metrics")).text()
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()):
                return s.value
    return None


@pytest.fixture
async def crm_process(crm_factory: CrmFactory) -> Crm:  # noqa: F811
    return await crm_factory(ROUTER_AUTOMATION="process")


async def test_in_its_own_process_the_automation_makes_a_new_numbers_client_once(
    crm_process: Crm,
) -> None:
    crm = crm_process
    await crm.settings(accepted_incoming="client")
    w = EntryWriter("proc-1")
    calls.answered(w, NEW, LINE, [crm.ext(0)])
    await crm.play(w.events)
    actions = await crm.settled("proc-1", 2, within=30)
    assert [(a["action"], a["state"]) for a in actions] == [
        ("create_client", "done"), ("record_call", "done")]
    assert len(crm.mp.created_client_ids) == 1
    # the client made in the child's process is in the serving process's index
    assert await crm.routed_to(NEW, crm.employee(0)) == crm.employee(0)


async def test_the_childs_metrics_are_shown_by_the_serving_process(crm_process: Crm) -> None:
    crm = crm_process
    await crm.settings(accepted_incoming="client")
    w = EntryWriter("proc-metrics")
    calls.answered(w, NEW, LINE, [crm.ext(0)])
    await crm.play(w.events)
    await crm.settled("proc-metrics", 2, within=30)

    async def shown() -> bool:
        done = await metric(crm, "mango_router_crm_actions_total", account="default",
                            kind="record_call", outcome="done")
        return done == 1.0

    await eventually(shown, within=10)
    assert await metric(crm, "mango_router_crm_actions_planned_total", account="default",
                        kind="create_client") == 1.0
    assert await metric(crm, "mango_router_outbox_depth", account="default") == 0.0
    assert await metric(crm, "mango_router_live_calls") is not None
    # the serving process's own metrics are there too
    assert await metric(crm, "mango_router_events_total", account="default",
                        kind="summary") == 1.0


async def test_the_automation_process_runs_at_a_lower_cpu_priority(crm_process: Crm) -> None:
    pid = await running_pid(child_of(crm_process))
    lowered = min(19, os.getpriority(os.PRIO_PROCESS, 0) + NICE)

    async def niced() -> bool:  # the child lowers its own priority as it starts
        idle = not hasattr(os, "SCHED_IDLE") or os.sched_getscheduler(pid) == os.SCHED_IDLE
        return os.getpriority(os.PRIO_PROCESS, pid) == lowered and idle

    await eventually(niced, within=15)

    async def sessions_niced() -> bool:  # and so do its sessions' backends, once open
        backends = [r["pid"] for r in await crm_process.db.fetch(
            "SELECT pid FROM pg_stat_activity WHERE application_name = $1", SESSIONS_NAME)]
        return bool(backends) and all(
            os.getpriority(os.PRIO_PROCESS, b) == NICE for b in backends)

    await eventually(sessions_niced, within=15)


async def test_a_killed_automation_process_is_started_again_and_plans_what_came_meanwhile(
    crm_process: Crm,
) -> None:
    crm = crm_process
    await crm.settings(accepted_incoming="client")
    child = child_of(crm)
    first = await running_pid(child)
    os.kill(first, signal.SIGKILL)
    w = EntryWriter("proc-down")
    calls.answered(w, NEW, LINE, [crm.ext(0)])
    # answered, not ended, while the child is down or starting again: a new child's
    # start replans only ended calls, so this client comes from what serve kept for it
    await crm.play(w.events[:until_answered(w.events)])
    second = await running_pid(child, other_than=first)
    assert second != first
    actions = await crm.settled("proc-down", 1, within=30)
    assert [(a["action"], a["state"]) for a in actions] == [("create_client", "done")]
    assert len(crm.mp.created_client_ids) == 1


async def test_the_automation_process_ends_with_the_service(crm_process: Crm) -> None:
    crm = crm_process
    await crm.settings(accepted_incoming="client")
    pid = await running_pid(child_of(crm))
    w = EntryWriter("proc-stop")
    calls.answered(w, NEW, LINE, [crm.ext(0)])
    await crm.play(w.events)
    await crm.svc.client.close()  # the app's shutdown
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    # what it was told before the end was planned before it went
    planned = await crm.db.fetch(
        "SELECT action FROM crm_actions WHERE entry_id = 'proc-stop' ORDER BY id")
    assert [r["action"] for r in planned] == ["create_client", "record_call"]


# --- the wire ------------------------------------------------------------------------------
def test_events_cross_the_wire_as_they_were_seen() -> None:
    batch = [(1, "entry-1", True, 1764500000.123456), (2, "entry/2 \u044f", False, 1.5)]
    assert decode_seen(encode_seen(batch)) == batch


def test_events_past_the_buffer_are_dropped_with_a_note_of_when_they_began(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(automation_process, "_BUFFER_MOST", 10)
    feed = AutomationProcess(dsn="", rate=1.0, log_level="INFO", indexes=IndexRegistry(),
                             metrics=RelayedMetrics())
    for i in range(25):  # a child that does not read: the buffer stays bounded
        feed.seen(1, f"e{i}", plan_now=False, at=100.0 + i)
        assert len(feed._pending) <= 2 * 10 + 1
    batch = feed._take()
    # the child plans again the journal's calls from the oldest dropped event on
    assert batch[0] == (MISSED, "", False, 100.0)
    assert [e for _, e, _, _ in batch[1:]] == [f"e{i}" for i in range(15, 25)]


@pytest.mark.parametrize("line", [b"not json\n", b'{"a": 1}\n', b"[[1, 2]]\n", b"[1]\n",
                                  b'[[1, "e", true]]\n', b'[[1, "e", true, "soon"]]\n'])
def test_a_line_that_is_not_a_batch_of_events_is_refused(line: bytes) -> None:
    with pytest.raises(ValueError, match="not a batch of events"):
        decode_seen(line)


def test_relayed_metrics_show_what_the_childs_registry_had() -> None:
    child = CollectorRegistry()
    counter = Counter("demo_actions", "Actions.", ["account", "kind"], registry=child)
    counter.labels("a", "create_client").inc(3)
    Gauge("demo_depth", "Depth.", registry=child).set(7)
    relayed = RelayedMetrics()
    parent = CollectorRegistry()
    parent.register(relayed)
    relayed.update(encode_metrics(child))
    got = {(s.name, tuple(sorted(s.labels.items()))): s.value
           for m in parent.collect() for s in m.samples}
    assert got[("demo_actions_total", (("account", "a"), ("kind", "create_client")))] == 3.0
    assert got[("demo_depth", ())] == 7.0
    relayed.clear()
    assert list(parent.collect()) == []


@pytest.mark.parametrize("line", [b"{}\n", b"nonsense\n", b'{"metrics": [[1]]}\n'])
def test_a_line_that_is_not_metrics_is_refused_and_the_last_figures_stay(line: bytes) -> None:
    relayed = RelayedMetrics()
    child = CollectorRegistry()
    Gauge("demo_depth", "Depth.", registry=child).set(1)
    relayed.update(encode_metrics(child))
    with pytest.raises(ValueError, match="not a metrics line"):
        relayed.update(line)
    assert [m.name for m in relayed.collect()] == ["demo_depth"]


def test_automation_mode_is_process_by_default_and_a_bad_one_is_refused() -> None:
    assert make_config("postgresql://x/y", ROUTER_AUTOMATION="").automation_mode == "process"
    with pytest.raises(ConfigError, match="ROUTER_AUTOMATION"):
        make_config("postgresql://x/y", ROUTER_AUTOMATION="thread")



async def test_a_child_whose_planner_ends_exits_so_that_it_is_started_again(
    dsn: str, monkeypatch: pytest.MonkeyPatch,
) -> None:
    async def ends_at_once(_self: CallAutomation) -> None:  # a bug, say
        return None

    monkeypatch.setattr(CallAutomation, "run", ends_at_once)
    handlers = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    ours, theirs = socket.socketpair()
    try:  # the serving process's end stays open: only the ended task can end the child
        with pytest.raises(RuntimeError, match="automation task ended"):
            await asyncio.wait_for(
                automation_process.run_child(theirs, dsn=dsn, rate=3.0), 30)
    finally:
        ours.close()
        theirs.close()
        for s, handler in handlers.items():  # run_child ignores them, as a child should
            signal.signal(s, handler)


async def test_a_child_whose_socket_closes_starts_its_stop_and_bounds_it(dsn: str) -> None:
    """``on_stop`` (the command's ``exit_after``: a child whose serving process was killed
    must not live on) is called as the stop begins, and the stop then ends."""
    handlers = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    stops: list[float] = []
    ours, theirs = socket.socketpair()
    try:
        child = asyncio.create_task(automation_process.run_child(
            theirs, dsn=dsn, rate=3.0, on_stop=lambda: stops.append(time.monotonic())))
        await asyncio.sleep(1.0)  # running: nothing stops it but the socket
        assert not child.done()
        assert stops == []
        ours.close()  # the serving process goes
        async with asyncio.timeout(30):
            await child
        assert len(stops) == 1
    finally:
        ours.close()
        theirs.close()
        for s, handler in handlers.items():
            signal.signal(s, handler)
