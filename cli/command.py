"""What a command group gives ``cli.main``: its parsers, each with a ``run`` coroutine."""

from __future__ import annotations

import argparse
from collections.abc import Callable, Coroutine
from typing import Any, TypeAlias

from router.config import Config

__all__ = ["Command", "Subparsers"]

Command = Callable[[Config, argparse.Namespace], Coroutine[Any, Any, int]]
Subparsers: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"
