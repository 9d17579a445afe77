"""The hot path: a known client calls, and the call goes to the client's own manager.

Read top to bottom, this is all of it. The trigger's handler starts
``Router.route`` and answers the PBX without waiting. The decision comes from
the in-memory index (no database, no CRM); per account's settings, a call to
a line not listed is not routed, busy responsibles are passed over (the busy
set every replica hears, ``cache.presence``), and a number no client has goes
to the employee who last talked to it (``automation.contacts``), all read
from memory too. The claim across replicas is the
only database statement on the path, and only while other replicas run (it
waits a few milliseconds at most); a replica alone writes it after the route.
The command goes out only while it can still be sent before the deadline; a
miss, an error or a timeout sends nothing, and the PBX's default scheme goes
on. Every decision is recorded (batched) and counted.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import time
from typing import Literal

import asyncpg

from automation.contacts import LastContacts
from cache.index import IndexRegistry
from cache.presence import Presence
from lookup.accounts import Account
from lookup.decisions import DecisionRecord
from lookup.phones import masked, phone_key
from lookup.rules import NO_CLIENT, Decision, decide_by_last_contact
from lookup.sql_lookup import decide_sql
from mango.client import CommandResult, PbxClient
from mango.events import CallEvent
from megaplan.client import MegaplanClient
from router.batcher import BatchWriter
from router.claims import Claims, claim_key
from router.metrics import Metrics
from router.stopping import stop_tasks

logger = logging.getLogger(__name__)

__all__ = ["Router"]

_COMMAND_TIMEOUT = 2.0  # how long we wait for the PBX's answer to commands/route


class Router:
    __slots__ = ("_claims", "_command_ids", "_contacts", "_crm", "_deadline", "_decisions",
                 "_indexes", "_metrics", "_mode", "_pbx", "_pool", "_presence", "_tasks")

    def __init__(
        self,
        *,
        deadline_ms: int,
        mode: Literal["index", "sql", "crm"],
        indexes: IndexRegistry,
        presence: Presence,
        contacts: LastContacts,
        claims: Claims,
        pbx: PbxClient,
        decisions: BatchWriter[DecisionRecord],
        metrics: Metrics,
        pool: asyncpg.Pool,
        crm: MegaplanClient | None = None,
    ) -> None:
        self._deadline = deadline_ms / 1000
        self._mode = mode
        self._indexes = indexes
        self._presence = presence
        self._contacts = contacts
        self._claims = claims
        self._pbx = pbx
        self._decisions = decisions
        self._metrics = metrics
        self._pool = pool
        self._crm = crm
        self._tasks: set[asyncio.Task[None]] = set()
        # unique across replicas and restarts: a random prefix per process, then a count
        # (cheaper than a uuid4 per call)
        prefix = os.urandom(8).hex()
        self._command_ids = (f"{prefix}{n:08x}" for n in itertools.count())

    def start(self, account: Account, call: CallEvent, received_at: float) -> None:
        """Route in the background: the PBX's 200 does not wait for it."""
        task = asyncio.create_task(self.route(account, call, received_at))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def ended(self, account_id: int, call_or_entry: str) -> None:
        self._claims.mark_ended(claim_key(account_id, call_or_entry))

    async def route(self, account: Account, call: CallEvent, received_at: float) -> None:
        number = call.from_number or ""
        entry_key = claim_key(account.id, call.entry_id)  # made once, looked up three times
        call_key = claim_key(account.id, call.call_id)
        if self._claims.ended(entry_key, call_key):
            self._record(account, call, number, "ended", received_at)
            return
        settings = account.settings
        if settings.route_lines and _line_key(call, settings.default_region) not in (
                settings.route_line_keys):
            self._record(account, call, number, "other_line", received_at)
            return
        key = phone_key(number, settings.default_region)
        if key is None:
            self._record(account, call, number, "bad_number", received_at)
            return
        try:
            decision = await self.decide(account, key)
        except Exception:
            logger.exception("lookup failed", extra={"account": account.name})
            self._record(account, call, str(key), "lookup_error", received_at)
            return
        if decision is None:
            self._record(account, call, str(key), "not_ready", received_at)
            return
        if not decision.routed:
            self._record(account, call, decision.number, decision.reason or "", received_at,
                         decision)
            return
        if not self._claims.claim_here(entry_key):
            self._record(account, call, decision.number, "duplicate", received_at, decision)
            return
        refused = await self._claims.claim_shared(account.id, call.entry_id)
        if refused is not None:
            self._record(account, call, decision.number, refused, received_at, decision)
            return
        if account.settings.dry_run:
            self._record(account, call, decision.number, "dry_run", received_at, decision)
            return
        if time.monotonic() - received_at >= self._deadline:
            self._record(account, call, decision.number, "late", received_at, decision)
            return
        if self._claims.ended(entry_key, call_key):  # while we waited
            self._record(account, call, decision.number, "ended", received_at, decision)
            return
        command_id = next(self._command_ids)
        sent_at = time.monotonic()
        self._metrics.route_latency.observe(sent_at - received_at)
        result = await self._pbx.command(
            account,
            "commands/route",
            {"command_id": command_id, "call_id": call.call_id, "to_number": decision.extension},
            within=_COMMAND_TIMEOUT,
        )
        label = _result_label(result)
        self._metrics.pbx_command(account.name, label).inc()
        outcome = "routed" if result.accepted else "pbx_" + label
        if not result.accepted:
            logger.warning("route not accepted by the PBX", extra={
                "account": account.name, "entry_id": call.entry_id, "result": label})
        elif logger.isEnabledFor(logging.INFO):  # no dict built when INFO is off
            logger.info("call routed", extra={
                "account": account.name, "entry_id": call.entry_id,
                "caller": masked(decision.number), "employee_id": decision.employee_id,
                "extension": decision.extension, "via": decision.via,
                "command_id": command_id,
                "latency_ms": round((sent_at - received_at) * 1000, 3),  # trigger → sent
                "pbx_ms": round((time.monotonic() - sent_at) * 1000, 3)})  # its answer
        self._record(account, call, decision.number, outcome, received_at, decision,
                     command_id=command_id, result=result, sent_at=sent_at)

    async def decide(self, account: Account, key: int) -> Decision | None:
        """The decision by the configured lookup; None while the index is not loaded.

        With ``skip_busy_responsible``, employees on a call (heard from every
        replica, held in memory) are passed over. With
        ``route_unknown_to_last_contact``, a number no client has goes to the
        employee who last talked to it (remembered in memory).
        """
        settings = account.settings
        busy = self._presence.busy(account.id) if settings.skip_busy_responsible else None
        if self._mode == "index":
            index = self._indexes.get(account.id)
            if index is None:
                return None
            decision = index.decide_key(key, busy)
        elif self._mode == "sql":
            async with self._pool.acquire() as con:
                decision = await decide_sql(con, account.id, key, busy)
        else:
            assert self._crm is not None  # the benchmark's baseline: ask the CRM per call
            route = await self._crm.call_route(str(key))
            reason = None if route.extension else (route.reason or NO_CLIENT)
            decision = Decision(str(key), reason, route.client_id, route.employee_id,
                                route.extension)
        if decision.reason == NO_CLIENT and settings.route_unknown_to_last_contact.enabled:
            employee_id = self._contacts.find(account.id, key)
            if employee_id is not None:
                index = self._indexes.get(account.id)
                employee = index.employee(employee_id) if index is not None else None
                return decide_by_last_contact(decision.number, employee, busy)
        return decision

    def _record(
        self,
        account: Account,
        call: CallEvent,
        number: str,
        outcome: str,
        received_at: float,
        decision: Decision | None = None,
        *,
        command_id: str | None = None,
        result: CommandResult | None = None,
        sent_at: float | None = None,
    ) -> None:
        self._metrics.decision(account.name, outcome).inc()
        self._decisions.put_nowait(DecisionRecord(
            account_id=account.id,
            entry_id=call.entry_id,
            call_id=call.call_id,
            number=number,
            outcome=outcome,
            reason=decision.reason if decision is not None else None,
            client_id=decision.client_id if decision is not None else None,
            employee_id=decision.employee_id if decision is not None else None,
            extension=decision.extension if decision is not None else None,
            via=decision.via if decision is not None else None,
            command_id=command_id,
            pbx_status=result.http_status if result is not None else None,
            pbx_result=result.result if result is not None else None,
            latency_us=int(((sent_at or time.monotonic()) - received_at) * 1_000_000),
        ))

    async def drain(self, *, within: float) -> None:
        """Let routes in flight finish (graceful shutdown), then cancel what is left."""
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=within)
        await stop_tasks(*self._tasks, within=1.0)


def _line_key(call: CallEvent, region: str) -> int | None:
    """The company line the trigger came in on (``to.line_number``, else ``to.number``)."""
    line = call.line_number or call.to_number
    return phone_key(line, region) if line else None


def _result_label(result: CommandResult) -> str:
    """A bounded label for what the PBX answered."""
    if result.http_status is None:
        return "timeout" if result.error == "timeout" else "connection_error"
    if result.error == "redirect":  # not followed: the command was not applied
        return "redirect"
    if result.http_status == 429:
        return "rate_limited"
    if result.http_status >= 500:
        return "http_5xx"
    if result.http_status >= 400:
        return "http_4xx"
    return "1000" if result.result == 1000 else "rejected"
