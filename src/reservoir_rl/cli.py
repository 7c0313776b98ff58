"""The ``reservoir-rl`` command line: parse arguments, call the service layer, render with Rich."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Callable, List, Optional, TypeVar

import typer
from rich.console import Console

from reservoir_rl import __version__
from reservoir_rl.errors import UserError

app = typer.Typer(
    name="reservoir-rl",
    help="Train DQN agents to operate a reservoir, compare them with the operating rules, inspect runs.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console()
err_console = Console(stderr=True)
T = TypeVar("T")
_debug = False


def _version(value: bool) -> None:
    if value:
        console.print(f"reservoir-rl {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Show the version and exit."),
    debug: bool = typer.Option(False, "--debug", help="Show full tracebacks for errors."),
) -> None:
    global _debug
    _debug = debug or bool(os.environ.get("RESERVOIR_RL_DEBUG"))


def _call(action: Callable[[], T]) -> T:
    """Run a service call; a user error becomes one red line and exit code 2 (``--debug`` re-raises)."""
    try:
        return action()
    except UserError as error:
        if _debug:
            raise
        _fail(str(error))


def _fail(message: str) -> None:
    err_console.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    raise typer.Exit(code=2)


def _view(quiet: bool):
    from reservoir_rl.monitor.live import make_view

    return make_view("quiet" if quiet else "auto", console)


def _render_summary(summary) -> None:
    from rich.table import Table

    table = Table(title=f"Run {summary.run_dir.name}", show_header=False, title_justify="left")
    stopped = {"done": "finished"}.get(summary.stopped_by, f"stopped by {summary.stopped_by}, checkpoint saved")
    table.add_row("status", stopped)
    table.add_row("frames / updates / episodes", f"{summary.frames:,} / {summary.updates:,} / {summary.episodes:,}")
    table.add_row("wall time", f"{summary.seconds:,.1f} s")
    if summary.last_eval:
        ev = summary.last_eval
        table.add_row("held-out greedy return", f"{ev['return']:.2f} (min {ev['return_min']:.2f}, max {ev['return_max']:.2f})")
        table.add_row("held-out energy / spill", f"{ev['energy_gwh']:.1f} GWh / {ev['spill_hm3']:.1f} hm³ per episode")
        table.add_row("held-out failures / success", f"{ev['failures']:.2f} / {ev['success']:.0%}")
    if summary.best_eval_return is not None:
        table.add_row("best held-out return", f"{summary.best_eval_return:.2f} (checkpoints/best.pt)")
    table.add_row("folder", str(summary.run_dir))
    if summary.stopped_by != "done":
        table.add_row("continue with", f"reservoir-rl resume {summary.run_dir}")
    console.print(table)


@app.command()
def train(
    config: Path = typer.Argument(..., help="YAML config file (see configs/base.yaml)."),
    name: Optional[str] = typer.Option(None, "--name", help="Run folder name (default: the next run-N)."),
    runs_dir: Path = typer.Option(Path("runs"), "--runs-dir", help="Folder holding the runs."),
    overrides: List[str] = typer.Option([], "--set", help="Override a config key: section.key=value (repeatable)."),
    seed: Optional[int] = typer.Option(None, "--seed", help="Random seed (overrides train.seed)."),
    device: Optional[str] = typer.Option(None, "--device", help="cpu or cuda (overrides train.device)."),
    quiet: bool = typer.Option(False, "--quiet", help="Print only the final summary."),
) -> None:
    """Train a DQN agent into a new run folder (checkpoints, TensorBoard events, resolved config)."""
    from reservoir_rl.service import train as service

    if device is not None and device not in ("cpu", "cuda"):
        _fail(f"--device {device!r}: choose cpu or cuda")
    summary = _call(
        lambda: service.train(config, overrides, _view(quiet), runs_dir, name, seed, device, command=sys.argv)
    )
    _render_summary(summary)


@app.command()
def resume(
    run: str = typer.Argument(..., help="Run name under --runs-dir, or a path to a run folder."),
    total_frames: Optional[int] = typer.Option(None, "--total-frames", help="Train up to this many frames in all."),
    runs_dir: Path = typer.Option(Path("runs"), "--runs-dir", help="Folder holding the runs."),
    quiet: bool = typer.Option(False, "--quiet", help="Print only the final summary."),
) -> None:
    """Continue a run exactly where its latest complete checkpoint left it."""
    from reservoir_rl.service import train as service

    summary = _call(lambda: service.resume(run, _view(quiet), runs_dir, total_frames, command=sys.argv))
    _render_summary(summary)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
