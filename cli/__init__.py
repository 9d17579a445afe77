"""The ``mango-router`` command line: one module per command group."""
