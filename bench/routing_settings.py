"""The routing settings the product modes run with: busy-aware routing, call-backs to
the last employee and routing per line, all on, so the ratios against the floor are
measured with the work they add on the hot path (memory reads)."""

from __future__ import annotations

import time
import urllib.parse
import urllib.request
from typing import Any

import orjson

from bench.modes import LINE_NUMBER
from mango.signing import sign

__all__ = ["ROUTING_OFF", "ROUTING_ON", "post_busy_leg"]

ROUTING_ON: dict[str, Any] = {
    "skip_busy_responsible": True,
    "route_unknown_to_last_contact": {"enabled": True, "within_hours": 72},
    "route_lines": [LINE_NUMBER],  # the line every call of the load dials
}
ROUTING_OFF: dict[str, Any] = {
    "skip_busy_responsible": False,
    "route_unknown_to_last_contact": {"enabled": False, "within_hours": 72},
    "route_lines": [],
}


def post_busy_leg(base_url: str, api_key: str, salt: str) -> None:
    """One employee leg Connected and never ended, to an extension nobody in the data has:
    the busy set is not empty, so every routed call takes the walk that checks it."""
    raw = orjson.dumps({
        "entry_id": "bench-busy", "call_id": "bench-busy-leg", "timestamp": int(time.time()),
        "seq": 1, "call_state": "Connected", "location": "abonent",
        "from": {"number": "74950000001"}, "to": {"extension": "0"}}).decode()
    form = urllib.parse.urlencode({"vpbx_api_key": api_key, "sign": sign(api_key, raw, salt),
                                   "json": raw}).encode()
    with urllib.request.urlopen(f"{base_url}/mango/events/call", data=form, timeout=10) as resp:
        resp.read()
