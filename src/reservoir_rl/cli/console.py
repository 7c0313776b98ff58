"""The consoles and the one-line error handling every command shares."""

from __future__ import annotations

import os
import sys
from typing import Callable, NoReturn, TypeVar

import typer
from rich.console import Console
from rich.markup import escape
from typer.core import TyperCommand, TyperGroup

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


def _flags_shown_as_flags(params: list) -> list:
    """Boolean flags (``--quiet``, ``--json``, ``--force``, ``--help`` …) take no value: help shows them bare,
    not as ``--quiet <bool>`` (which invites ``--quiet true``, then refused as an extra argument)."""
    for param in params:
        if getattr(param, "is_flag", False) and param.metavar is None:
            param.metavar = ""
    return params


class FlagCommand(TyperCommand):
    """A command whose help shows boolean options as flags."""

    def get_params(self, ctx):  # noqa: D102
        return _flags_shown_as_flags(super().get_params(ctx))


class OneLineErrors(TyperGroup):
    """Click/Typer usage errors (bad option value, unknown option, missing argument) as one ``error:`` line
    naming the command, exit 2 (never Typer's own boxed "Error" panel); boolean options shown as flags."""

    def get_params(self, ctx):  # noqa: D102
        return _flags_shown_as_flags(super().get_params(ctx))

    def _where(self, error, args, prog_name) -> str:
        """``reservoir-rl evaluate: `` — the command an error is about (also when click gives no context)."""
        if getattr(error, "ctx", None) is not None:
            return f"{error.ctx.command_path}: "
        words = list(sys.argv[1:] if args is None else args)
        command = next((w for w in words if not w.startswith("-")), None)
        program = prog_name or self.name or "reservoir-rl"
        return f"{program} {command}: " if command in self.commands else f"{program}: "

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):  # noqa: D102
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        try:
            code = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except _UsageError as error:
            if type(error).__name__ == "NoArgsIsHelpError":  # bare `reservoir-rl`: the help text
                error.show()
                sys.exit(error.exit_code)
            print_error(self._where(error, args, prog_name) + " ".join(error.format_message().split()))
            sys.exit(2)
        except _ClickException as error:
            print_error(self._where(error, args, prog_name) + " ".join(error.format_message().split()))
            sys.exit(error.exit_code)
        except typer.Abort:
            sys.exit(1)
        sys.exit(code if isinstance(code, int) else 0)
