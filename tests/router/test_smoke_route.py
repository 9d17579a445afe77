from __future__ import annotations

from tests.conftest import ServiceFactory, call_event, load_records

EMPLOYEES = [
    {"type": "employee", "id": "1", "name": "Anna", "extension": "101", "active": True},
]
CLIENTS = [
    {"type": "client", "id": "10", "name": "Ivan", "phones": ["+7 (916) 123-45-67"],
     "responsibles": [{"type": "employee", "id": "1"}]},
]


async def test_known_caller_is_routed_to_the_responsible_extension(
    service_factory: ServiceFactory, dsn: str
) -> None:
    await load_records(dsn, EMPLOYEES + CLIENTS)
    svc = await service_factory()
    status, _ = await svc.event("events/call", call_event("e1", "79161234567"))
    assert status == 200
    routes = await svc.pbx.wait_routes(1)
    assert [r.payload["to_number"] for r in routes] == ["101"]
    assert routes[0].payload["call_id"] == "e1-ivr"
