"""``python -m router``: the same as the ``mango-router`` command."""

from router.cli import main

main()
