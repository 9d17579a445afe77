"""What the overview says of the CRM sync: ``SyncStatus.failing``."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from lookup.overview import SyncStatus

T0 = datetime(2026, 12, 1, 3, 0, tzinfo=UTC)


def _status(*, error_at: datetime | None, full_at: datetime | None,
            incremental_at: datetime | None, full_pending: bool = False) -> SyncStatus:
    return SyncStatus(last_success_at=None, full_pending=full_pending, full_finished_at=full_at,
                      incremental_finished_at=incremental_at, watermark=None,
                      last_error="x" if error_at else None, last_error_at=error_at)


def test_no_error_is_not_failing() -> None:
    assert not _status(error_at=None, full_at=None, incremental_at=None).failing


def test_an_error_after_the_last_completed_pass_is_failing() -> None:
    assert _status(error_at=T0 + timedelta(seconds=5), full_at=T0, incremental_at=T0).failing


def test_an_error_healed_by_a_later_pass_is_not_failing() -> None:
    assert not _status(error_at=T0, full_at=T0 - timedelta(hours=1),
                       incremental_at=T0 + timedelta(seconds=30)).failing


def test_a_full_pass_retried_after_an_error_is_failing_between_its_attempts() -> None:
    # the incremental pass run before the next attempt completed after the error
    assert _status(error_at=T0, full_at=T0 - timedelta(days=1),
                   incremental_at=T0 + timedelta(seconds=30), full_pending=True).failing


def test_a_full_pass_merely_under_way_is_not_failing() -> None:
    # an old error, healed by the last full pass; tonight's pass is running
    assert not _status(error_at=T0 - timedelta(days=2), full_at=T0 - timedelta(days=1),
                       incremental_at=T0 - timedelta(minutes=1), full_pending=True).failing
