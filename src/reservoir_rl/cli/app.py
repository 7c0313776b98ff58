"""The ``reservoir-rl`` commands: parse arguments, call a use case of `reservoir_rl.commands`, render."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Callable, List, Optional

import typer

from reservoir_rl import __version__
from reservoir_rl.cli.console import FlagCommand, OneLineErrors, call, console, fail, set_debug

app = typer.Typer(
    cls=OneLineErrors,
    name="reservoir-rl",
    help="Train DQN agents to operate a reservoir, compare them with the operating rules, inspect runs.",
    no_args_is_help=True,
    add_completion=True,
    pretty_exceptions_enable=False,
)


def _version(value: bool) -> None:
    if value:
        console.print(f"reservoir-rl {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Show the version and exit."),
    debug: bool = typer.Option(False, "--debug", help="Show full tracebacks for errors."),
) -> None:
    set_debug(debug)


def _view(quiet: bool):
    from reservoir_rl.catalog import LIVE_EPISODE_COLUMNS
    from reservoir_rl.monitor.live import make_view

    return make_view("quiet" if quiet else "auto", console, episode_columns=LIVE_EPISODE_COLUMNS)


def _progress(quiet: bool) -> Optional[Callable[[str], None]]:
    """Plain progress lines of a multi-seed run (None: quiet)."""
    return None if quiet else (lambda text: console.out(text, highlight=False))


@app.command(cls=FlagCommand)
def train(
    config: Path = typer.Argument(..., help="YAML config file (see configs/base.yaml)."),
    name: Optional[str] = typer.Option(None, "--name", help="Run folder name (default: the next run-N)."),
    runs_dir: Path = typer.Option(Path("runs"), "--runs-dir", help="Folder holding the runs."),
    overrides: List[str] = typer.Option([], "--set", help="Override a config key: section.key=value (repeatable)."),
    seed: Optional[int] = typer.Option(None, "--seed", help="Random seed (overrides train.seed)."),
    seeds: Optional[str] = typer.Option(
        None, "--seeds", help="Several seeds, e.g. 0,1,2: RUN/seed-K/ runs, trained together, vectorized (see --vectorized)."
    ),
    device: Optional[str] = typer.Option(None, "--device", help="cpu or cuda (overrides train.device)."),
    quiet: bool = typer.Option(False, "--quiet", help="Print only the final summary."),
    strict: bool = typer.Option(False, "--strict", help="Plausibility warnings are errors (no run is created)."),
    max_parallel: Optional[int] = typer.Option(
        None, "--max-parallel", min=1,
        help="With --seeds: at most this many processes at once (default: one per CPU core); alone it means "
        "--processes, with --vectorized the seeds are split into this many vectorized groups.",
    ),
    vectorized: Optional[bool] = typer.Option(
        None, "--vectorized/--processes",
        help="With --seeds: the seeds' updates batched, the seeds split into one group per CPU core, each group "
        "in one process (the default where the config allows it: CPU, sync collector, memory), or one process per seed.",
    ),
) -> None:
    """Train a DQN agent into a new run folder (checkpoints, TensorBoard events, resolved config)."""
    from reservoir_rl.cli.render_init import print_warning

    if device is not None and device not in ("cpu", "cuda"):
        fail(f"--device {device!r}: choose cpu or cuda")
    if max_parallel is not None and seeds is None:
        fail("--max-parallel applies to several seeds: add --seeds, e.g. --seeds 0,1,2")
    if vectorized is not None and seeds is None:
        fail(f"--{'vectorized' if vectorized else 'processes'} applies to several seeds: add --seeds, e.g. --seeds 0,1,2")
    if seeds is not None:
        if seed is not None:
            fail("--seed and --seeds exclude each other: --seed K trains one seed, --seeds 0,1,2 several")
        from reservoir_rl.runs.groups import parse_seeds

        seed_list = call(lambda: parse_seeds(seeds))
        mode = False if max_parallel is not None and vectorized is None else vectorized
        from reservoir_rl.commands.standby import standby_workers

        standby = standby_workers(len(seed_list), max_parallel, mode)  # (before this process imports torch)
        from reservoir_rl.cli.render import render_seeds
        from reservoir_rl.commands import seeds as multi

        render_seeds(call(lambda: multi.train_seeds(
            config, seed_list, overrides, runs_dir, name, device, command=sys.argv, on_message=_progress(quiet),
            strict=strict, on_warning=print_warning, max_parallel=max_parallel, vectorized=mode, standby=standby,
        )))
        return
    from reservoir_rl.commands import train as service

    summary = call(
        lambda: service.train(config, overrides, _view(quiet), runs_dir, name, seed, device, command=sys.argv,
                              strict=strict, on_warning=print_warning)
    )
    from reservoir_rl.cli.render import render_summary

    render_summary(summary)


@app.command(cls=FlagCommand)
def resume(
    run: str = typer.Argument(..., help="Run name under --runs-dir, or a path to a run folder."),
    total_frames: Optional[int] = typer.Option(None, "--total-frames", help="Train up to this many frames in all."),
    runs_dir: Path = typer.Option(Path("runs"), "--runs-dir", help="Folder holding the runs."),
    quiet: bool = typer.Option(False, "--quiet", help="Print only the final summary."),
    allow_changed_inflow: bool = typer.Option(
        False, "--allow-changed-inflow", help="Go on although the inflow record file changed since the run recorded it."
    ),
    strict: bool = typer.Option(False, "--strict", help="Plausibility warnings are errors."),
    max_parallel: Optional[int] = typer.Option(
        None, "--max-parallel", min=1, help="Multi-seed run: at most this many seeds train at once (default: one per CPU core)."
    ),
) -> None:
    """Continue a run exactly where its latest complete checkpoint left it (every seed of a multi-seed run)."""
    from reservoir_rl.cli.render_init import print_warning
    from reservoir_rl.commands import seeds as multi
    from reservoir_rl.runs.groups import find_group

    group = call(lambda: find_group(run, runs_dir))
    if group is not None:
        from reservoir_rl.cli.render import render_seeds

        render_seeds(call(lambda: multi.resume_seeds(group, total_frames, command=sys.argv, on_message=_progress(quiet),
                                                     allow_changed_inflow=allow_changed_inflow,
                                                     max_parallel=max_parallel)))
        return
    if max_parallel is not None:
        fail(f"--max-parallel applies to a multi-seed run; {run} is a single run")
    from reservoir_rl.commands import train as service

    summary = call(lambda: service.resume(run, _view(quiet), runs_dir, total_frames, command=sys.argv,
                                          allow_changed_inflow=allow_changed_inflow, strict=strict,
                                          on_warning=print_warning))
    from reservoir_rl.cli.render import render_summary

    render_summary(summary)


@app.command(cls=FlagCommand)
def evaluate(
    ckpt: str = typer.Argument(..., help="Checkpoint file, or a run name / run folder (then its checkpoints/best.pt)."),
    episodes: int = typer.Option(50, "--episodes", help="Paired episodes: every policy gets the same traces."),
    years: str = typer.Option("heldout", "--years", help="Water years the episodes start in: heldout, validation (those of the in-training evaluation), train or all."),
    baselines: str = typer.Option("all", "--baselines", help="Comma-separated names (sop, hedging, rule, sdp, mpc, dp, dp_end), all (every baseline) or none."),
    seed: Optional[int] = typer.Option(None, "--seed", help="Env seed (default: the seed of the in-training evaluations)."),
    out: Optional[Path] = typer.Option(None, "--out", help="Write the results as JSON here."),
    csv: Optional[Path] = typer.Option(None, "--csv", help="Write one row per policy, seed and episode here."),
    force: bool = typer.Option(False, "--force", help="Overwrite existing --out / --csv files and a larger RUN/evaluation.json."),
    runs_dir: Path = typer.Option(Path("runs"), "--runs-dir", help="Folder holding the runs."),
    allow_changed_inflow: bool = typer.Option(
        False, "--allow-changed-inflow", help="Go on although the inflow record file changed since the run recorded it."
    ),
    strict: bool = typer.Option(False, "--strict", help="Plausibility warnings are errors."),
    guard_baselines: bool = typer.Option(False, "--guard-baselines", help="Run sop, hedging, rule, sdp and mpc under the release guard the agent runs with (env.safety); dp and dp_end are never guarded."),
    trace: Optional[Path] = typer.Option(None, "--trace", help="Folder for trace.csv: every policy's day-by-day trajectory of the traced episodes."),
    start_dates: List[str] = typer.Option([], "--start-date", help="With --trace: trace the evaluated episode starting on this date, YYYY-MM-DD (repeatable; default: every episode if at most 10, else the first)."),
) -> None:
    """Compare the greedy agent with SOP, hedging, rule curve and perfect-foresight DP on the same inflow traces.

    The agent runs under its release guard (env.safety). On a multi-seed run: every seed's agent on the same
    episodes, with the mean and IQM over seeds."""
    from reservoir_rl.cli.render_evaluation import render_evaluation
    from reservoir_rl.cli.render_init import print_warning
    from reservoir_rl.commands import evaluate as service

    with console.status("evaluating …") as status:
        report = call(lambda: service.evaluate(
            ckpt, episodes, years, baselines, seed, out, csv, force, runs_dir,
            on_policy=lambda name: status.update(f"evaluating {name} on {episodes} episodes …"),
            allow_changed_inflow=allow_changed_inflow, strict=strict, on_warning=print_warning,
            guard_baselines=guard_baselines, trace=trace, start_dates=start_dates,
        ))
    render_evaluation(report)


@app.command(cls=FlagCommand)
def plot(
    runs: List[str] = typer.Argument(..., help="Run name under --runs-dir, or a path to a run folder; several runs: one figure set comparing them."),
    out: Optional[Path] = typer.Option(None, "--out", help="Folder for the figures (one run: default RUN/figures; several runs: required)."),
    fmt: str = typer.Option("png", "--format", help="png or svg."),
    runs_dir: Path = typer.Option(Path("runs"), "--runs-dir", help="Folder holding the runs."),
    force: bool = typer.Option(False, "--force", help="Overwrite figure files that already exist in --out."),
    seed: Optional[int] = typer.Option(
        None, "--seed", help="Multi-seed run: the seed of the held-out and training figures (default: the first)."
    ),
    start_date: Optional[str] = typer.Option(
        None, "--start-date", help="One run: draw the trajectory of the episode starting this day (YYYY-MM-DD), as evaluate ran it."
    ),
) -> None:
    """Draw a run's learning curves, training and reservoir metrics, and held-out agent vs SOP, SDP, MPC and DP figures.

    On a multi-seed run: every seed's learning curves with their mean and band, other figures of one seed.
    Several runs: their learning curves and held-out evaluations together, labelled by the config keys that differ."""
    if len(runs) > 1:
        from reservoir_rl.cli.render import render_plot_runs
        from reservoir_rl.commands import plot_runs as compare

        for option, value in (("--seed", seed), ("--start-date", start_date)):
            if value is not None:
                fail(f"{option} applies to the figures of one run; it was given with {len(runs)} runs")
        with console.status("drawing …"):
            compared = call(lambda: compare.plot_runs(runs, out, fmt, runs_dir, force))
        render_plot_runs(compared)
        return
    from reservoir_rl.cli.render import render_plot
    from reservoir_rl.commands import plot as service

    with console.status("drawing …"):
        result = call(lambda: service.plot(runs[0], out, fmt, runs_dir, force, seed, start_date))
    render_plot(result)


@app.command(cls=FlagCommand)
def tune(
    config: Path = typer.Argument(..., help="YAML config file; inflow.validation_water_years must be above 0."),
    trials: int = typer.Option(..., "--trials", help="Finished trials the study should hold in all (a continued study counts its earlier ones)."),
    storage: Optional[str] = typer.Option(
        None, "--storage", help="Optuna storage URL, e.g. postgresql://user@host/db (default: SQLite in RUNS/tune-NAME/study.db)."
    ),
    study: Optional[str] = typer.Option(None, "--study", help="Study name (default: the config file's name); trials go to RUNS/tune-NAME/."),
    space: Optional[Path] = typer.Option(None, "--space", help="Search space YAML (default: the shipped configs/tune_space.yaml)."),
    timeout: Optional[float] = typer.Option(None, "--timeout", help="No trial starts after this many seconds."),
    overrides: List[str] = typer.Option([], "--set", help="Override a config key of every trial: section.key=value (repeatable)."),
    runs_dir: Path = typer.Option(Path("runs"), "--runs-dir", help="Folder holding the runs."),
    quiet: bool = typer.Option(False, "--quiet", help="No line per trial; only the final tables."),
) -> None:
    """Search hyperparameters with Optuna on the validation years: each trial an ordinary run, the best config as YAML."""
    from reservoir_rl.cli.render_init import print_warning
    from reservoir_rl.cli.render_tune import render_tune
    from reservoir_rl.commands import tune as service

    result = call(lambda: service.tune(
        config, trials, storage, study, space, timeout, overrides, runs_dir, on_message=_progress(quiet),
        on_warning=print_warning, command=sys.argv,
    ))
    render_tune(result)
    if result.error is not None:
        fail(result.error)


@app.command(cls=FlagCommand)
def init(
    record: Path = typer.Argument(..., help="Daily record: a CSV (plain or gzip) or a USGS NWIS RDB daily-value file."),
    out: Optional[Path] = typer.Option(None, "--out", help="Config file to write (default: RECORD's name + .yaml here)."),
    units: Optional[str] = typer.Option(None, "--units", help="CSV flow units: cms, cfs or hm3_per_day (default cms; RDB: cfs)."),
    date_column: Optional[str] = typer.Option(None, "--date-column", help="CSV date column (default: date)."),
    flow_column: Optional[str] = typer.Option(None, "--flow-column", help="Flow column (default: the only one)."),
    heldout_water_years: Optional[int] = typer.Option(
        None, "--heldout-water-years", help="The last N complete water years never trained on (default: a quarter, at most 20)."
    ),
    force: bool = typer.Option(False, "--force", help="Overwrite an existing --out file."),
    strict: bool = typer.Option(False, "--strict", help="Plausibility warnings are errors (nothing is written)."),
) -> None:
    """Size a reservoir to a daily record (training years only) and write a complete, commented config."""
    from reservoir_rl.cli.render_init import render_init
    from reservoir_rl.commands import init as service

    with console.status("reading the record and sizing the reservoir …"):
        result = call(lambda: service.init(record, out, units, date_column, flow_column, heldout_water_years, force, strict))
    render_init(result)


@app.command("flood-zone", cls=FlagCommand)
def flood_zone(
    config: Path = typer.Argument(..., help="YAML config file whose reservoir's flood-control zone to size."),
    write: bool = typer.Option(False, "--write", help="Rewrite flood_zone_hm3 and rule_curve in CONFIG (comments kept)."),
    volume_days: int = typer.Option(10, "--volume-days", help="Days of each flood volume."),
    window_days: int = typer.Option(30, "--window-days", help="Floods starting this many days around each date count."),
    points: int = typer.Option(12, "--points", help="Days of year on the curve, spread evenly."),
    min_space_fraction: float = typer.Option(0.15, "--min-space-fraction", help="Flood-control space at least this share of capacity."),
    max_space_fraction: float = typer.Option(0.6, "--max-space-fraction", help="Flood-control space at most this share of capacity."),
    margin_fraction: float = typer.Option(0.05, "--margin-fraction", help="Rule curve kept this share of capacity under the zone."),
    rule_curve: Optional[str] = typer.Option(None, "--rule-curve", help="Rule curve to lower, [[day, fraction], ...] (default: the schema's)."),
) -> None:
    """Size a config's seasonal flood-control zone on its training years, with its rule curve kept under it."""
    from reservoir_rl.cli.render_init import render_flood_zone
    from reservoir_rl.commands import init as service

    curve = call(lambda: service.read_rule_curve(rule_curve)) if rule_curve is not None else None
    render_flood_zone(call(lambda: service.flood_zone(
        config, write, volume_days, window_days, points, min_space_fraction, max_space_fraction, margin_fraction, curve,
    )))


@app.command("inspect-checkpoint", cls=FlagCommand)
def inspect_checkpoint(
    ckpt: str = typer.Argument(..., help="Checkpoint file, or a run name / run folder (then its checkpoints/best.pt)."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON on stdout instead of a panel."),
    runs_dir: Path = typer.Option(Path("runs"), "--runs-dir", help="Folder holding the runs."),
) -> None:
    """Show what a checkpoint holds (counters, config, network, versions, parameter hash); runs nothing from it."""
    import json

    from reservoir_rl.commands import inspect as service
    from reservoir_rl.files import json_ready

    info = call(lambda: service.inspect_checkpoint(ckpt, runs_dir))
    if as_json:
        typer.echo(json.dumps(json_ready(info), indent=1, allow_nan=False, ensure_ascii=False))
    else:
        from reservoir_rl.cli.render import render_checkpoint

        render_checkpoint(info)


@app.command("export", cls=FlagCommand)
def export_policy(
    ckpt: str = typer.Argument(..., help="Checkpoint file, or a run name / run folder (then its checkpoints/best.pt)."),
    fmt: str = typer.Option(..., "--format", help="torchscript (plain torch loads it) or onnx (onnxruntime; the export extra)."),
    out: Path = typer.Option(..., "--out", help="File to write."),
    force: bool = typer.Option(False, "--force", help="Overwrite an existing --out file."),
    runs_dir: Path = typer.Option(Path("runs"), "--runs-dir", help="Folder holding the runs."),
) -> None:
    """Write the checkpoint's greedy policy as a standalone model (observation → release level and Q-values),
    with its observation layout, release levels (m³/s) and params_sha256 inside."""
    from reservoir_rl.cli.render import render_export
    from reservoir_rl.commands import export as service

    with console.status(f"exporting to {fmt} …"):
        result = call(lambda: service.export(ckpt, fmt, out, force, runs_dir))
    render_export(result)


def main() -> None:
    """The `reservoir-rl` entry point: the command, then the process's end without the interpreter's teardown
    of torch and the other imported modules (`reservoir_rl.runs.processes.exit_now`). A bug's traceback still
    ends it as Python does."""
    from reservoir_rl.runs.processes import exit_now

    try:
        app()
    except SystemExit as end:
        exit_now(end.code)
    exit_now(0)


if __name__ == "__main__":
    main()
