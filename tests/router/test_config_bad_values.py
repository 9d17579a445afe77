"""Values the start cannot use stop it naming the variable (``ConfigError``, exit 2 in the
CLI), not with whatever ``urlsplit``, the file system or asyncpg would raise later."""

from __future__ import annotations

from pathlib import Path

import pytest

from router.config import ConfigError, load_config


@pytest.mark.parametrize("dsn", [
    "postgresql://[::1",                      # urlsplit: Invalid IPv6 URL
    "postgresql://h:abc/db",                  # asyncpg: int('abc')
    "postgresql://h1:5432,h2:x/db",
    "postgresql://h:5432:5/db",
    "postgresql://[::1]:x/db",
    "postgresql://a,/db",                     # asyncpg: an empty host spec
    "postgresql:///db?host=/tmp&port=abc",
    "postgresql://h/db?sslmode",              # parse_qs(strict_parsing=True)
])
def test_a_dsn_asyncpg_cannot_parse_stops_the_start_naming_database_url(dsn: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(environ={"DATABASE_URL": dsn}, env_file=None)
    assert caught.value.variable == "DATABASE_URL"


@pytest.mark.parametrize("dsn", [
    "postgresql://u:p%40ss@db.example.com:5433/router?sslmode=require",
    "postgresql://u@h1:5432,h2:5433,[::1]:5434/db",
    "postgresql://postgres:@/db?host=/tmp/pg&port=5432",
    "postgres:///db",
])
def test_a_dsn_asyncpg_takes_is_taken_as_it_is(dsn: str) -> None:
    assert load_config(environ={"DATABASE_URL": dsn}, env_file=None).database_url == dsn


def test_a_ca_file_name_too_long_for_the_file_system_names_the_variable() -> None:
    with pytest.raises(ConfigError, match="MANGO_CA_FILE: not a file: File name too long"):
        load_config(environ={"MANGO_CA_FILE": "a" * 5000}, env_file=None)


@pytest.mark.parametrize("variable", ["MANGO_API_KEY", "ROUTER_ADMIN_TOKEN", "DATABASE_URL",
                                      "MEGAPLAN_PASSWORD"])
def test_a_value_that_is_not_utf8_names_the_variable(variable: str) -> None:
    environ = {"MANGO_API_KEY": "k", "MANGO_API_SALT": "s", "MEGAPLAN_URL": "https://x.test",
               "MEGAPLAN_USERNAME": "u", "MEGAPLAN_PASSWORD": "p"}
    environ[variable] = "postgresql://h/db\udcff" if variable == "DATABASE_URL" else "x\udcff"
    with pytest.raises(ConfigError, match=f"{variable}: is not UTF-8 text"):
        load_config(environ=environ, env_file=None)


def test_a_data_dir_that_is_not_utf8_is_a_path_like_any_other() -> None:
    """The OS takes the bytes back; only text for the database must be UTF-8."""
    config = load_config(environ={"ROUTER_DATA_DIR": "/tmp/d\udcff"}, env_file=None)
    assert config.data_dir == Path("/tmp/d\udcff")


def test_an_env_file_that_is_not_utf8_names_the_file(tmp_path: Path) -> None:
    env_file = tmp_path / ".env"
    env_file.write_bytes(b"MANGO_API_KEY=\xff\xfe\n")
    with pytest.raises(ConfigError, match=r"\.env: cannot be read"):
        load_config(environ={}, env_file=env_file)
