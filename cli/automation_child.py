"""``python -m cli.automation_child``: the call automation's process, started by ``serve``.

Not a command for people: ``router.automation_process`` starts it with one end
of a socket pair (``--fd``) and the database in ``DATABASE_URL``, and ends it by
closing that socket. It runs at a lower CPU priority than the serving process:
``nice`` 19 and, on Linux, the ``SCHED_IDLE`` policy. ``nice`` alone still gave
it a share of a busy core; an idle-policy process yields at once to any other
that wakes, so the serving process never waits on a core behind it. (Its
database sessions keep ``nice`` only: ``lookup.priority`` says why.)
"""

from __future__ import annotations

import argparse
import logging
import os
import socket
import sys
from collections.abc import Sequence

import uvloop

from cli.logs import setup_logging
from router.automation_process import NICE, run_child
from router.stopping import exit_after

logger = logging.getLogger(__name__)

__all__ = ["STOP_LIMIT_S", "main"]

STOP_LIMIT_S = 30.0


def main(argv: Sequence[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m cli.automation_child")
    p.add_argument("--fd", type=int, required=True, help="this end of the socket pair")
    p.add_argument("--rate", type=float, required=True, help="MEGAPLAN_RATE")
    p.add_argument("--log-level", default="INFO")
    args = p.parse_args(argv)
    setup_logging(args.log_level)
    dsn = os.environ.get("DATABASE_URL")
    if not dsn:
        print("cli.automation_child: DATABASE_URL is required", file=sys.stderr)
        sys.exit(2)
    try:
        os.nice(NICE)
        if hasattr(os, "SCHED_IDLE"):  # Linux: run only on a core nothing else wants now
            os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
    except OSError as exc:  # not allowed here: run at the serving process's priority
        logger.warning("cannot lower the automation process's priority",
                       extra={"error": repr(exc)})
    sock = socket.socket(fileno=args.fd)
    # A stop bounded as a whole, as serve's: a child whose serving process was killed
    # must not live on (serve kills a child still stopping after 20 s)
    uvloop.run(run_child(sock, dsn=dsn, rate=args.rate,
                         on_stop=lambda: exit_after(STOP_LIMIT_S)))


if __name__ == "__main__":
    main()
