"""The app factory: it only wires keys, resources and routes.

Every resource and background task is opened in a cleanup context and closed
there, in reverse order: on SIGTERM routes in flight finish first, then the
journal and the decision record are flushed, then connections close.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Iterator
from contextlib import suppress

import asyncpg
from aiohttp import web
from prometheus_client.aiohttp import make_aiohttp_handler

from automation.contacts import LastContacts
from automation.engine import CallAutomation
from automation.metrics import AutomationMetrics
from automation.outbox import OutboxWorker
from cache.accounts import AccountRegistry
from cache.index import IndexRegistry
from cache.keeper import IndexKeeper
from cache.listen import Listener
from cache.presence import Presence
from lookup.accounts import upsert_default_account
from lookup.contacts import CONTACTS_CHANNEL
from lookup.db import close_pool, create_pool, database_url
from lookup.decisions import DecisionRecord, write_decisions
from lookup.journal import JournalEntry, write_journal
from lookup.presence import BUSY_CHANNEL, forget_old_legs
from lookup.priority import BackendPriority
from mango.client import PbxClient, pbx_session
from megaplan.client import MegaplanClient
from megaplan.credentials import MegaplanCredentials
from router.automation_process import AutomationProcess
from router.automation_wire import RelayedMetrics
from router.batcher import BatchWriter
from router.calls_api import setup_calls_api
from router.calls_folder import CallsFolder
from router.claims import Claims, forget_old_claims, prepare_claim
from router.config import Config
from router.errors import error_middleware
from router.health import HealthRecorder
from router.health_api import setup_health_api
from router.keys import (
    ACCOUNTS,
    AUTOMATION,
    CLAIM_POOL,
    CONFIG,
    CONTACTS,
    HEALTH,
    HTTP,
    INDEXES,
    JOURNAL,
    KEEPER,
    METRICS,
    PBX,
    POOL,
    PRESENCE,
    REPLICAS,
    ROUTER,
)
from router.metrics import Metrics, PhonesByAccount
from router.pages import pages_ctx, setup_pages
from router.replicas import ReplicaLock
from router.routing import Router
from router.settings_api import setup_settings_api
from router.sidecar import setup_sidecar
from router.stopping import finish_within, stop_tasks
from router.sync_api import setup_sync_api
from router.webhooks import setup_webhooks
from sync.account import SyncOptions
from sync.metrics import SyncMetrics
from sync.poller import SyncService

logger = logging.getLogger(__name__)

__all__ = ["create_app", "setup_routes"]

DSN = web.AppKey("dsn", str)
WRITE_POOL = web.AppKey("write_pool", asyncpg.Pool)
DECISIONS: web.AppKey[BatchWriter[DecisionRecord]] = web.AppKey("decisions")
HOUSEKEEPING: web.AppKey[asyncio.Task[None]] = web.AppKey("housekeeping")
CALLS_FOLDER = web.AppKey("calls_folder", CallsFolder)
LISTENER = web.AppKey("listener", Listener)
STATE_LISTENER = "mango-router state"  # the listener's application_name
_READY_WAIT = 60.0  # serve anyway after this; /readyz tells the truth meanwhile
_DRAIN = 3.0
_POOL_CLOSE = 5.0
_CLAIM_CONNECTIONS = 1
_JOURNAL_WAIT = 5.0  # past this the PBX gets a 503 and re-sends; the event stays queued
# At most one statement per this many seconds (see router.batcher): under load the
# journal's 200s wait up to this long for company. Against back-to-back writes
# (~7 rows each), 5 ms cut PostgreSQL's CPU at 1,200 calls/s by a third. But every
# 200 of a batch is written in the same turn of the event loop when its statement
# commits, and a trigger that arrives then waits behind all of them: at 10 ms
# (~40 answers a batch at 1,000 calls/s) routing's p99 was 1.6-2.0x the floor's in
# three paired runs (P1 needs <= 1.5x); at 3 ms 1.0-1.36x, for 1-3 points more of
# the serving process's CPU and 5 more of PostgreSQL's at 1,500/s (20 -> 25 %), and
# the same highest rate (2,400/s held, 2,800/s not, either way). An event that
# finds the journal quiet is written at once.
_JOURNAL_SPACING = 0.003
_DECISIONS_SPACING = 0.02  # nobody waits for the decision record
_FOLDER_NICE = 10  # the calls folder's backend: after routing's, ahead of the automation's


def create_app(config: Config) -> web.Application:
    app = web.Application(client_max_size=1024**2, middlewares=[error_middleware])
    indexes = IndexRegistry()
    accounts = AccountRegistry()
    app[CONFIG] = config
    app[INDEXES] = indexes
    app[ACCOUNTS] = accounts
    app[METRICS] = Metrics(phones=_phones_by_account(indexes, accounts))
    accounts.on_removed(app[METRICS].forget_account)
    app.cleanup_ctx.extend([database_ctx, health_ctx, http_ctx, index_ctx, state_ctx,
                            automation_ctx, calls_folder_ctx, writers_ctx, router_ctx])
    app.cleanup_ctx.extend([sync_ctx, pages_ctx])
    setup_routes(app)
    return app


def setup_routes(app: web.Application) -> None:
    setup_webhooks(app)
    setup_sidecar(app)
    setup_settings_api(app)
    setup_calls_api(app)
    setup_pages(app)
    setup_sync_api(app)
    setup_health_api(app)
    app.router.add_get("/metrics", make_aiohttp_handler(app[METRICS].registry))


async def database_ctx(app: web.Application) -> AsyncIterator[None]:
    config = app[CONFIG]
    dsn = await database_url(config.database_url, config.data_dir)
    pool = await create_pool(dsn, min_size=2, max_size=12)
    if config.mango_api_key and config.mango_api_salt:
        async with pool.acquire() as con:
            await upsert_default_account(
                con, mango_api_key=config.mango_api_key, mango_api_salt=config.mango_api_salt,
                mango_api_url=config.mango_api_url,
                megaplan=(config.megaplan_url, config.megaplan_username,
                          config.megaplan_password),
            )
    # Claims get connections of their own, all open from the start, so a claim never
    # waits behind a journal batch or for a connection to be made. A claim that a
    # crash loses is harmless, so it does not wait for the disk either.
    claim_pool = await create_pool(
        dsn, min_size=_CLAIM_CONNECTIONS, max_size=_CLAIM_CONNECTIONS, migrate=False,
        server_settings={"synchronous_commit": "off"}, init=prepare_claim,
    )
    # The journal and the decision record write through connections of their own.
    write_pool = await create_pool(dsn, min_size=2, max_size=2, migrate=False)
    app[DSN] = dsn
    app[POOL] = pool
    app[CLAIM_POOL] = claim_pool
    app[WRITE_POOL] = write_pool
    yield
    for each in (claim_pool, write_pool, pool):
        await close_pool(each, within=_POOL_CLOSE)


async def health_ctx(app: web.Application) -> AsyncIterator[None]:
    """Notes of the PBX's and the CRM's answers, written every few seconds by one task;
    closed after everything that calls them, so their last notes are written too."""
    recorder = HealthRecorder(app[POOL])
    app[HEALTH] = recorder
    app[ACCOUNTS].on_removed(recorder.forget)
    task = asyncio.create_task(recorder.run(), name="health-notes")
    yield
    await stop_tasks(task)
    await finish_within(recorder.flush(), within=_DRAIN, what="the health notes")


async def http_ctx(app: web.Application) -> AsyncIterator[None]:
    """The app's one client session (VPBX commands), its TLS context built here, at start."""
    session = pbx_session(ca_file=app[CONFIG].mango_ca_file)
    app[HTTP] = session
    app[PBX] = PbxClient(session, observer=app[HEALTH].pbx)
    yield
    await session.close()


async def index_ctx(app: web.Application) -> AsyncIterator[None]:
    keeper = IndexKeeper(app[DSN], app[POOL], app[INDEXES], app[ACCOUNTS])
    app[KEEPER] = keeper
    task = asyncio.create_task(keeper.run(), name="index-keeper")
    with suppress(TimeoutError):
        async with asyncio.timeout(_READY_WAIT):
            await keeper.ready.wait()
    if not keeper.ready.is_set():
        logger.error("index not loaded yet; serving, /readyz says 503 until it is")
    elif not app[ACCOUNTS].all():
        logger.warning("no accounts yet: set MANGO_API_KEY and MANGO_API_SALT for the "
                       "'default' account, or run `mango-router account add`")
    yield
    await stop_tasks(task)


async def state_ctx(app: web.Application) -> AsyncIterator[None]:
    """What routing knows beyond the CRM copy, kept from NOTIFY on one listening
    connection: who is on a call (busy legs), who last talked to a number (the
    last contacts load in the background: a long window takes a while)."""
    pool = app[POOL]
    presence = Presence()
    contacts = LastContacts(pool, app[ACCOUNTS])
    listener = Listener(app[DSN], STATE_LISTENER)
    listener.subscribe(BUSY_CHANNEL, presence.on_notify)
    listener.subscribe(CONTACTS_CHANNEL, contacts.on_notify)
    listener.on_connect(lambda: presence.resync(pool))
    listener.on_connect(contacts.resync)
    app[PRESENCE] = presence
    app[CONTACTS] = contacts
    app[LISTENER] = listener
    tasks = [asyncio.create_task(listener.run(), name="state-listener"),
             asyncio.create_task(presence.run_expiry(), name="busy-expiry"),
             asyncio.create_task(contacts.run(), name="last-contacts")]
    with suppress(TimeoutError):
        async with asyncio.timeout(_READY_WAIT):
            await listener.ready.wait()
    if not listener.ready.is_set():
        logger.error("busy legs not loaded yet; routing as if nobody were on a call")
    yield
    await stop_tasks(*tasks)


async def automation_ctx(app: web.Application) -> AsyncIterator[None]:
    """The call automation (plans CRM actions) and the outbox's worker (applies them):
    in a child process (router.automation_process), or here with ``inline``."""
    config = app[CONFIG]
    if config.automation_mode == "process":
        relayed = RelayedMetrics()
        app[METRICS].registry.register(relayed)
        child = AutomationProcess(dsn=app[DSN], rate=config.megaplan_rate,
                                  log_level=config.log_level or "INFO",
                                  indexes=app[INDEXES], metrics=relayed)
        app[AUTOMATION] = child
        task = asyncio.create_task(child.run(), name="automation-process")
        yield
        await child.stop()
        await stop_tasks(task)
        return
    metrics = AutomationMetrics(app[METRICS].registry)
    app[ACCOUNTS].on_removed(metrics.forget_account)
    automation = CallAutomation(app[POOL], app[ACCOUNTS], indexes=app[INDEXES], metrics=metrics)
    worker = OutboxWorker(app[DSN], app[POOL], app[ACCOUNTS], rate=config.megaplan_rate,
                          metrics=metrics, health=app[HEALTH].crm,
                          hold=automation.holding_back)
    app[AUTOMATION] = automation
    tasks = [asyncio.create_task(automation.run(), name="automation"),
             asyncio.create_task(worker.run(), name="outbox")]
    yield
    await stop_tasks(*tasks)
    # what is queued is planned before we go, if the database lets us
    await finish_within(automation.flush(), within=_DRAIN, what="the automation's queue")


async def calls_folder_ctx(app: web.Application) -> AsyncIterator[None]:
    """The calls list's rows folded from the journal (router.calls_folder); the last
    fold after the journal's last write, on the way out."""
    dsn = app[DSN]
    # A fold commits with the deletion of its marks: a crash loses both, and the marks
    # are folded again, so its commit need not wait for the disk.
    pool = await create_pool(dsn, min_size=1, max_size=1, migrate=False,
                             server_settings={"synchronous_commit": "off"},
                             init=BackendPriority(dsn, nice=_FOLDER_NICE))
    folder = CallsFolder(pool)
    app[CALLS_FOLDER] = folder
    task = asyncio.create_task(folder.run(), name="calls-folder")
    yield
    await stop_tasks(task)
    # what is left is folded by another replica, or at the next start
    await finish_within(folder.fold(), within=_DRAIN, what="the calls' last fold")
    await close_pool(pool, within=_POOL_CLOSE)


async def writers_ctx(app: web.Application) -> AsyncIterator[None]:
    pool = app[WRITE_POOL]
    folder = app[CALLS_FOLDER]

    async def journal(batch: list[JournalEntry]) -> None:
        app[METRICS].journal_batch.observe(len(batch))
        await write_journal(pool, batch)
        folder.poke()

    async def decisions(batch: list[DecisionRecord]) -> None:
        await write_decisions(pool, batch)

    # the PBX's 200 waits for it, and gets a 503 if that takes too long
    app[JOURNAL] = BatchWriter("journal", journal, spacing=_JOURNAL_SPACING,
                               wait_limit=_JOURNAL_WAIT)
    app[DECISIONS] = BatchWriter("decisions", decisions, spacing=_DECISIONS_SPACING)
    app[JOURNAL].start()
    app[DECISIONS].start()
    yield
    await app[JOURNAL].close()
    await app[DECISIONS].close()


async def router_ctx(app: web.Application) -> AsyncIterator[None]:
    config = app[CONFIG]
    crm = None
    if config.lookup_mode == "crm" and config.lookup_crm_url:  # the benchmark's baseline
        crm = MegaplanClient(
            MegaplanCredentials(base_url=config.lookup_crm_url, username=config.lookup_crm_user,
                                password=config.lookup_crm_password),
            rate_per_second=None, max_retries=0, request_timeout=5.0)
        await crm.start()
    claims = Claims(app[CLAIM_POOL], within_ms=config.claim_timeout_ms)
    claims.start()
    replicas = ReplicaLock(app[DSN], claims, app[METRICS].solo)
    await replicas.start()
    app[REPLICAS] = replicas
    router = Router(
        deadline_ms=config.route_deadline_ms,
        mode=config.lookup_mode,
        indexes=app[INDEXES],
        presence=app[PRESENCE],
        contacts=app[CONTACTS],
        claims=claims,
        pbx=app[PBX],
        decisions=app[DECISIONS],
        metrics=app[METRICS],
        pool=app[POOL],
        crm=crm,
    )
    app[ROUTER] = router
    app[HOUSEKEEPING] = asyncio.create_task(_housekeeping(app), name="housekeeping")
    yield
    await router.drain(within=_DRAIN)
    await replicas.close()  # after the drain: the claims it owes are all queued
    await claims.close()
    if crm is not None:
        await crm.close()
    await stop_tasks(app[HOUSEKEEPING])


async def sync_ctx(app: web.Application) -> AsyncIterator[None]:
    """CRM sync (sync.poller): polls every account with Megaplan settings."""
    config = app[CONFIG]
    metrics = SyncMetrics(app[METRICS].registry)
    app[ACCOUNTS].on_removed(metrics.forget_account)
    service = SyncService(app[DSN], app[ACCOUNTS], app[PBX],
                          options=SyncOptions(rate=config.megaplan_rate),
                          poll_seconds=config.megaplan_poll_seconds,
                          metrics=metrics, health=app[HEALTH].crm)
    task = asyncio.create_task(service.run(), name="crm-sync")
    yield
    await stop_tasks(task)


def _phones_by_account(indexes: IndexRegistry, accounts: AccountRegistry) -> PhonesByAccount:
    def phones() -> Iterator[tuple[str, int]]:
        for account in accounts.all():
            index = indexes.get(account.id)
            if index is not None:
                yield account.name, len(index)
    return phones


async def _housekeeping(app: web.Application) -> None:
    """Forget old route claims and busy legs, hourly."""
    while True:
        with suppress(Exception):
            await forget_old_claims(app[POOL])
        with suppress(Exception):
            await forget_old_legs(app[POOL])
        await asyncio.sleep(3600)
