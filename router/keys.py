"""The app's typed keys: everything a handler may reach, set once at start."""

from __future__ import annotations

import asyncpg
from aiohttp import ClientSession, web

from automation.contacts import LastContacts
from automation.engine import CallFeed
from cache.accounts import AccountRegistry
from cache.index import IndexRegistry
from cache.keeper import IndexKeeper
from cache.presence import Presence
from lookup.journal import JournalEntry
from mango.client import PbxClient
from router.batcher import BatchWriter
from router.config import Config
from router.health import HealthRecorder
from router.metrics import Metrics
from router.replicas import ReplicaLock
from router.routing import Router

__all__ = [
    "ACCOUNTS",
    "AUTOMATION",
    "CLAIM_POOL",
    "CONFIG",
    "CONTACTS",
    "HEALTH",
    "HTTP",
    "INDEXES",
    "JOURNAL",
    "KEEPER",
    "METRICS",
    "PBX",
    "POOL",
    "PRESENCE",
    "REPLICAS",
    "ROUTER",
]

CONFIG = web.AppKey("config", Config)
POOL = web.AppKey("pool", asyncpg.Pool)
CLAIM_POOL = web.AppKey("claim_pool", asyncpg.Pool)  # warm, only for route claims
HTTP = web.AppKey("http", ClientSession)
INDEXES = web.AppKey("indexes", IndexRegistry)
ACCOUNTS = web.AppKey("accounts", AccountRegistry)
# plans CRM actions: in this process, or a child of its own (router.automation_process)
AUTOMATION: web.AppKey[CallFeed] = web.AppKey("automation")
KEEPER = web.AppKey("keeper", IndexKeeper)
METRICS = web.AppKey("metrics", Metrics)
PBX = web.AppKey("pbx", PbxClient)
ROUTER = web.AppKey("router", Router)
PRESENCE = web.AppKey("presence", Presence)  # who is on a call, from every replica
CONTACTS = web.AppKey("contacts", LastContacts)  # who last talked to a number
REPLICAS = web.AppKey("replicas", ReplicaLock)
HEALTH = web.AppKey("health", HealthRecorder)  # PBX and CRM answers, noted for /api/health
JOURNAL: web.AppKey[BatchWriter[JournalEntry]] = web.AppKey("journal")
