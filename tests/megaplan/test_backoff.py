"""``Retry-After`` as the server sends it: seconds or an HTTP date, capped."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from megaplan.backoff import retry_after_seconds

NOW = datetime(2026, 12, 1, 12, 0, 0, tzinfo=UTC)


@pytest.mark.parametrize(("header", "seconds"), [
    ("7", 7.0),
    (" 2.5 ", 2.5),
    ("Tue, 01 Dec 2026 12:00:30 GMT", 30.0),  # an HTTP date, 30 s ahead
    ("Tue, 01 Dec 2026 11:59:00 GMT", 0.0),  # already past: now
    ("Tue, 01 Dec 2026 13:00:00 GMT", 120.0),  # capped
    ("999999", 120.0),
])
def test_retry_after_is_read_as_seconds_or_an_http_date_and_capped(
    header: str, seconds: float,
) -> None:
    assert retry_after_seconds({"Retry-After": header}, cap=120.0, now=NOW) == seconds


@pytest.mark.parametrize("header", ["soon", "-3", "nan", "", "Tue, 99 Foo 2026"])
def test_a_retry_after_that_cannot_be_read_is_ignored(header: str) -> None:
    assert retry_after_seconds({"Retry-After": header}, cap=120.0, now=NOW) is None


def test_no_retry_after_is_none() -> None:
    assert retry_after_seconds({}, cap=120.0, now=NOW) is None
