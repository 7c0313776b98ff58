"""The command line's tables for multi-seed runs (`train --seeds`, `resume`, `evaluate` of such a run)."""

from __future__ import annotations

import typer
from rich import box
from rich.table import Table

from reservoir_rl.cli.app import _POLICY_SHORT, _SHORT_LABELS, _estimate, _interval, _number, _print_error, console


def render_seeds(summary) -> None:
    """One row per seed, the mean over seeds, what to do next; a failed seed is one error line, exit 1."""
    # the title is printed on its own line: as a table title it would wrap at the table's width
    title = (f"Run {summary.run_dir}: {len(summary.seeds)} seeds, {summary.parallel} at a time, "
             f"{summary.threads} thread{'s' if summary.threads > 1 else ''} each, {summary.seconds:,.1f} s")
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
        table.add_row(str(o.seed), o.status, frames, _number(o.best_eval_return), _number(o.last_eval_return),
                      seconds, o.run_dir.name)
    best = [o.best_eval_return for o in summary.outcomes if o.best_eval_return is not None]
    last = [o.last_eval_return for o in summary.outcomes if o.last_eval_return is not None]
    if len(best) > 1:
        mean = lambda xs: sum(xs) / len(xs) if xs else None  # noqa: E731
        table.add_row("mean", "", "", _number(mean(best)), _number(mean(last)), "", "", style="bold")
    console.print(title, highlight=False, overflow="fold")
    console.print(table)
    if summary.stopped_by:
        console.print(f"stopped by {summary.stopped_by}: every running seed saved a checkpoint", highlight=False)
    if summary.unfinished:
        console.print(f"continue with  reservoir-rl resume {summary.run_dir}", highlight=False)
    else:
        console.print(f"compare with   reservoir-rl evaluate {summary.run_dir}", highlight=False)
    for o in summary.failed:
        _print_error(f"seed {o.seed} failed ({o.error}); its output: {o.log}")
    if summary.failed:
        raise typer.Exit(code=1)


def render_seed_evaluation(report) -> None:
    """The aggregate table (mean and IQM per policy and metric), the per-seed table, the gap closed."""
    years = {"heldout": "held-out", "validation": "validation-year", "train": "training-year", "all": "any-year"}[report.years]
    frames = ", ".join(f"{r.frames:,}" for r in report.per_seed)
    console.print(
        f"[bold]{report.run_dir.name}[/]: {len(report.seeds)} seeds ({', '.join(map(str, report.seeds))}), each "
        f"seed's {report.per_seed[0].checkpoint.name} (frames {frames}); {report.episodes} {years} episode"
        f"{'s' if report.episodes > 1 else ''} × {report.horizon_days} days, env seed {report.seed}, the same "
        "inflow traces and initial storages for every policy and seed",
        highlight=False,
    )
    boot = report.bootstrap
    table = Table(box=box.SIMPLE_HEAD, padding=(0, 1), pad_edge=False, caption_justify="left",
                  caption=f"first row: mean over seeds of each seed's mean over episodes; IQM: interquartile mean of all "
                          f"seed × episode scores; below each, its {boot['confidence']:.0%} stratified bootstrap "
                          f"interval ({boot['resamples']:,} resamples of the episodes within each seed); "
                          "baselines do not depend on the seed; DP = perfect foresight")
    table.add_column("metric", no_wrap=True, min_width=13)
    for name in report.policies:
        table.add_column(_POLICY_SHORT[name], justify="right", overflow="fold")
    for key, label in _SHORT_LABELS.items():
        for kind, title in (("mean", label), ("iqm", "  IQM")):
            estimates = [report.aggregate[p][key][kind] for p in report.policies]
            table.add_row(title, *(_number(e.value) for e in estimates))
            if any(e.ci_low == e.ci_low for e in estimates):
                table.add_row("", *(_interval(e) for e in estimates), style="dim")
    console.print(table)
    seeds = Table(title="per seed: the agent's mean return, agent − baseline return paired by episode, share of the "
                        "SOP → DP gap closed; \[intervals]", title_justify="left", box=box.SIMPLE_HEAD,
                  padding=(0, 1), pad_edge=False)
    seeds.add_column("seed", justify="right")
    seeds.add_column("frames", justify="right")
    seeds.add_column("return", justify="right")
    for name in report.baselines:
        seeds.add_column(f"− {_POLICY_SHORT[name]}", justify="right")
    seeds.add_column("gap closed", justify="right")
    for r in report.per_seed:
        seeds.add_row(str(r.seed), f"{r.frames:,}", _estimate(r.summary["return"]),
                      *(_estimate(r.differences[b]["return"]) for b in report.baselines),
                      _estimate(r.gap_share, percent=True))
    seeds.add_row("mean", "", _estimate(report.aggregate["agent"]["return"]["mean"]),
                  *(_estimate(report.differences[b]["return"]) for b in report.baselines),
                  _estimate(report.gap_share, percent=True), style="bold")
    console.print(seeds)
    if report.gap_share is not None:
        console.print(f"share of the SOP → DP gap closed over {len(report.seeds)} seeds, (R_agent − R_sop) / "
                      f"(R_dp − R_sop): [bold]{_estimate(report.gap_share, percent=True, newline=False)}[/]",
                      highlight=False)
    else:
        console.print("share of the SOP → DP gap closed: n/a (needs --baselines with sop and dp)")
    for path in report.files:
        console.print(f"wrote {path}", highlight=False)
