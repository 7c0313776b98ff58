"""Rich renderings of what `train`, `resume`, `plot`, `inspect-checkpoint` and `export` return."""

from __future__ import annotations

import typer
from rich import box
from rich.panel import Panel
from rich.table import Table

from reservoir_rl.cli.console import console, print_error
from reservoir_rl.cli.format import number


def render_summary(summary) -> None:
    """The table of one run's training: status, counters, validation numbers, where it is."""
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
    for note in getattr(summary, "notes", []):
        console.print(f"note: {note}", markup=False, highlight=False, soft_wrap=True)


def render_seeds(summary) -> None:
    """One row per seed, the mean over seeds, what to do next; a failed seed is one error line, exit 1."""
    # the title is printed on its own line: as a table title it would wrap at the table's width
    title = (f"Run {summary.run_dir}: {len(summary.seeds)} seeds, {summary.parallel} at a time, "
             f"{summary.threads} thread{'s' if summary.threads > 1 else ''} each, {summary.seconds:,.1f} s")
    if getattr(summary, "vectorized", False):
        where = "one process" if summary.parallel == 1 else f"{summary.parallel} processes"
        title = (f"Run {summary.run_dir}: {len(summary.seeds)} seeds vectorized in {where}, "
                 f"{summary.threads} thread{'s' if summary.threads > 1 else ''}"
                 f"{' each' if summary.parallel > 1 else ''}, {summary.seconds:,.1f} s")
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False,
                  caption="best / last: greedy return on the validation episodes of the seed's in-training "
                          "evaluations (training years unless inflow.validation_water_years is set)",
                  caption_justify="left")
    for header in ("seed", "status", "frames", "best", "last", "wall time", "folder"):
        table.add_column(header, justify="left" if header in ("status", "folder") else "right",
                         overflow="fold" if header == "folder" else "ellipsis", no_wrap=header in ("status", "frames"))
    for o in summary.outcomes:
        frames = f"{o.frames:,}/{o.total_frames:,}" if o.frames is not None else f"–/{o.total_frames:,}"
        seconds = f"{o.seconds:,.1f} s" if o.seconds is not None else "–"
        table.add_row(str(o.seed), o.status, frames, number(o.best_eval_return), number(o.last_eval_return),
                      seconds, o.run_dir.name)
    best = [o.best_eval_return for o in summary.outcomes if o.best_eval_return is not None]
    last = [o.last_eval_return for o in summary.outcomes if o.last_eval_return is not None]
    if len(best) > 1:
        mean = lambda xs: sum(xs) / len(xs) if xs else None  # noqa: E731
        table.add_row("mean", "", "", number(mean(best)), number(mean(last)), "", "", style="bold")
    console.print(title, highlight=False, overflow="fold")
    console.print(table)
    if summary.stopped_by:
        console.print(f"stopped by {summary.stopped_by}: every running seed saved a checkpoint", highlight=False)
    if summary.unfinished:
        console.print(f"continue with  reservoir-rl resume {summary.run_dir}", highlight=False)
    else:
        console.print(f"compare with   reservoir-rl evaluate {summary.run_dir}", highlight=False)
    for o in summary.failed:
        print_error(f"seed {o.seed} failed ({o.error}); its output: {o.log}")
    if summary.failed:
        raise typer.Exit(code=1)


def render_plot(result) -> None:
    """What `plot` drew: the seeds' final learning-curve levels, the checkpoint, notes, files."""
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


def render_plot_runs(result) -> None:
    """What `plot RUN RUN …` drew: each run's label and last validation level, the differing keys, notes, files."""
    for name, label in result.labels.items():
        frame, value = result.last_validation.get(name, (None, None))
        level = f"{value:.2f} at frame {frame:,}" if frame is not None else "n/a"
        console.print(f"{label}: validation return {level}", highlight=False)
    if not result.differing:
        console.print("the runs' configs are the same (labelled by name only)", highlight=False)
    for note in result.notes:
        console.print(f"[yellow]note:[/] {note}", highlight=False)
    for path in result.files:
        console.print(f"wrote {path}", highlight=False)


def render_checkpoint(info: dict) -> None:
    """The panel of `inspect-checkpoint`."""
    table = Table.grid(padding=(0, 2))
    table.add_column(style="bold", no_wrap=True)
    table.add_column(overflow="fold")
    best, last = info["best_eval_return"], info["last_eval_return"]
    rows = [
        ("run", str(info["run_name"])),
        ("created", str(info["created"])),
        ("frames / updates / episodes", f"{info['frames']:,} / {info['updates']:,} / {info['episodes']:,}"),
        ("ε", number(info["epsilon"])),
        ("best / last eval return", f"{number(best)} / {number(last)}"),
        ("network", f"{info['network']['architecture']}, {info['network']['parameter_count']:,} parameters"),
        ("params_sha256", info["params_sha256"]),
    ]
    if info["non_finite_tensors"]:
        rows.append(("[bold red]non-finite weights[/]", "NaN or inf in " + ", ".join(info["non_finite_tensors"])
                     + " (the training diverged)"))
    for section, values in info["config"].items():
        rows.append((section, ", ".join(f"{k} {v}" for k, v in values.items())))
    rows.append(("packages", ", ".join(f"{k} {v}" for k, v in info["package_versions"].items())))
    rows.append(("file", f"{info['file']} ({info['file_size_bytes'] / 1e6:,.2f} MB, {info['format']})"))
    for key, value in rows:
        table.add_row(key, value)
    console.print(Panel(table, title="checkpoint", title_align="left", expand=False), highlight=False)


def render_export(result) -> None:
    """What `export` wrote: format, file and size, the observation and release levels it carries, the hash."""
    table = Table.grid(padding=(0, 2))
    table.add_column(style="bold", no_wrap=True)
    table.add_column(overflow="fold")
    meta = result.metadata
    levels = ", ".join(f"{level:g}" for level in result.release_levels_cms)
    rows = [
        ("format", result.format),
        ("file", f"{result.file} ({result.size_bytes / 1e3:,.1f} kB)"),
        ("checkpoint", f"{result.checkpoint} (run {meta.get('run_name')}, {meta.get('frames', 0):,} frames)"),
        ("input", f"observation float32 (B, {result.obs_dim}): {', '.join(meta['observation_layout'])}"),
        ("outputs", f"action int64 (B,), q_values float32 (B, {len(result.release_levels_cms)})"),
        ("release levels", f"{levels} m³/s"),
        ("params_sha256", result.params_sha256),
        ("package version", str(meta["package_version"])),
        ("checked", f"same actions as the checkpoint on {result.checked_observations:,} observations"),
    ]
    for key, value in rows:
        table.add_row(key, value)
    console.print(Panel(table, title="exported policy", title_align="left", expand=False), highlight=False)
