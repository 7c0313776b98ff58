"""The ``reservoir-rl`` command line: parse arguments, call the service layer, render with Rich."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Callable, List, Optional, TypeVar

import typer
from rich.console import Console
from typer.core import TyperGroup

from reservoir_rl import __version__
from reservoir_rl.errors import UserError



# click's UsageError and ClickException, whether click is a dependency of typer or vendored inside it.
_UsageError = typer.BadParameter.__mro__[1]
_ClickException = _UsageError.__mro__[1]


class _OneLineErrors(TyperGroup):
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
            _print_error(where + " ".join(error.format_message().split()))
            sys.exit(2)
        except _ClickException as error:
            _print_error(" ".join(error.format_message().split()))
            sys.exit(error.exit_code)
        except typer.Abort:
            sys.exit(1)
        sys.exit(code if isinstance(code, int) else 0)


app = typer.Typer(
    cls=_OneLineErrors,
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


def _print_error(message: str) -> None:
    from rich.markup import escape

    err_console.print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)


def _fail(message: str) -> None:
    _print_error(message)
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
        table.add_row("validation greedy return", f"{ev['return']:.2f} (min {ev['return_min']:.2f}, max {ev['return_max']:.2f})")
        table.add_row("validation energy / spill", f"{ev['energy_gwh']:.1f} GWh / {ev['spill_hm3']:.1f} hm³ per episode")
        table.add_row("validation failures / success", f"{ev['failures']:.2f} / {ev['success']:.0%}")
    if summary.best_eval_return is not None:
        table.add_row("best validation return", f"{summary.best_eval_return:.2f} (checkpoints/best.pt)")
    table.add_row("folder", str(summary.run_dir))
    if summary.stopped_by != "done":
        table.add_row("continue with", f"reservoir-rl resume {summary.run_dir}")
    console.print(table)


def _progress(quiet: bool) -> Optional[Callable[[str], None]]:
    """Plain progress lines of a multi-seed run (None: quiet)."""
    return None if quiet else (lambda text: console.out(text, highlight=False))


@app.command()
def train(
    config: Path = typer.Argument(..., help="YAML config file (see configs/base.yaml)."),
    name: Optional[str] = typer.Option(None, "--name", help="Run folder name (default: the next run-N)."),
    runs_dir: Path = typer.Option(Path("runs"), "--runs-dir", help="Folder holding the runs."),
    overrides: List[str] = typer.Option([], "--set", help="Override a config key: section.key=value (repeatable)."),
    seed: Optional[int] = typer.Option(None, "--seed", help="Random seed (overrides train.seed)."),
    seeds: Optional[str] = typer.Option(
        None, "--seeds", help="Several seeds, e.g. 0,1,2: RUN/seed-K/ runs trained in parallel processes."
    ),
    device: Optional[str] = typer.Option(None, "--device", help="cpu or cuda (overrides train.device)."),
    quiet: bool = typer.Option(False, "--quiet", help="Print only the final summary."),
) -> None:
    """Train a DQN agent into a new run folder (checkpoints, TensorBoard events, resolved config)."""
    if device is not None and device not in ("cpu", "cuda"):
        _fail(f"--device {device!r}: choose cpu or cuda")
    if seeds is not None:
        from reservoir_rl.commands import seeds as multi

        if seed is not None:
            _fail("--seed and --seeds exclude each other: --seed K trains one seed, --seeds 0,1,2 several")
        seed_list = _call(lambda: multi.parse_seeds(seeds))
        from reservoir_rl.cli.render_seeds import render_seeds

        render_seeds(_call(lambda: multi.train_seeds(
            config, seed_list, overrides, runs_dir, name, device, command=sys.argv, on_message=_progress(quiet),
        )))
        return
    from reservoir_rl.commands import train as service

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
    """Continue a run exactly where its latest complete checkpoint left it (every seed of a multi-seed run)."""
    from reservoir_rl.commands import seeds as multi

    group = _call(lambda: multi.find_group(run, runs_dir))
    if group is not None:
        from reservoir_rl.cli.render_seeds import render_seeds

        render_seeds(_call(lambda: multi.resume_seeds(group, total_frames, command=sys.argv, on_message=_progress(quiet))))
        return
    from reservoir_rl.commands import train as service

    summary = _call(lambda: service.resume(run, _view(quiet), runs_dir, total_frames, command=sys.argv))
    _render_summary(summary)


def _number(value: Optional[float], percent: bool = False) -> str:
    if value is None or value != value:  # None or NaN
        return "n/a"
    if percent:
        return f"{100 * value:.0f}%"
    size = abs(value)
    return f"{value:,.0f}" if size >= 100 else f"{value:.1f}" if size >= 10 else f"{value:.2f}"


def _estimate(estimate, percent: bool = False, newline: bool = True) -> str:
    if estimate is None or estimate.value != estimate.value:
        return "n/a"
    sep = "\n" if newline else " "
    low, high = _number(estimate.ci_low, percent), _number(estimate.ci_high, percent)
    return f"{_number(estimate.value, percent)}{sep}\\[{low}, {high}]"


_SHORT_LABELS = {
    "return": "return", "energy_gwh": "energy GWh", "spill_hm3": "spill hm³", "flood_zone_days": "flood days",
    "failures": "failures", "env_flow_deficit_days": "e-flow days", "supply_reliability": "reliability",
    "supply_resilience": "resilience", "supply_vulnerability_hm3": "vulner. hm³/d", "success": "success",
}
_POLICY_SHORT = {"agent": "agent", "sop": "SOP", "hedging": "hedging", "rule": "rule curve", "dp": "DP"}


def _render_evaluation(report) -> None:
    from rich import box
    from rich.table import Table

    years = {"heldout": "held-out", "validation": "validation-year", "train": "training-year", "all": "any-year"}[report.years]
    where = f"{report.episodes} {years} episode{'s' if report.episodes > 1 else ''} × {report.horizon_days} days"
    console.print(
        f"[bold]{report.run_name or report.checkpoint}[/] at frame {report.frames:,} ({report.checkpoint}): "
        f"{where}, seed {report.seed}, the same inflow traces and initial storages for every policy",
        highlight=False,
    )
    table = Table(box=box.SIMPLE_HEAD, padding=(0, 1), pad_edge=False,
                  caption=f"mean over episodes; below it, its {report.bootstrap['confidence']:.0%} percentile bootstrap "
                          f"interval ({report.bootstrap['resamples']:,} resamples); DP = perfect foresight",
                  caption_justify="left")
    table.add_column("metric", no_wrap=True, min_width=13)
    for name in report.policies:
        table.add_column(_POLICY_SHORT[name], justify="right", overflow="fold")
    for key, label in _SHORT_LABELS.items():
        estimates = [report.summary[p][key] for p in report.policies]
        table.add_row(label, *(_number(e.value) for e in estimates))
        if any(e.ci_low == e.ci_low for e in estimates):
            table.add_row("", *(_interval(e) for e in estimates), style="dim")
    console.print(table)
    if report.differences:
        paired = Table(title="agent − baseline, paired by episode: mean \\[interval]", title_justify="left",
                       box=box.SIMPLE_HEAD, padding=(0, 1), pad_edge=False)
        paired.add_column("baseline", overflow="fold")
        for label in ("return", "energy GWh", "agent higher"):
            paired.add_column(label, justify="right", overflow="fold")
        for name, diff in report.differences.items():
            paired.add_row(
                _POLICY_SHORT[name],
                *(_estimate(diff[k], newline=False) for k in ("return", "energy_gwh")),
                _number(report.agent_better[name], percent=True),
            )
        console.print(paired)
    if report.gap_share is not None:
        console.print(f"share of the SOP → DP gap closed, (R_agent − R_sop) / (R_dp − R_sop): "
                      f"[bold]{_estimate(report.gap_share, newline=False)}[/]", highlight=False)
    else:
        console.print("share of the SOP → DP gap closed: n/a (needs --baselines with sop and dp)")
    for path in report.files:
        console.print(f"wrote {path}", highlight=False)


def _interval(estimate) -> str:
    if estimate.ci_low != estimate.ci_low:
        return ""
    return f"{_number(estimate.ci_low)}, {_number(estimate.ci_high)}"


@app.command()
def evaluate(
    ckpt: str = typer.Argument(..., help="Checkpoint file, or a run name / run folder (then its checkpoints/best.pt)."),
    episodes: int = typer.Option(50, "--episodes", help="Paired episodes: every policy gets the same traces."),
    years: str = typer.Option("heldout", "--years", help="Water years the episodes start in: heldout, validation (those of the in-training evaluation), train or all."),
    baselines: str = typer.Option("sop,hedging,rule,dp", "--baselines", help="Comma-separated: sop,hedging,rule,dp (or none)."),
    seed: Optional[int] = typer.Option(None, "--seed", help="Env seed (default: the seed of the in-training evaluations)."),
    out: Optional[Path] = typer.Option(None, "--out", help="Write the results as JSON here."),
    csv: Optional[Path] = typer.Option(None, "--csv", help="Write one row per episode and policy here."),
    force: bool = typer.Option(False, "--force", help="Overwrite existing --out / --csv files."),
    runs_dir: Path = typer.Option(Path("runs"), "--runs-dir", help="Folder holding the runs."),
) -> None:
    """Compare the greedy agent with SOP, hedging, rule curve and perfect-foresight DP on the same inflow traces.

    On a multi-seed run: every seed's agent on the same episodes, with the mean and IQM over seeds."""
    from reservoir_rl.commands import evaluate as service
    from reservoir_rl.commands import seeds as multi

    group = _call(lambda: multi.find_group(ckpt, runs_dir))
    if group is not None:
        from reservoir_rl.cli.render_seeds import render_seed_evaluation
        from reservoir_rl.commands.evaluate_seeds import evaluate_seeds

        with console.status("evaluating …") as status:
            report = _call(lambda: evaluate_seeds(
                group, episodes, years, baselines, seed, out, csv, force,
                on_policy=lambda name: status.update(f"evaluating {name} on {episodes} episodes …"),
            ))
        render_seed_evaluation(report)
        return
    with console.status("evaluating …") as status:
        report = _call(lambda: service.evaluate(
            ckpt, episodes, years, baselines, seed, out, csv, force, runs_dir,
            on_policy=lambda name: status.update(f"evaluating {name} on {episodes} episodes …"),
        ))
    _render_evaluation(report)


@app.command()
def plot(
    run: str = typer.Argument(..., help="Run name under --runs-dir, or a path to a run folder."),
    out: Optional[Path] = typer.Option(None, "--out", help="Folder for the figures (default: RUN/figures)."),
    fmt: str = typer.Option("png", "--format", help="png or svg."),
    runs_dir: Path = typer.Option(Path("runs"), "--runs-dir", help="Folder holding the runs."),
    force: bool = typer.Option(False, "--force", help="Overwrite figure files that already exist in --out."),
    seed: Optional[int] = typer.Option(
        None, "--seed", help="Multi-seed run: the seed of the held-out and training figures (default: the first)."
    ),
) -> None:
    """Draw a run's learning curves, training and reservoir metrics, and held-out agent vs SOP vs DP figures.

    On a multi-seed run: every seed's learning curves with their mean and band, other figures of one seed."""
    from reservoir_rl.commands import plot as service

    with console.status("drawing …"):
        result = _call(lambda: service.plot(run, out, fmt, runs_dir, force, seed))
    for tag, curves in result.curves.items():
        if len(curves.steps):
            console.print(f"{tag}: {len(curves.per_seed)} seeds, mean at frame {int(curves.steps[-1]):,} "
                          f"{curves.mean[-1]:.2f} (seeds from {curves.low[-1]:.2f} to {curves.high[-1]:.2f})",
                          highlight=False)
    if result.checkpoint is not None:
        which = f"seed {result.seed}: " if result.seed is not None else ""
        console.print(f"held-out figures from {which}{result.checkpoint} (frame {result.frames:,})", highlight=False)
    for note in result.notes:
        console.print(f"[yellow]note:[/] {note}", highlight=False)
    for path in result.files:
        console.print(f"wrote {path}", highlight=False)


def _render_checkpoint(info: dict) -> None:
    from rich.panel import Panel
    from rich.table import Table

    table = Table.grid(padding=(0, 2))
    table.add_column(style="bold", no_wrap=True)
    table.add_column(overflow="fold")
    best, last = info["best_eval_return"], info["last_eval_return"]
    rows = [
        ("run", str(info["run_name"])),
        ("created", str(info["created"])),
        ("frames / updates / episodes", f"{info['frames']:,} / {info['updates']:,} / {info['episodes']:,}"),
        ("ε", _number(info["epsilon"])),
        ("best / last eval return", f"{_number(best)} / {_number(last)}"),
        ("network", f"{info['network']['architecture']}, {info['network']['parameter_count']:,} parameters"),
        ("params_sha256", info["params_sha256"]),
    ]
    for section, values in info["config"].items():
        rows.append((section, ", ".join(f"{k} {v}" for k, v in values.items())))
    rows.append(("packages", ", ".join(f"{k} {v}" for k, v in info["package_versions"].items())))
    rows.append(("file", f"{info['file']} ({info['file_size_bytes'] / 1e6:,.2f} MB, {info['format']})"))
    for key, value in rows:
        table.add_row(key, value)
    console.print(Panel(table, title="checkpoint", title_align="left", expand=False), highlight=False)


@app.command("inspect-checkpoint")
def inspect_checkpoint(
    ckpt: str = typer.Argument(..., help="Checkpoint file, or a run name / run folder (then its checkpoints/best.pt)."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON on stdout instead of a panel."),
    runs_dir: Path = typer.Option(Path("runs"), "--runs-dir", help="Folder holding the runs."),
) -> None:
    """Show what a checkpoint holds (counters, config, network, versions, parameter hash); runs nothing from it."""
    import json

    from reservoir_rl.commands import inspect as service
    from reservoir_rl.commands.evaluate import json_ready

    info = _call(lambda: service.inspect_checkpoint(ckpt, runs_dir))
    if as_json:
        typer.echo(json.dumps(json_ready(info), indent=1, allow_nan=False, ensure_ascii=False))
    else:
        _render_checkpoint(info)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
