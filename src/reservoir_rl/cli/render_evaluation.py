"""The tables of `evaluate`: one seed or several, every policy and metric named by the catalog."""

from __future__ import annotations

from rich import box
from rich.table import Table

from reservoir_rl.catalog import AGENT, HEADLINE_METRICS, YEARS_LABELS, metric_label, policy_label
from reservoir_rl.cli.console import console
from reservoir_rl.cli.format import estimate, interval, number


def _header(report) -> str:
    first = report.per_seed[0]
    where = (f"{report.episodes} {YEARS_LABELS[report.years]} episode{'s' if report.episodes > 1 else ''} × "
             f"{report.horizon_days} days")
    if len(report.seeds) == 1:
        name = report.run_name or first.checkpoint
        return (f"[bold]{name}[/] at frame {first.frames:,} ({first.checkpoint}): {where}, seed {report.seed}, "
                "the same inflow traces and initial storages for every policy")
    frames = ", ".join(f"{r.frames:,}" for r in report.per_seed)
    return (f"[bold]{report.run_name}[/]: {len(report.seeds)} seeds ({', '.join(map(str, report.seeds))}), each "
            f"seed's {first.checkpoint.name} (frames {frames}); {where}, env seed {report.seed}, the same inflow "
            "traces and initial storages for every policy and seed")


def _metrics_table(report) -> Table:
    several = len(report.seeds) > 1
    conf, resamples = report.bootstrap["confidence"], report.bootstrap["resamples"]
    caption = (f"first row: mean over seeds of each seed's mean over episodes; IQM: interquartile mean of all seed × "
               f"episode scores; below each, its {conf:.0%} stratified bootstrap interval ({resamples:,} resamples of "
               "the episodes within each seed); baselines do not depend on the seed; DP = perfect foresight"
               if several else
               f"mean over episodes; below it, its {conf:.0%} percentile bootstrap interval ({resamples:,} "
               "resamples); DP = perfect foresight")
    table = Table(box=box.SIMPLE_HEAD, padding=(0, 1), pad_edge=False, collapse_padding=True, caption=caption,
                  caption_justify="left")
    table.add_column("metric", no_wrap=True, min_width=13)
    for name in report.policies:
        table.add_column(policy_label(name, short=True), justify="right", overflow="fold", min_width=7)
    kinds = (("summary", None), ("iqm", "  IQM")) if several else (("summary", None),)
    for key in HEADLINE_METRICS:
        for kind, title in kinds:
            estimates = [getattr(report, kind)[p][key] for p in report.policies]
            table.add_row(title or metric_label(key, short=True), *(number(e.value) for e in estimates))
            if any(e.ci_low == e.ci_low for e in estimates):
                table.add_row("", *(interval(e) for e in estimates), style="dim")
    return table


def _paired_table(report) -> Table:
    over = "over seeds and episodes" if len(report.seeds) > 1 else "by episode"
    table = Table(title=f"agent − baseline, paired {over}: mean \\[interval]", title_justify="left",
                  box=box.SIMPLE_HEAD, padding=(0, 1), pad_edge=False)
    table.add_column("baseline", overflow="fold")
    for label in ("return", metric_label("energy_gwh", short=True), "agent higher"):
        table.add_column(label, justify="right", overflow="fold")
    for name, diff in report.differences.items():
        table.add_row(policy_label(name, short=True),
                      *(estimate(diff[k], newline=False) for k in ("return", "energy_gwh")),
                      number(report.agent_better[name], percent=True))
    return table


def _seeds_table(report) -> Table:
    table = Table(title="per seed: the agent's mean return, agent − baseline return paired by episode, share of "
                        "the SOP → DP gap closed; \\[intervals]", title_justify="left", box=box.SIMPLE_HEAD,
                  padding=(0, 1), pad_edge=False, collapse_padding=True)
    # each seed's frames are in the header line: with six baselines, 80 columns hold no more
    table.add_column("seed", justify="right", no_wrap=True)
    table.add_column("return", justify="right", min_width=7)
    for name in report.baselines:
        table.add_column(f"− {policy_label(name, short=True)}", justify="right", min_width=7)
    table.add_column("gap", justify="right", min_width=7)
    for r in report.per_seed:
        table.add_row(str(r.seed), estimate(r.summary["return"]),
                      *(estimate(r.differences[b]["return"]) for b in report.baselines), estimate(r.gap_share))
    table.add_row("mean", estimate(report.summary[AGENT]["return"]),
                  *(estimate(report.differences[b]["return"]) for b in report.baselines), estimate(report.gap_share),
                  style="bold")
    return table


def render_evaluation(report) -> None:
    """Header, its notes (``note: …``), the metric table (mean and, with several seeds, IQM), the paired
    differences, the per-seed table (several seeds), the shares of the SOP → DP and best → DP gaps closed (raw
    return, then return + end-storage value), the files written."""
    console.print(_header(report), highlight=False)
    for note in report.notes:
        console.print(f"note: {note}", highlight=False, markup=False, soft_wrap=True)  # one line, however wide
    console.print(_metrics_table(report))
    if report.differences:
        console.print(_paired_table(report))
    if len(report.seeds) > 1:
        console.print(_seeds_table(report))
    if report.gap_share is not None:
        over = f" over {len(report.seeds)} seeds" if len(report.seeds) > 1 else ""
        console.print(f"share of the SOP → DP gap closed{over}, (R_agent − R_sop) / (R_dp − R_sop): "
                      f"[bold]{estimate(report.gap_share, newline=False)}[/]", highlight=False)
    else:
        console.print("share of the SOP → DP gap closed: n/a (needs --baselines with sop and dp)")
    if report.gap_share_best is not None:
        best = policy_label(report.best_baseline, short=True)
        over = f" over {len(report.seeds)} seeds" if len(report.seeds) > 1 else ""
        console.print(f"share of the gap from the best implementable baseline ({best}: the highest mean return on "
                      f"{report.validation_episodes} validation episodes) to DP closed{over}: "
                      f"[bold]{estimate(report.gap_share_best, newline=False)}[/]", highlight=False)
    if report.gap_share_end is not None or report.gap_share_best_end is not None:
        shares = [f"SOP → DP+end {estimate(report.gap_share_end, newline=False)}"] if report.gap_share_end else []
        if report.gap_share_best_end is not None:
            best = policy_label(report.best_baseline, short=True)
            shares.append(f"{best} → DP+end {estimate(report.gap_share_best_end, newline=False)}")
        console.print("on return + end-storage value (the storage left valued with the SDP's value; DP+end: the DP "
                      f"that values it), share of the gap closed: [bold]{'; '.join(shares)}[/]", highlight=False)
    _print_failures(report)
    for path in report.files:
        console.print(f"wrote {path}", highlight=False)


def _print_failures(report) -> None:
    """One line: each policy's failed episodes, the avoidable ones (DP avoided them on the same trace) and,
    for a guarded policy, the share of days its release guard changed the action."""
    cells = []
    for name in report.policies:
        counts = report._failure_summary(name)
        if counts["failed_episodes"] is None:
            continue
        avoidable = "" if counts["failures_avoidable"] is None else f" ({counts['failures_avoidable']} avoidable)"
        share = report.summary[name].get("guard_override_fraction")
        guard = f", guard {100 * share.value:.1f}% of days" if counts["guarded"] and share is not None \
            and share.value == share.value else ""
        cells.append(f"{policy_label(name, short=True)} {counts['failed_episodes']}{avoidable}{guard}")
    if cells:
        pairs = f"{len(report.seeds)} seeds × {report.episodes}" if len(report.seeds) > 1 else f"{report.episodes}"
        console.print(f"failed episodes of {pairs} (avoidable: DP avoided them on the same trace): "
                      + "; ".join(cells), highlight=False, markup=False, soft_wrap=True)
