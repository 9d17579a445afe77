"""``python -m router``: the same as the ``mango-router`` command."""

from cli.main import main

main()
