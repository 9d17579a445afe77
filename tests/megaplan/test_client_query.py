"""The wire shape of list requests: one URL-encoded JSON object in the query."""

from __future__ import annotations

from typing import Any
from urllib.parse import unquote

import orjson
from aiohttp import web

from megaplan.client import MegaplanClient
from megaplan.credentials import MegaplanCredentials
from megaplan.query import encode_query
from tests.megaplan.stub import serve_stub


def test_query_is_one_url_encoded_json_object() -> None:
    encoded = encode_query({"limit": 100, "q": "+7 916"})
    assert encoded.startswith("?%7B")
    assert orjson.loads(unquote(encoded[1:])) == {"limit": 100, "q": "+7 916"}
    assert encode_query(None) == ""


async def test_lists_ask_only_for_routing_fields_and_page_after_the_last_object() -> None:
    pages = [
        [{"contentType": "ContractorHuman", "id": str(i)} for i in range(1, 101)],
        [{"contentType": "ContractorCompany", "id": "101"}],
    ]
    seen: list[dict[str, Any]] = []

    async def contractor(request: web.Request) -> web.Response:
        assert request.headers["Authorization"] == "Bearer tok-123"
        seen.append(orjson.loads(unquote(request.rel_url.raw_query_string)))
        data = pages[len(seen) - 1]
        return web.json_response({"meta": {"status": 200, "errors": []}, "data": data})

    async with serve_stub([("GET", "/api/v3/contractor", contractor)]) as url:
        creds = MegaplanCredentials(base_url=url, username="u", password="p")
        async with MegaplanClient(creds, rate_per_second=None) as client:
            ids = [c.id async for c in client.contractors(extra_fields=["Cat1CustomFieldX"])]
    assert len(ids) == 101
    first, second = seen
    assert first["limit"] == 100
    assert first["onlyRequestedFields"] is True
    assert {"contactInfo", "responsibles", "isDropped", "timeUpdated"} <= set(first["fields"])
    assert "Cat1CustomFieldX" in first["fields"]
    assert "pageAfter" not in first
    assert second["pageAfter"] == {"contentType": "ContractorHuman", "id": "100"}
