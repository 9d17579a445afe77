"""The pages' session key: from ROUTER_SECRET_KEY, or made once in the data directory."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from router.config import Config, load_config
from router.pages.session import secret_key


def _config(data_dir: Path, **env: str) -> Config:
    return load_config(environ={"ROUTER_DATA_DIR": str(data_dir), **env}, env_file=None)


def test_the_key_is_made_once_owner_only_and_kept(tmp_path: Path) -> None:
    first = secret_key(_config(tmp_path))
    path = tmp_path / "session.key"
    assert path.stat().st_mode & 0o777 == 0o600
    assert secret_key(_config(tmp_path)) == first
    assert [p.name for p in tmp_path.iterdir()] == ["session.key"]  # no scratch file left


def test_the_variable_wins_and_replicas_sharing_it_share_the_key(tmp_path: Path) -> None:
    env = {"ROUTER_SECRET_KEY": "k" * 40}
    one = secret_key(_config(tmp_path / "a", **env))
    two = secret_key(_config(tmp_path / "b", **env))
    assert one == two
    assert not (tmp_path / "a" / "session.key").exists()


def test_a_truncated_key_file_is_refused_not_used(tmp_path: Path) -> None:
    (tmp_path / "session.key").write_text("abc\n")
    os.chmod(tmp_path / "session.key", 0o600)
    with pytest.raises(ValueError, match="not a session key"):
        secret_key(_config(tmp_path))
