"""The services under test as real processes: the product (``mango-router serve``,
started as users start it) or the floor relay; and ``mango-router import``.

Each is a subprocess in its own session, with its output in a log file; it is ready
when ``GET /readyz`` answers 200, and is stopped with SIGTERM (SIGKILL if it hangs).
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from bench.cpus import pin

__all__ = [
    "ServiceError",
    "ServiceProcess",
    "ServiceSpec",
    "product_command",
    "run_import",
]

logger = logging.getLogger(__name__)


class ServiceError(RuntimeError):
    """A service would not start, or a command of the product failed."""


def product_command() -> list[str]:
    """How to run ``mango-router``: the venv's script, else ``python -m router``."""
    script = Path(sys.executable).parent / "mango-router"
    if script.exists():
        return [str(script)]
    found = shutil.which("mango-router")
    return [found] if found else [sys.executable, "-m", "router"]


@dataclass(frozen=True, slots=True, kw_only=True)
class ServiceSpec:
    name: str
    argv: list[str]
    env: Mapping[str, str]
    cwd: Path
    host: str
    port: int
    log_path: Path
    ready_timeout_s: float = 180.0
    cpus: frozenset[int] | None = None  # pinned to these as it starts (bench.cpus)


def _tail(path: Path, lines: int = 15) -> str:
    try:
        text = path.read_text(errors="replace").splitlines()
    except OSError:
        return ""
    return "\n".join(text[-lines:])


class ServiceProcess:
    """Start with ``start()``; always ``stop()`` in a finally."""

    def __init__(self, spec: ServiceSpec) -> None:
        self.spec = spec
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def base_url(self) -> str:
        return f"http://{self.spec.host}:{self.spec.port}"

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    def start(self) -> float:
        """Start and wait until ready; the seconds it took."""
        spec = self.spec
        spec.log_path.parent.mkdir(parents=True, exist_ok=True)
        t0 = time.monotonic()
        with spec.log_path.open("ab") as log:
            self._proc = subprocess.Popen(
                spec.argv,
                env=dict(spec.env),
                cwd=spec.cwd,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        if spec.cpus is not None:  # before it starts threads or children: they inherit it
            pin(self._proc.pid, spec.cpus)
        deadline = t0 + spec.ready_timeout_s
        while time.monotonic() < deadline:
            code = self._proc.poll()
            if code is not None:
                raise ServiceError(
                    f"{spec.name} exited with {code} before it was ready; "
                    f"log {spec.log_path}:\n{_tail(spec.log_path)}"
                )
            if self._ready():
                return time.monotonic() - t0
            time.sleep(0.1)
        raise ServiceError(
            f"{spec.name} not ready within {spec.ready_timeout_s:.0f} s; "
            f"log {spec.log_path}:\n{_tail(spec.log_path)}"
        )

    def _ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.base_url}/readyz", timeout=2) as resp:
                return int(resp.status) == 200
        except (urllib.error.URLError, OSError, ValueError):
            return False

    def stop(self, timeout: float = 60.0) -> int | None:
        proc = self._proc
        if proc is None:
            return None
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                logger.warning("%s ignored SIGTERM for %.0f s; killing", self.spec.name, timeout)
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(10)
        self._proc = None
        return proc.returncode


def run_import(
    path: Path, *, env: Mapping[str, str], cwd: Path, log_path: Path, timeout_s: float
) -> float:
    """``mango-router import FILE``; the seconds it took. Raises when it did not succeed."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    t0 = time.monotonic()
    with log_path.open("ab") as log:
        try:
            proc = subprocess.run(
                [*product_command(), "import", str(path)],
                env=dict(env),
                cwd=cwd,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                timeout=timeout_s,
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            raise ServiceError(f"import of {path.name} took over {timeout_s:.0f} s") from exc
    if proc.returncode != 0:
        raise ServiceError(
            f"import of {path.name} exited with {proc.returncode}; "
            f"log {log_path}:\n{_tail(log_path)}"
        )
    return time.monotonic() - t0
