"""The connection type that queries accept: a plain one or one lent by a pool."""

from __future__ import annotations

from typing import TypeAlias

import asyncpg
from asyncpg.pool import PoolConnectionProxy

__all__ = ["Conn"]

Conn: TypeAlias = asyncpg.Connection | PoolConnectionProxy
