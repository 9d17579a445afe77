"""The load generator's step against a real server: its connections outlive the step
when it is given the generator's pools, and it reports the ones it had to open."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from bench import loadgen
from bench.loadgen import Pools, StepReport, StepSpec, run_step


@pytest.fixture
async def notified() -> AsyncIterator[tuple[TestServer, list[set[int]]]]:
    """A server answering every notification 200; the client ports it saw, per step."""
    peers: list[set[int]] = [set()]

    async def accept(request: web.Request) -> web.Response:
        peers[-1].add(request.transport.get_extra_info("peername")[1])  # type: ignore[union-attr]
        if b"slow-" in await request.read():  # calls of a step the service falls behind in
            await asyncio.sleep(0.5)
        return web.json_response({"result": 1000})

    app = web.Application()
    app.router.add_post("/mango/events/{kind}", accept)
    srv = TestServer(app, host="127.0.0.1")
    await srv.start_server()
    yield srv, peers
    await srv.close()


def _spec(port: int, prefix: str) -> StepSpec:
    return StepSpec(host="127.0.0.1", port=port, api_key="k", salt="s", rate=100, seconds=0.3,
                    connected_s=0.01, end_s=0.05, numbers=["74951234567"] * 30,
                    line_number="74950000000", call_prefix=prefix)


async def _two_steps(srv: TestServer, peers: list[set[int]],
                     pools: Pools | None) -> tuple[StepReport, StepReport]:
    assert srv.port is not None
    first = await run_step(_spec(srv.port, "a-"), pools)
    peers.append(set())
    second = await run_step(_spec(srv.port, "b-"), pools)
    return first, second


async def _two_pooled_steps(srv: TestServer, peers: list[set[int]]
                            ) -> tuple[StepReport, StepReport, int]:
    """Two steps over one ``Pools``; and the connections its pool opened in all."""
    assert srv.port is not None
    pools = Pools()
    try:
        first, second = await _two_steps(srv, peers, pools)
        return first, second, pools.get(_spec(srv.port, "")).opened
    finally:
        await pools.close()


async def test_a_step_goes_on_over_the_connections_the_step_before_left_open(
    notified: tuple[TestServer, list[set[int]]],
) -> None:
    srv, peers = notified
    first, second, opened = await _two_pooled_steps(srv, peers)
    assert (first.errors, second.errors) == (0, 0)
    # a connection may be opened for a request that a freed one then took: opened and
    # not used (in this step; the next may use it)
    assert first.connects >= len(peers[0]) > 0
    assert peers[1] & peers[0]  # reused
    assert first.connects + second.connects == opened >= len(peers[0] | peers[1])


async def test_without_pools_every_step_opens_its_own_connections(
    notified: tuple[TestServer, list[set[int]]],
) -> None:
    srv, peers = notified
    first, second = await _two_steps(srv, peers, None)
    assert (first.errors, second.errors) == (0, 0)
    assert not peers[1] & peers[0]
    assert second.connects >= len(peers[1]) > 0
    assert srv.runner is not None
    server = srv.runner.server
    assert server is not None
    for _ in range(250):  # until the closes reach the server
        if not server.connections:
            break
        await asyncio.sleep(0.02)
    assert not server.connections  # each step closed its own


async def test_a_step_that_had_to_open_many_connections_closes_its_pool_at_its_end(
    notified: tuple[TestServer, list[set[int]]], monkeypatch: pytest.MonkeyPatch,
) -> None:
    # a saturated service left a thousand connections open; kept, their close later
    # would land in a measured step
    monkeypatch.setattr(loadgen, "_KEEP_AFTER_OPENING", 0)
    srv, peers = notified
    first, second, _ = await _two_pooled_steps(srv, peers)
    assert (first.errors, second.errors) == (0, 0)
    assert not peers[1] & peers[0]


async def test_a_step_that_ended_with_requests_unanswered_closes_its_pool_at_its_end(
    notified: tuple[TestServer, list[set[int]]], monkeypatch: pytest.MonkeyPatch,
) -> None:
    # kept, the late answers would reach the next step's requests
    monkeypatch.setattr(loadgen, "_DRAIN_TIMEOUT_S", 0.1)
    srv, peers = notified
    assert srv.port is not None
    pools = Pools()
    try:
        first = await run_step(_spec(srv.port, "slow-"), pools)
        peers.append(set())
        second = await run_step(_spec(srv.port, "b-"), pools)
    finally:
        await pools.close()
    assert first.errors > 0
    assert second.errors == 0
    assert peers[0]
    assert peers[1]
    assert not peers[1] & peers[0]
