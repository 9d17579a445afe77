"""Megaplan clients pointed at the live emulator (``mp_url`` in tests/conftest.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from megaplan.client import MegaplanClient
from megaplan.credentials import MegaplanCredentials
from tests.conftest import PASSWORD

ClientFactory = Callable[..., MegaplanClient]


@pytest.fixture
async def make_client(mp_url: str) -> AsyncIterator[ClientFactory]:
    """Fast by default (no rate cap, millisecond backoff); options override."""
    made: list[MegaplanClient] = []

    def factory(password: str = PASSWORD, **options: Any) -> MegaplanClient:
        defaults: dict[str, Any] = {
            "rate_per_second": None,
            "max_retries": 3,
            "backoff_base": 0.005,
            "backoff_cap": 0.05,
            "request_timeout": 5.0,
        }
        creds = MegaplanCredentials(base_url=mp_url, username="demo", password=password)
        client = MegaplanClient(creds, **{**defaults, **options})
        made.append(client)
        return client

    yield factory
    for client in made:
        await client.close()


@pytest.fixture
async def client(make_client: ClientFactory) -> MegaplanClient:
    c = make_client()
    await c.start()
    return c
