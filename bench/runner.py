"""One benchmark run, start to end: data, helper processes, each mode in turn, the
index, freshness and sidecar figures, then ``results.json``, ``latency.png`` and
the table. A section that cannot run says why in ``notes`` and leaves its figures
null; the others still run. Every process started here is stopped before the end."""

from __future__ import annotations

import logging
import math
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from bench.auto import (
    automation_settings,
    default_settings,
    ivr_employee,
    pbx_users,
    put_settings,
    service_counts,
    wait_synced,
)
from bench.command import output_folder
from bench.config import BenchConfig
from bench.cpus import CpuLayout, allowed_cpus, pin, postmaster_pid, split_cpus
from bench.crm import CrmProcess, crm_unavailable
from bench.data import DatasetInfo, plan_calls, write_dataset
from bench.floor import FIXED_EXTENSION
from bench.loadgen import SidecarReport, SidecarSpec, loadgen_main
from bench.modes import LoadTarget, ModeResult, run_mode
from bench.pbxproc import PbxProcess
from bench.plot import plot_latency
from bench.procs import ChildError, ChildProcess, free_port
from bench.report import build_results, format_report, machine_description
from bench.routing_settings import ROUTING_OFF, ROUTING_ON, post_busy_leg
from bench.service import (
    ServiceError,
    ServiceProcess,
    ServiceSpec,
    product_command,
    run_import,
)

__all__ = ["run"]

logger = logging.getLogger(__name__)

HOST = "127.0.0.1"
API_KEY = "bench-vpbx-key"
API_SALT = "bench-vpbx-salt"
_ENV_DROP = ("ROUTER_", "MANGO_", "MEGAPLAN_", "ROUTE_", "DATABASE_URL", "XDG_RUNTIME_DIR")
_AUTO_POLL_S = 3600  # the sync polls once at start (an incremental pass), not during the run


@dataclass(slots=True, kw_only=True)
class _Run:
    cfg: BenchConfig
    work: Path
    started: float
    token: str
    notes: list[str] = field(default_factory=list)
    imported: set[Path] = field(default_factory=set)
    floor_error: str | None = None  # why the floor's service did not start
    cpus: CpuLayout | None = None  # None: unpinned (bench.cpus)
    machine: str = ""

    def remaining(self) -> float:
        return self.cfg.budget_s - (time.monotonic() - self.started)

    def service_cpus(self) -> frozenset[int] | None:
        """Where a service under test is pinned (None: unpinned)."""
        return self.cpus.service if self.cpus is not None else None


def product_env(data_dir: Path, **extra: str) -> dict[str, str]:
    """The environment users give ``mango-router``: embedded PostgreSQL under ``data_dir``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(_ENV_DROP)}
    data_dir = data_dir.resolve()
    (data_dir / "run").mkdir(parents=True, exist_ok=True, mode=0o700)
    env.update(
        ROUTER_DATA_DIR=str(data_dir),
        XDG_RUNTIME_DIR=str(data_dir / "run"),  # the embedded server's lock, per data dir
        ROUTER_HOST=HOST,
        MANGO_API_KEY=API_KEY,
        MANGO_API_SALT=API_SALT,
        ROUTER_LOG_LEVEL="WARNING",
    )
    env.update(extra)
    return env


def run(cfg: BenchConfig) -> dict[str, Any]:
    started = time.monotonic()
    work = cfg.work_dir or Path(tempfile.mkdtemp(prefix="mango-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    state = _Run(cfg=cfg, work=work, started=started, token=secrets.token_hex(3),
                 machine=machine_description())  # before the harness pins itself
    allowed = allowed_cpus() if cfg.pin else frozenset()  # read only when asked to pin
    state.cpus = split_cpus(allowed)
    if state.cpus is not None:
        pin(os.getpid(), state.cpus.rest)  # what the harness starts inherits it
        state.notes.append(f"pinned (--pin): {state.cpus.describe()}")
    elif cfg.pin:
        state.notes.append("not pinned: fewer than two cores this process may use")
    try:
        return _run(state)
    finally:
        if state.cpus is not None:
            pin(os.getpid(), allowed)
        if not cfg.keep_work:
            shutil.rmtree(work, ignore_errors=True)
        else:
            logger.info("work directory kept: %s", work)


def _run(st: _Run) -> dict[str, Any]:
    cfg = st.cfg
    output_folder(cfg.out_dir)
    logs = cfg.out_dir / "logs"
    if logs.exists():
        shutil.rmtree(logs)
    t = time.monotonic()
    info = write_dataset(st.work / "load.jsonl", clients=cfg.clients, seed=cfg.seed)
    logger.info("load data: %d clients, %d phones (%d routable) in %.1f s",
                info.clients, info.phones, len(info.routable), time.monotonic() - t)
    reserve = _index_reserve(cfg)
    modes: list[ModeResult] = []
    freshness: dict[str, Any] = {"changes": None, "p50_ms": None, "p99_ms": None}
    sidecar: dict[str, Any] = {"concurrency": cfg.sidecar_concurrency, "rps": None,
                               "p99_ms": None}
    pbx = PbxProcess(HOST, free_port(), api_key=API_KEY, salt=API_SALT)
    loadgen: ChildProcess | None = None
    try:
        loadgen = ChildProcess("load-generator", loadgen_main)
        with _floor_service(st, pbx) as floor:
            for mode in cfg.modes:
                deadline = st.started + cfg.budget_s - reserve
                result = ModeResult(mode=mode)
                try:
                    result = _run_mode(st, mode, info, loadgen, pbx, deadline, freshness,
                                       sidecar, floor)
                except (ServiceError, ChildError, OSError, RuntimeError) as exc:
                    result.error = str(exc).splitlines()[0]
                    st.notes.append(f"{mode}: not measured: {exc}")
                    logger.error("%s: %s", mode, exc)
                modes.append(result)
    finally:
        if loadgen is not None:
            loadgen.stop()
        pbx.stop()
    index_build = _index_build(st)
    results = build_results(
        cfg,
        machine=st.machine,
        modes=modes,
        index_build=index_build,
        freshness=freshness,
        sidecar=sidecar,
        data={"clients": info.clients, "phones": info.phones, "employees": info.employees,
              "routable_numbers": len(info.routable), "known_share": cfg.known_share},
        notes=st.notes,
        elapsed_s=time.monotonic() - st.started,
    )
    (cfg.out_dir / "results.json").write_bytes(
        orjson.dumps(results, option=orjson.OPT_INDENT_2) + b"\n"
    )
    try:
        plot_latency(modes, cfg.rates, cfg.out_dir / "latency.png")
    except Exception as exc:  # a figure must not cost the results
        logger.exception("latency.png failed")
        results["notes"].append(f"latency.png not written: {exc}")
    return results


def _index_reserve(cfg: BenchConfig) -> float:
    """Seconds kept for the index figures at the end (import + build)."""
    if not cfg.index_clients:
        return 5.0
    return 10.0 + cfg.index_clients * 110e-6


def _run_mode(
    st: _Run,
    mode: str,
    info: DatasetInfo,
    loadgen: ChildProcess,
    pbx: PbxProcess,
    deadline: float,
    freshness: dict[str, Any],
    sidecar: dict[str, Any],
    floor: LoadTarget | None,
) -> ModeResult:
    cfg = st.cfg
    if mode == "floor":
        if floor is None:
            raise ServiceError(f"floor: not started: {st.floor_error}")
        return run_mode(cfg, floor, info, loadgen, pbx, run_token=st.token, deadline=deadline)
    logs = cfg.out_dir / "logs"
    port = free_port()
    target = LoadTarget(mode=mode, host=HOST, port=port, api_key=API_KEY, salt=API_SALT,
                        fixed_route=None)
    with _crm_if_needed(st, mode, info) as crm:
        data_dir = st.work / "db-load"
        extra = {"ROUTER_PORT": str(port), "MANGO_API_URL": pbx.url,
                 "ROUTE_DEADLINE_MS": str(cfg.route_deadline_ms),
                 "ROUTER_LOOKUP": "index" if mode == "auto" else mode}
        if mode == "crm" and crm is not None:
            extra.update(ROUTER_LOOKUP_CRM_URL=crm.url, ROUTER_LOOKUP_CRM_USER="demo",
                         ROUTER_LOOKUP_CRM_PASSWORD="demo")
        if mode == "auto" and crm is not None:
            extra.update(auto_env(crm.url, rate=cfg.auto_crm_rate, token=st.token))
        extra.setdefault("ROUTER_ADMIN_TOKEN", _admin_token(st.token))
        env = product_env(data_dir, **extra)
        _ensure_imported(st, info.path, data_dir, env)
        if mode == "auto":
            _prepare_auto(st, info, pbx, env)
        spec = ServiceSpec(
            name=f"mango-router serve ({mode})", argv=[*product_command(), "serve"],
            env=env, cwd=st.work, host=HOST, port=port, log_path=logs / f"serve-{mode}.log",
            cpus=st.service_cpus(),
        )
        service = ServiceProcess(spec)
        try:
            took = service.start()
            _pin_database(st, data_dir)
            logger.info("%s ready in %.1f s (pid %s)", spec.name, took, service.pid)
            if mode == "auto":
                _start_auto(st, service, info)
            if mode in ("index", "auto"):  # measured with the routing settings on
                put_settings(service.base_url, _admin_token(st.token), ROUTING_ON)
                post_busy_leg(service.base_url, API_KEY, API_SALT)
            result = run_mode(cfg, target, info, loadgen, pbx, run_token=st.token,
                              deadline=deadline,
                              floor=floor if cfg.pairs_with_floor(mode) else None)
            if mode == "index":
                _measure_sidecar(st, service, info, loadgen, sidecar)
                _measure_freshness(st, service, info, spec, freshness)
            if mode == "auto" and crm is not None:
                result.automation = _automation_outcome(st, service, crm)
        finally:
            if mode in ("index", "auto") and service.pid is not None:
                with suppress(RuntimeError, OSError):
                    put_settings(service.base_url, _admin_token(st.token), ROUTING_OFF)
            if mode == "auto":
                _reset_auto(st, service)
            code = service.stop()
            if code not in (0, None, -15):
                st.notes.append(f"{spec.name} exited with {code} on SIGTERM")
    return result


@contextmanager
def _floor_service(st: _Run, pbx: PbxProcess) -> Iterator[LoadTarget | None]:
    """The floor (``bench.floor``), up for the whole run when its figures or the
    rounds that pair it with index and auto need it; None when not, or when it does
    not start (that is in the notes)."""
    cfg = st.cfg
    if "floor" not in cfg.modes and not any(cfg.pairs_with_floor(m) for m in cfg.modes):
        yield None
        return
    port = free_port()
    spec = ServiceSpec(
        name="floor",
        argv=[sys.executable, "-m", "bench.floor", "--host", HOST, "--port", str(port),
              "--pbx-url", pbx.url, "--api-key", API_KEY, "--salt", API_SALT],
        env=dict(os.environ), cwd=st.work, host=HOST, port=port,
        log_path=cfg.out_dir / "logs" / "floor.log", ready_timeout_s=30,
        cpus=st.service_cpus(),
    )
    service = ServiceProcess(spec)
    try:
        try:
            took = service.start()
        except (ServiceError, OSError) as exc:
            st.floor_error = str(exc).splitlines()[0]
            st.notes.append(f"floor: not started: {exc}")
            logger.error("floor: %s", exc)
            target = None
        else:
            logger.info("floor ready in %.1f s (pid %s)", took, service.pid)
            target = LoadTarget(mode="floor", host=HOST, port=port, api_key=API_KEY,
                                salt=API_SALT, fixed_route=FIXED_EXTENSION)
        yield target
    finally:
        code = service.stop()
        if code not in (0, None, -15):
            st.notes.append(f"floor exited with {code} on SIGTERM")


def auto_env(crm_url: str, *, rate: int, token: str) -> dict[str, str]:
    """The ``auto`` mode's service: the CRM (and its rate cap), no poll during the run,
    an operator token for the settings."""
    return {
        "MEGAPLAN_URL": crm_url, "MEGAPLAN_USERNAME": "demo", "MEGAPLAN_PASSWORD": "demo",
        "MEGAPLAN_RATE": str(rate), "MEGAPLAN_POLL_SECONDS": str(_AUTO_POLL_S),
        "ROUTER_ADMIN_TOKEN": _admin_token(token),
    }


def _admin_token(run_token: str) -> str:
    return f"bench-operator-{run_token}"


def _prepare_auto(st: _Run, info: DatasetInfo, pbx: PbxProcess, env: dict[str, str]) -> None:
    """Before ``serve``: the programs and sync state in the database (``bench.auto``),
    and the PBX's users, so the sync's first pass keeps every extension."""
    pbx.set_users(pbx_users(info.path))
    _auto_sql(st, "prepare", env)


def _auto_sql(st: _Run, command: str, env: Mapping[str, str]) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "bench.auto", command, "--data-dir", env["ROUTER_DATA_DIR"]],
        env=dict(env), cwd=st.work, capture_output=True, timeout=120, check=False)
    if proc.returncode != 0:
        tail = proc.stderr.decode(errors="replace").strip().splitlines()[-3:]
        raise ServiceError(f"auto: {command} failed: {' | '.join(tail)}")


def _start_auto(st: _Run, service: ServiceProcess, info: DatasetInfo) -> None:
    """The automation's settings (through the API), then wait for the sync's first pass."""
    token = _admin_token(st.token)
    put_settings(service.base_url, token, automation_settings(ivr_employee(info.path)))
    t = time.monotonic()
    status = wait_synced(service.base_url, token, within=60)
    logger.info("auto: settings in force; the sync's first pass took %.1f s "
                "(%s CRM requests); waited %.1f s", status["incremental"]["duration_seconds"]
                or 0.0, status["incremental"]["requests"], time.monotonic() - t)


# Longer than the planner rests between batches (2 s at most) plus the child's metrics
# relay (once a second), with a margin.
_PLANNING_QUIET_S = 4.0
_PLANNING_WAIT_MOST_S = 20.0


def _settled_counts(base_url: str) -> dict[str, Any]:
    """The automation's counters once its planning has gone quiet (no action planned for
    longer than the planner rests between batches), or after ``_PLANNING_WAIT_MOST_S``.
    A fixed half second was too short on a loaded machine, where the planner's process
    (at ``nice`` 19) got to the last calls later: a clean-clone test saw 49 of 50. After
    fast steps the planner waits for calls to slow down (``automation.engine.QUIET_S``)
    and plans after the mode: those counts are what was planned by the mode's end."""
    deadline = time.monotonic() + _PLANNING_WAIT_MOST_S
    counts = service_counts(base_url)
    quiet_since = time.monotonic()
    while time.monotonic() - quiet_since < _PLANNING_QUIET_S and time.monotonic() < deadline:
        time.sleep(0.25)
        now = service_counts(base_url)
        if now["planned_total"] != counts["planned_total"]:
            quiet_since = time.monotonic()
        counts = now
    if time.monotonic() >= deadline:
        logger.info("auto: planning still going after %.0f s; counted as it stood",
                    _PLANNING_WAIT_MOST_S)
    return counts


def _automation_outcome(st: _Run, service: ServiceProcess, crm: CrmProcess) -> dict[str, Any]:
    """What the automation did during the mode: planned and done (the service's
    counters), and what landed in the CRM (the emulator's)."""
    counts = _settled_counts(service.base_url)
    stats = crm.stats()
    out: dict[str, Any] = {
        "crm_rate": st.cfg.auto_crm_rate,
        "planned": counts["planned"],
        "planned_total": counts["planned_total"],
        "done_total": counts["done_total"],
        "attempts": counts["attempts"],
        "pending_at_end": counts["planned_total"] - counts["done_total"] - sum(
            v.get("failed", 0) for v in counts["attempts"].values()),
        "crm_applied": stats["applied"],
        "crm_requests": stats["requests"],
    }
    logger.info("auto: %d CRM actions planned, %d done (%s); the CRM applied %s",
                out["planned_total"], out["done_total"], counts["planned"], stats["applied"])
    if not out["planned_total"] or not out["done_total"]:
        st.notes.append(f"auto: the automation did not work: {out['planned_total']} actions "
                        f"planned, {out['done_total']} done")
    return out


def _reset_auto(st: _Run, service: ServiceProcess) -> None:
    """The modes after ``auto`` share its database: the settings go back to the defaults
    and the actions left pending are dropped (those modes have no CRM to apply them)."""
    if service.pid is None:
        return
    try:
        put_settings(service.base_url, _admin_token(st.token), default_settings())
        _auto_sql(st, "clear", service.spec.env)
    except (RuntimeError, OSError) as exc:
        st.notes.append(f"auto: not cleaned up ({exc}); the later modes may plan CRM actions")


@contextmanager
def _crm_if_needed(st: _Run, mode: str, info: DatasetInfo) -> Iterator[CrmProcess | None]:
    if mode not in ("crm", "auto"):
        yield None
        return
    why = crm_unavailable()
    if why:
        raise ServiceError(f"{mode} mode skipped: {why}")
    crm = CrmProcess(HOST, free_port(), data_file=info.path, clients=info.clients,
                     seed=st.cfg.seed, latency_ms=st.cfg.crm_latency_ms,
                     rate_cap_per_s=st.cfg.auto_crm_rate if mode == "auto" else 0)
    try:
        yield crm
    finally:
        crm.stop()


def _pin_database(st: _Run, data_dir: Path) -> None:
    """PostgreSQL to the harness's cores: ``serve`` starts it when no import left it
    running, and then it starts on the service's core."""
    if st.cpus is None:
        return
    pid = postmaster_pid(data_dir / "pg")
    if pid is None or pin(pid, st.cpus.rest) == 0:
        st.notes.append(f"PostgreSQL under {data_dir} not found: not pinned")


def _ensure_imported(st: _Run, path: Path, data_dir: Path, env: dict[str, str]) -> float:
    if data_dir in st.imported:
        return 0.0
    took = run_import(path, env=env, cwd=st.work, log_path=st.cfg.out_dir / "logs" / "import.log",
                      timeout_s=max(60.0, st.remaining()))
    st.imported.add(data_dir)
    logger.info("imported %s in %.1f s", path.name, took)
    return took


def _measure_sidecar(
    st: _Run, service: ServiceProcess, info: DatasetInfo, loadgen: ChildProcess,
    out: dict[str, Any],
) -> None:
    cfg = st.cfg
    if not cfg.sidecar_seconds:
        st.notes.append("sidecar: skipped (--sidecar-seconds 0)")
        return
    numbers = plan_calls(info, 5000, seed=cfg.seed + 7, known_share=cfg.known_share).numbers
    spec = SidecarSpec(host=HOST, port=service.spec.port, numbers=numbers,
                       concurrency=cfg.sidecar_concurrency, seconds=cfg.sidecar_seconds)
    try:
        rep: SidecarReport = loadgen.call(("sidecar", spec), timeout=cfg.sidecar_seconds + 60)
    except ChildError as exc:
        st.notes.append(f"sidecar: not measured: {exc}")
        return
    ok = rep.requests > 0 and rep.errors == 0
    out.update(
        rps=round(rep.rps, 1) if ok else None,
        p99_ms=round(rep.p99_ms, 3) if ok and not math.isnan(rep.p99_ms) else None,
        p50_ms=round(rep.p50_ms, 3) if ok and not math.isnan(rep.p50_ms) else None,
        requests=rep.requests, errors=rep.errors, seconds=round(rep.seconds, 2),
        statuses={str(k): v for k, v in rep.statuses.items()},
    )
    if not ok:
        st.notes.append(f"sidecar: {rep.errors} errors ({rep.first_error}); figures null")
    logger.info("sidecar: %.0f req/s, p99 %.2f ms, %d errors", rep.rps, rep.p99_ms, rep.errors)


def _measure_freshness(
    st: _Run, service: ServiceProcess, info: DatasetInfo, spec: ServiceSpec,
    out: dict[str, Any],
) -> None:
    cfg = st.cfg
    if not cfg.freshness_changes:
        st.notes.append("freshness: skipped (--freshness 0)")
        return
    if not info.freshness:
        st.notes.append("freshness: the data set has no candidate client")
        return
    path = st.work / "freshness.json"
    path.write_bytes(orjson.dumps({
        "candidates": [{"client_id": c.client_id, "number": c.number, "extension": c.extension}
                       for c in info.freshness],
        "employees": [list(e) for e in info.routed_employees],
    }))
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "bench.freshness", "--data-dir", spec.env["ROUTER_DATA_DIR"],
             "--url", service.base_url, "--input", str(path),
             "--changes", str(cfg.freshness_changes)],
            env=dict(spec.env), cwd=st.work, capture_output=True, timeout=180, check=False,
        )
    except subprocess.TimeoutExpired:
        st.notes.append("freshness: not measured: took over 180 s")
        return
    if proc.returncode != 0:
        tail = proc.stderr.decode(errors="replace").strip().splitlines()[-3:]
        st.notes.append(f"freshness: not measured: exit {proc.returncode}: {' | '.join(tail)}")
        return
    got = orjson.loads(proc.stdout.strip().splitlines()[-1])
    samples = got.pop("samples_ms", [])
    out.update(got)
    out["samples"] = len(samples)
    if got.get("timeouts"):
        st.notes.append(f"freshness: {got['timeouts']} changes not served within 5 s")
    logger.info("freshness: %s changes, p50 %s ms, p99 %s ms", got.get("changes"),
                got.get("p50_ms"), got.get("p99_ms"))


def _index_build(st: _Run) -> dict[str, Any]:
    cfg = st.cfg
    out: dict[str, Any] = {"clients": cfg.index_clients or None, "phones": None, "seconds": None,
                           "rss_mb": None, "lookup_median_us": None, "lookup_p99_us": None}
    if not cfg.index_clients:
        st.notes.append("index_build: skipped (--index-clients 0)")
        return out
    try:
        t = time.monotonic()
        info = write_dataset(st.work / "index.jsonl", clients=cfg.index_clients,
                             seed=cfg.seed + 1, collect_expected=False,
                             samples=int(cfg.lookup_samples * 0.9))
        numbers = info.samples + plan_calls_unknown(cfg.lookup_samples - len(info.samples),
                                                    cfg.seed)
        sample_file = st.work / "lookup-numbers.txt"
        sample_file.write_text("\n".join(numbers) + "\n")
        logger.info("index data: %d clients, %d phones written in %.1f s",
                    info.clients, info.phones, time.monotonic() - t)
        data_dir = st.work / "db-index"
        env = product_env(data_dir)
        took = run_import(info.path, env=env, cwd=st.work,
                          log_path=cfg.out_dir / "logs" / "import-index.log",
                          timeout_s=max(60.0, st.remaining()))
        out["import_seconds"] = round(took, 1)
        logger.info("imported %d clients in %.1f s", info.clients, took)
        info.path.unlink()
        proc = subprocess.run(
            [sys.executable, "-m", "bench.indexbuild", "--data-dir", str(data_dir),
             "--numbers", str(sample_file)],
            env=env, cwd=st.work, capture_output=True, timeout=max(60.0, st.remaining() + 60),
            check=False,
        )
        if proc.returncode != 0:
            tail = proc.stderr.decode(errors="replace").strip().splitlines()[-3:]
            raise ServiceError(f"exit {proc.returncode}: {' | '.join(tail)}")
        got = orjson.loads(proc.stdout.strip().splitlines()[-1])
        out.update(got)
        out["clients"] = info.clients
        logger.info("index: %s phones built in %s s, +%s MB; lookup median %s us, p99 %s us",
                    got["phones"], got["seconds"], got["rss_mb"], got["lookup_median_us"],
                    got["lookup_p99_us"])
    except (ServiceError, OSError, subprocess.TimeoutExpired, ValueError, KeyError) as exc:
        st.notes.append(f"index_build: not measured: {exc}")
        logger.error("index_build: %s", exc)
    return out


def plan_calls_unknown(n: int, seed: int) -> list[str]:
    """Numbers nobody has (the unknown share of the lookups)."""
    import random

    rng = random.Random(seed + 99)
    return [f"7495{rng.randrange(10**7):07d}" for _ in range(max(0, n))]


def print_report(results: dict[str, Any]) -> None:
    sys.stdout.write(format_report(results) + "\n")
    sys.stdout.flush()
