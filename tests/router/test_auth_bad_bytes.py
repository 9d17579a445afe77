"""A bearer token whose header bytes are not UTF-8 (aiohttp hands them on as lone
surrogates) is a token that opens nothing: 403, as for any wrong token, never a 500."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest

from tests.conftest import Service
from tests.router.data import add_shop


async def raw_request(svc: Service, head: bytes, body: bytes = b"") -> tuple[int, str]:
    """One request written byte for byte (a client library would refuse these bytes):
    the answer's status and its headers as text."""
    reader, writer = await asyncio.open_connection(svc.client.host, svc.client.port)
    try:
        writer.write(head + b"\r\nHost: test\r\nConnection: close\r\n"
                     + f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
        await writer.drain()
        answer = await asyncio.wait_for(reader.read(), 10)
    finally:
        writer.close()
    status_line, _, rest = answer.partition(b"\r\n")
    return int(status_line.split()[1]), rest.partition(b"\r\n\r\n")[0].decode("latin-1")


@pytest.mark.parametrize("path", [b"/api/settings", b"/api/settings?account=shop",
                                  b"/api/calls", b"/api/accounts/shop/sync"])
async def test_a_bearer_token_that_is_not_utf8_is_refused_not_a_500(
    service: Service, db: asyncpg.Connection, path: bytes,
) -> None:
    await add_shop(db, service.client)  # an account with a token hash of its own to compare
    for token in (b"\xff\xfe", b"\xc3\xa9\xff", b"abc\xed\xa0\x80"):
        status, _ = await raw_request(
            service, b"GET " + path + b" HTTP/1.1\r\nAuthorization: Bearer " + token)
        assert status == 403, (path, token)
