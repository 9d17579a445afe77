"""Background work's database sessions at a low CPU priority, when the server is local.

The call automation runs in a process of its own at ``nice`` 19, but its
statements run in PostgreSQL's backends at the server's priority: planning a
burst of calls took PostgreSQL's share of the cores from the routes' claims.
A backend is a process of its own, so on the same machine (the embedded
server, or a local one reached over its Unix socket) it can be given the
same ``nice``; the kernel then serves routing's backends first whenever the
cores are short, and the automation's as soon as they are not.

Each backend starts a session of its own, and where the kernel groups the
scheduling by session (``sched_autogroup``, common on Linux), a process's
``nice`` weighs only against its own session's: such a backend's group gets
the ``nice`` too, or it would weigh as much as the whole serving process.

They get ``nice`` and not the ``SCHED_IDLE`` policy the automation's own process
runs under: a backend holds locks that routing's sessions take too (the WAL's,
a buffer's), and an idle-policy holder could wait for a free core as long as the
cores stay busy, with routing's sessions waiting behind it; ``nice`` still
gives it a slice.

Anything else (a server on another machine, a backend this user may not renice)
is left as it is: the priority is a help, never a condition.
"""

from __future__ import annotations

import logging
import os
from urllib.parse import parse_qs, urlsplit

import asyncpg

logger = logging.getLogger(__name__)

__all__ = ["BackendPriority", "local_socket"]


def local_socket(dsn: str) -> bool:
    """Whether ``dsn`` reaches its server over a Unix socket (so, on this machine)."""
    parts = urlsplit(dsn)
    hosts = parse_qs(parts.query).get("host", [])
    host = hosts[-1] if hosts else parts.hostname
    return host is None or host.startswith("/")


class BackendPriority:
    """A pool's ``init``: each new connection's backend gets ``nice``, if it can.

    Only a session that is its server's own backend over a Unix socket (the server
    says so: ``inet_server_addr()`` is null and ``pg_backend_pid()`` is the pid the
    connection reported, which a pooler's is not), whose pid here is a ``postgres``
    process: anything else may be a process that routing's sessions use too.
    """

    __slots__ = ("_local", "_nice", "_told")

    def __init__(self, dsn: str, *, nice: int = 19) -> None:
        self._local = local_socket(dsn)  # else no round trip to ask
        self._nice = nice
        self._told = False

    async def __call__(self, con: asyncpg.Connection) -> None:
        if not self._local:
            return
        pid = con.get_server_pid()
        row = await con.fetchrow(
            "SELECT pg_backend_pid() AS pid, inet_server_addr() IS NULL AS unix_socket")
        if row is None or row["pid"] != pid or not row["unix_socket"]:
            self._keep("not the server's own backend over a Unix socket (a pooler, or TCP)")
            return
        try:
            reason = _renice(pid, self._nice)
        except OSError as exc:  # gone, or not ours to renice
            reason = repr(exc)
        if reason is not None:
            self._keep(reason)

    def _keep(self, reason: str) -> None:
        if not self._told:
            self._told = True
            logger.info("database sessions keep the server's priority",
                        extra={"reason": reason})


def _renice(pid: int, nice: int) -> str | None:
    """Why not, or None once done. (procfs is in memory: no blocking here.)"""
    with open(f"/proc/{pid}/cmdline", "rb") as f:
        if not f.read(9).startswith(b"postgres"):
            return "the backend's pid is not a postgres process here (another pid namespace?)"
    os.setpriority(os.PRIO_PROCESS, pid, nice)
    with open(f"/proc/{pid}/stat", "rb") as f:  # "pid (comm) state ppid pgrp session ..."
        session = int(f.read().rsplit(b")", 1)[1].split()[3])
    if session == pid:  # its group is its own: renicing the group touches no other
        _autogroup_nice(pid, nice)
    return None


def _autogroup_nice(pid: int, nice: int) -> None:
    """The ``nice`` of the process's scheduling group, on kernels that group by session."""
    try:
        with open(f"/proc/{pid}/autogroup", "w") as f:
            f.write(str(nice))
    except FileNotFoundError:  # no autogroups here: the process's nice is all there is
        pass
