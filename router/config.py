"""Configuration: parsed once, at start, into one frozen typed object.

Sources, later ones winning: a ``.env`` file in the working directory, the
process environment, command-line flags. A bad value stops the program with
exit code 2 and a message naming the variable (the CLI does the exiting).
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal
from urllib.parse import parse_qs, unquote, urlsplit

from dotenv import dotenv_values

from lookup.accounts import check_url
from lookup.text import is_text

__all__ = ["DEFAULT_MANGO_API_URL", "AutomationMode", "Config", "ConfigError", "LookupMode",
           "load_config"]

DEFAULT_MANGO_API_URL = "https://app.mango-office.ru/vpbx/"

LookupMode = Literal["index", "sql", "crm"]
AutomationMode = Literal["process", "inline"]


class ConfigError(ValueError):
    """A missing or bad setting; ``variable`` names it for the operator."""

    def __init__(self, variable: str, message: str) -> None:
        super().__init__(f"{variable}: {message}")
        self.variable = variable


@dataclass(frozen=True, slots=True, kw_only=True)
class Config:
    database_url: str | None
    data_dir: Path
    host: str
    port: int
    mango_api_url: str
    mango_api_key: str | None
    mango_api_salt: str | None
    mango_ca_file: Path | None  # CAs the VPBX API's certificate is checked against
    megaplan_url: str | None
    megaplan_username: str | None
    megaplan_password: str | None
    route_deadline_ms: int
    admin_token: str | None
    secret_key: str | None  # signs the pages' session cookies; else a key in data_dir
    log_level: str | None  # None: INFO for serve, WARNING for one-shot commands
    claim_timeout_ms: int
    lookup_mode: LookupMode
    lookup_crm_url: str | None
    lookup_crm_user: str
    lookup_crm_password: str
    megaplan_poll_seconds: float
    megaplan_rate: float
    # where the call automation runs: a child process of its own (the default: it never
    # takes the routing process's CPU) or this process (tests)
    automation_mode: AutomationMode

    def __repr__(self) -> str:  # secrets stay out of logs and tracebacks
        return f"Config(host={self.host!r}, port={self.port}, data_dir={str(self.data_dir)!r})"


def load_config(
    overrides: Mapping[str, str | None] | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    env_file: Path | None = Path(".env"),
) -> Config:
    """Build the config from ``.env``, then the environment, then ``overrides`` (flags)."""
    values: dict[str, str] = {}
    if env_file is not None and env_file.is_file():
        try:
            found = dotenv_values(env_file)
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(str(env_file), f"cannot be read: {exc}") from None
        values.update({k: v for k, v in found.items() if v is not None})
    values.update(os.environ if environ is None else environ)
    values.update({k: v for k, v in (overrides or {}).items() if v is not None})
    env = _Env(values)

    salt_key = (env.text("MANGO_API_KEY"), env.text("MANGO_API_SALT"))
    if salt_key[0] and not salt_key[1]:
        raise ConfigError("MANGO_API_SALT", "required when MANGO_API_KEY is set")
    megaplan_url = env.url("MEGAPLAN_URL")
    if megaplan_url and not (env.text("MEGAPLAN_USERNAME") and env.text("MEGAPLAN_PASSWORD")):
        raise ConfigError("MEGAPLAN_USERNAME", "MEGAPLAN_USERNAME and MEGAPLAN_PASSWORD are "
                          "required when MEGAPLAN_URL is set")
    lookup_mode = env.text("ROUTER_LOOKUP") or "index"
    if lookup_mode not in ("index", "sql", "crm"):
        raise ConfigError("ROUTER_LOOKUP", f"must be index, sql or crm, not {lookup_mode!r}")
    lookup_crm_url = env.url("ROUTER_LOOKUP_CRM_URL")
    if lookup_mode == "crm" and not lookup_crm_url:
        raise ConfigError("ROUTER_LOOKUP_CRM_URL", "required when ROUTER_LOOKUP=crm")
    secret_key = env.text("ROUTER_SECRET_KEY")
    if secret_key is not None and len(secret_key) < 32:
        raise ConfigError("ROUTER_SECRET_KEY", "must be at least 32 characters "
                          "(for example: openssl rand -hex 32)")
    automation_mode = env.text("ROUTER_AUTOMATION") or "process"
    if automation_mode not in ("process", "inline"):
        raise ConfigError("ROUTER_AUTOMATION",
                          f"must be process or inline, not {automation_mode!r}")
    log_level = (env.text("ROUTER_LOG_LEVEL") or "").upper() or None
    if log_level not in (None, "DEBUG", "INFO", "WARNING", "ERROR"):
        raise ConfigError("ROUTER_LOG_LEVEL", "must be DEBUG, INFO, WARNING or ERROR")
    return Config(
        database_url=env.dsn("DATABASE_URL"),
        data_dir=Path(env.raw("ROUTER_DATA_DIR") or "./.data"),
        host=env.text("ROUTER_HOST") or "127.0.0.1",
        port=env.integer("ROUTER_PORT", 8080, low=0, high=65535),
        mango_api_url=env.url("MANGO_API_URL") or DEFAULT_MANGO_API_URL,
        mango_api_key=salt_key[0],
        mango_api_salt=salt_key[1],
        mango_ca_file=env.file("MANGO_CA_FILE"),
        megaplan_url=megaplan_url,
        megaplan_username=env.text("MEGAPLAN_USERNAME"),
        megaplan_password=env.text("MEGAPLAN_PASSWORD"),
        route_deadline_ms=env.integer("ROUTE_DEADLINE_MS", 1500, low=1, high=60_000),
        admin_token=env.text("ROUTER_ADMIN_TOKEN"),
        secret_key=secret_key,
        log_level=log_level,
        claim_timeout_ms=env.integer("ROUTER_CLAIM_TIMEOUT_MS", 50, low=1, high=10_000),
        lookup_mode=lookup_mode,  # type: ignore[arg-type]  # checked just above
        lookup_crm_url=lookup_crm_url,
        lookup_crm_user=env.text("ROUTER_LOOKUP_CRM_USER") or "demo",
        lookup_crm_password=env.text("ROUTER_LOOKUP_CRM_PASSWORD") or "demo",
        megaplan_poll_seconds=env.number("MEGAPLAN_POLL_SECONDS", 30.0, low=0.05),
        megaplan_rate=env.number("MEGAPLAN_RATE", 3.0, low=0.01),
        automation_mode=automation_mode,  # type: ignore[arg-type]  # checked just above
    )


class _Env:
    __slots__ = ("_values",)

    def __init__(self, values: Mapping[str, str]) -> None:
        self._values = values

    def raw(self, name: str) -> str | None:
        """As given: a path may hold bytes that are not UTF-8 (they come back as lone
        surrogates, which the OS takes again)."""
        value = self._values.get(name, "").strip()
        return value or None

    def text(self, name: str) -> str | None:
        """Text that goes to the database, a URL or a header, so it must be UTF-8."""
        value = self.raw(name)
        if value is not None and not is_text(value):
            raise ConfigError(name, "is not UTF-8 text")
        return value

    def integer(self, name: str, default: int, *, low: int, high: int) -> int:
        raw = self.text(name)
        if raw is None:
            return default
        try:
            value = int(raw)
        except ValueError:
            raise ConfigError(name, f"must be a whole number, not {raw!r}") from None
        if not low <= value <= high:
            raise ConfigError(name, f"must be from {low} to {high}, not {value}")
        return value

    def number(self, name: str, default: float, *, low: float) -> float:
        raw = self.text(name)
        if raw is None:
            return default
        try:
            value = float(raw)
        except ValueError:
            raise ConfigError(name, f"must be a number, not {raw!r}") from None
        if not math.isfinite(value) or not value >= low:
            raise ConfigError(name, f"must be at least {low}, not {raw}")
        return value

    def file(self, name: str) -> Path | None:
        raw = self.raw(name)
        if raw is None:
            return None
        path = Path(raw)
        try:
            found = path.is_file()
        except OSError as exc:  # a name too long, say: is_file passes that on
            raise ConfigError(name, f"not a file: {exc.strerror}") from None
        if not found:
            raise ConfigError(name, f"no such file: {raw!r}")
        return path

    def dsn(self, name: str) -> str | None:
        raw = self.text(name)
        if raw is None:
            return None
        try:
            parts = urlsplit(raw)
        except ValueError as exc:  # an unclosed [ of an IPv6 address
            raise ConfigError(name, f"not a URL: {exc}") from None
        if parts.scheme not in ("postgres", "postgresql"):
            raise ConfigError(name, "must be a postgresql:// URL")
        problem = _dsn_problem(parts.netloc.rpartition("@")[2], parts.query)
        if problem is not None:
            raise ConfigError(name, f"not a PostgreSQL URL: {problem}")
        return raw

    def url(self, name: str) -> str | None:
        raw = self.text(name)
        if raw is None:
            return None
        try:
            check_url(name, raw)  # as `account add` checks an account's URLs
        except ValueError:
            raise ConfigError(name, f"must be an http(s) URL, not {raw!r}") from None
        return raw


def _dsn_problem(hosts: str, query: str) -> str | None:
    """What asyncpg's parsing of a DSN fails on with a ``ValueError`` or worse (a port that
    is not a number, an empty host in a list, a query that is not ``key=value``), which
    would come out as a traceback, not as a connection error."""
    try:
        params = parse_qs(query, strict_parsing=True) if query else {}
    except ValueError as exc:
        return str(exc)
    ports = [p for value in params.get("port", []) for p in value.split(",")]
    for spec in hosts.split(",") if hosts else []:
        if not spec:
            return "an empty host in the list of hosts"
        if spec.startswith("["):  # [::1]:5432
            ports.append(spec.partition("]")[2].removeprefix(":"))
        elif not spec.startswith("/"):  # a socket directory has no port
            ports.append(spec.partition(":")[2])
    for port in filter(None, ports):
        try:
            int(unquote(port))
        except ValueError:
            return f"port {port!r} is not a number"
    return None
