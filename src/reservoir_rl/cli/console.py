"""The consoles and the one-line error handling every command shares."""

from __future__ import annotations

import os
import sys
from typing import Callable, NoReturn, TypeVar

import typer
from rich.console import Console
from rich.markup import escape
from typer.core import TyperGroup

from reservoir_rl.errors import UserError

console = Console()
err_console = Console(stderr=True)
T = TypeVar("T")
_state = {"debug": bool(os.environ.get("RESERVOIR_RL_DEBUG"))}

# click's UsageError and ClickException, whether click is a dependency of typer or vendored inside it.
_UsageError = typer.BadParameter.__mro__[1]
_ClickException = _UsageError.__mro__[1]


def set_debug(debug: bool) -> None:
    """``--debug``: user errors re-raise with their traceback."""
    _state["debug"] = debug or bool(os.environ.get("RESERVOIR_RL_DEBUG"))


def print_error(message: str) -> None:
    """One red ``error:`` line on stderr."""
    err_console.print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)


def fail(message: str) -> NoReturn:
    """One error line and exit code 2."""
    print_error(message)
    raise typer.Exit(code=2)


def call(action: Callable[[], T]) -> T:
    """Run a use case; a user error becomes one red line and exit code 2 (``--debug`` re-raises)."""
    try:
        return action()
    except UserError as error:
        if _state["debug"]:
            raise
        fail(str(error))


class OneLineErrors(TyperGroup):
    """Click/Typer usage errors (bad option value, unknown option, missing argument) as one line, exit 2."""

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):  # noqa: D102
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        try:
            code = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except _UsageError as error:
            if type(error).__name__ == "NoArgsIsHelpError":  # bare `reservoir-rl`: the help text
                error.show()
                sys.exit(error.exit_code)
            where = f"{error.ctx.command_path}: " if error.ctx is not None else ""
            print_error(where + " ".join(error.format_message().split()))
            sys.exit(2)
        except _ClickException as error:
            print_error(" ".join(error.format_message().split()))
            sys.exit(error.exit_code)
        except typer.Abort:
            sys.exit(1)
        sys.exit(code if isinstance(code, int) else 0)
