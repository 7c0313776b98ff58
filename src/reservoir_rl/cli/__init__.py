"""The ``reservoir-rl`` command line: parse arguments, call a use case in `reservoir_rl.commands`, render with Rich."""

from reservoir_rl.cli.app import app, main

__all__ = ["app", "main"]
