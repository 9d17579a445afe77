"""The CRM emulator (``emulators/megaplan.py``) in its own process, over the same data
the service imported: it answers the per-call ``callRoute`` of the ``crm`` mode and
the writes of the call automation (``auto`` mode, ``bench.outbox``) after an injected
latency, under a rate cap. The parent reads its counters (what landed, how often) and
changes its faults (an outage) over the pipe."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from bench.procs import ChildProcess, new_event_loop, serve_pipe

__all__ = ["CrmProcess", "crm_main", "crm_stats", "crm_unavailable"]

logger = logging.getLogger(__name__)

# what the parent may change while it runs (numbers only: the rest is not for a bench)
_FAULTS = frozenset({"latency_ms", "rate_cap_per_s", "write_error_rate", "lost_answer_rate",
                     "throttle_rate", "retry_after_s"})


def crm_unavailable() -> str | None:
    """Why the CRM emulator cannot be used, or None when it can."""
    try:
        from emulators.megaplan import serve_megaplan  # noqa: F401
    except ImportError as exc:
        return f"emulators.megaplan cannot be imported ({exc})"
    return None


def crm_main(
    conn: Connection, host: str, port: int, data_file: str, clients: int, seed: int,
    latency_ms: float, rate_cap_per_s: int = 0,
) -> None:
    logging.basicConfig(level=logging.WARNING)
    # a client that goes away mid-request (the service stopped) is not the emulator's error
    logging.getLogger("aiohttp.server").setLevel(logging.CRITICAL)
    with asyncio.Runner(loop_factory=new_event_loop) as runner:
        try:
            runner.run(_serve(conn, host, port, data_file, clients, seed, latency_ms,
                              rate_cap_per_s))
        except Exception as exc:
            logger.exception("CRM emulator failed")
            conn.send(("error", f"{type(exc).__name__}: {exc}"))


def crm_stats(state: Any) -> dict[str, Any]:
    """What the automation's writes did to the emulated CRM (``MegaplanState``)."""
    posts = state.call_posts
    return {
        "applied": dict(state.applied),
        "clients_created": len(state.created_client_ids),
        "distinct_clients_created": len(set(state.created_client_ids)),
        "deals": len(state.deals),
        "calls": len(state.call_infos),
        "calls_posted_twice": sum(1 for n in posts.values() if n > 1),
        "requests": state.request_count,
        "tokens_issued": state.tokens_issued,
    }


async def _serve(
    conn: Connection, host: str, port: int, data_file: str, clients: int, seed: int,
    latency_ms: float, rate_cap_per_s: int,
) -> None:
    from emulators.megaplan import generate, load_jsonl, serve_megaplan

    state = load_jsonl(data_file) if data_file else generate(clients, seed)
    state.faults.latency_ms = latency_ms
    state.faults.rate_cap_per_s = rate_cap_per_s

    async def handle(msg: tuple[Any, ...]) -> Any:
        if msg[0] == "stats":
            return crm_stats(state)
        if msg[0] == "faults":
            changes: Mapping[str, float] = msg[1]
            bad = set(changes) - _FAULTS
            if bad:
                raise ValueError(f"unknown faults {sorted(bad)}")
            for name, value in changes.items():
                setattr(state.faults, name, value)
            return None
        if msg[0] == "down_for":
            state.faults.down_for(float(msg[1]))
            return None
        raise ValueError(f"unknown command {msg[0]!r}")

    async with serve_megaplan(state, host, port):
        conn.send(("ok", port))
        await serve_pipe(conn, handle)


class CrmProcess:
    def __init__(
        self, host: str, port: int, *, data_file: Path | None, clients: int, seed: int,
        latency_ms: float, rate_cap_per_s: int = 0,
    ) -> None:
        self.host, self.port = host, port
        self._child = ChildProcess(
            "crm-emulator", crm_main, host, port, str(data_file or ""), clients, seed,
            latency_ms, rate_cap_per_s,
        )
        try:
            self._child.receive(150)
        except BaseException:
            self._child.stop()
            raise

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def stats(self) -> dict[str, Any]:
        """Counters of what landed (see ``crm_stats``)."""
        found: dict[str, Any] = self._child.call(("stats",), 30)
        return found

    def set_faults(self, **changes: float) -> None:
        self._child.call(("faults", changes), 30)

    def down_for(self, seconds: float) -> None:
        """Every request answered 503 for ``seconds`` from now."""
        self._child.call(("down_for", seconds), 30)

    def stop(self) -> None:
        self._child.stop()
