"""The tables of `evaluate`: one seed or several, every policy and metric named by the catalog.

Every table fits the console's width (80 columns and more): a value's interval is on the line below it,
headers are the catalog's short labels, and a table with more columns than fit is printed as several, the
first column (and the agent's) repeated on each; a cell never wraps, so no number is split."""

from __future__ import annotations

import textwrap

from rich import box
from rich.measure import Measurement
from rich.table import Table
from rich.text import Text

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


Row = tuple[str, list[str], str]  # (first column, the other cells, row style)


def fitted_tables(first: str, headers: list[str], rows: list[Row], width: int, keep: int = 0, title: str = "",
                  caption: str = "") -> list:
    """The table of ``rows`` as one or more tables that each fit ``width`` columns: the first column on every
    one, then as many of the other columns as fit (the first ``keep`` of them repeated on every table, e.g.
    the agent beside each group of baselines). Cells never wrap (a number or an interval stays on its line).
    Returns the renderables to print: the title (a paragraph of the console's width), the tables, the caption."""
    def table(columns: list[int]) -> Table:
        out = Table(box=box.SIMPLE_HEAD, padding=(0, 1), pad_edge=False, collapse_padding=True)
        out.add_column(first, no_wrap=True)
        for c in columns:
            out.add_column(headers[c], justify="right", no_wrap=True)
        for key, cells, style in rows:
            out.add_row(Text(key), *(Text(cells[c]) for c in columns), style=style)
        return out

    def fits(columns: list[int]) -> bool:
        return Measurement.get(console, console.options.update_width(10_000), table(columns)).maximum <= width

    groups: list[list[int]] = []
    kept = list(range(min(keep, len(headers))))
    for c in range(len(kept), len(headers)):
        if groups and fits(groups[-1] + [c]):
            groups[-1].append(c)
        else:
            groups.append(kept + [c])
    tables: list = [table(columns) for columns in groups or [kept]]
    return [*([Text(title)] if title else []), *tables, *([Text(caption, style="dim")] if caption else [])]


def _metrics_tables(report, width: int) -> list[Table]:
    several = len(report.seeds) > 1
    conf, resamples = report.bootstrap["confidence"], report.bootstrap["resamples"]
    caption = (f"first row: mean over seeds of each seed's mean over episodes; IQM: interquartile mean of all seed × "
               f"episode scores; below each, its {conf:.0%} stratified bootstrap interval ({resamples:,} resamples of "
               "the episodes within each seed); baselines do not depend on the seed; DP = perfect foresight"
               if several else
               f"mean over episodes; below it, its {conf:.0%} percentile bootstrap interval ({resamples:,} "
               "resamples); DP = perfect foresight")
    rows: list[Row] = []
    kinds = (("summary", None), ("iqm", "  IQM")) if several else (("summary", None),)
    for key in HEADLINE_METRICS:
        for kind, title in kinds:
            estimates = [getattr(report, kind)[p][key] for p in report.policies]
            rows.append((title or metric_label(key, short=True), [number(e.value) for e in estimates], ""))
            if any(e.ci_low == e.ci_low for e in estimates):
                rows.append(("", [interval(e) for e in estimates], "dim"))
    headers = [policy_label(name, short=True) for name in report.policies]
    return fitted_tables("metric", headers, rows, width, keep=1, caption=caption)


def _paired_tables(report, width: int) -> list[Table]:
    over = "over seeds and episodes" if len(report.seeds) > 1 else "by episode"
    headers = ["return", metric_label("energy_gwh", short=True), "agent higher"]
    rows: list[Row] = [
        (policy_label(name, short=True),
         [*(estimate(diff[k]) for k in ("return", "energy_gwh")), number(report.agent_better[name], percent=True)], "")
        for name, diff in report.differences.items()
    ]
    return fitted_tables("baseline", headers, rows, width,
                         title=f"agent − baseline, paired {over}: mean, its interval below")


def _seeds_tables(report, width: int) -> list[Table]:
    # each seed's frames are in the header line
    headers = ["return", *(f"− {policy_label(name, short=True)}" for name in report.baselines), "gap"]
    rows: list[Row] = [
        (str(r.seed), [estimate(r.summary["return"]), *(estimate(r.differences[b]["return"]) for b in report.baselines),
                       estimate(r.gap_share)], "")
        for r in report.per_seed
    ]
    rows.append(("mean", [estimate(report.summary[AGENT]["return"]),
                          *(estimate(report.differences[b]["return"]) for b in report.baselines),
                          estimate(report.gap_share)], "bold"))
    return fitted_tables("seed", headers, rows, width, keep=1,
                         title="per seed: the agent's mean return, agent − baseline return paired by episode, share "
                               "of the SOP → DP gap closed; intervals below")


def _paragraph(text: str, width: int, value: str = "", indent: str = "") -> None:
    """``text`` wrapped at spaces into lines of ``width`` (continuation lines start with ``indent``), then
    ``value`` in bold, kept whole: on the last line if it fits there, else on a line of its own."""
    lines = textwrap.wrap(text, width, subsequent_indent=indent, break_long_words=False, break_on_hyphens=False)
    if value and len(lines[-1]) + 1 + len(value) <= width:
        lines[-1] += " "
    elif value:
        lines.append(indent)
    for i, line in enumerate(lines):
        out = Text(line)
        if value and i == len(lines) - 1:
            out.append(value, style="bold")
        console.print(out, highlight=False, soft_wrap=True)  # wrapped here already


def render_evaluation(report) -> None:
    """Header, its notes (``note: …``), the metric table (mean and, with several seeds, IQM), the paired
    differences, the per-seed table (several seeds), the shares of the SOP → DP and best → DP gaps closed (raw
    return, then return + end-storage value), the files written."""
    width = console.width
    console.print(_header(report), highlight=False)
    for note in report.notes:
        _paragraph(f"note: {note}", width, indent=" " * len("note: "))
    tables = _metrics_tables(report, width)
    if report.differences:
        tables += _paired_tables(report, width)
    if len(report.seeds) > 1:
        tables += _seeds_tables(report, width)
    for table in tables:
        console.print(table)
    if report.gap_share is not None:
        over = f" over {len(report.seeds)} seeds" if len(report.seeds) > 1 else ""
        _paragraph(f"share of the SOP → DP gap closed{over}, (R_agent − R_sop) / (R_dp − R_sop):", width,
                   estimate(report.gap_share, newline=False))
    else:
        console.print("share of the SOP → DP gap closed: n/a (needs --baselines with sop and dp)")
    if report.gap_share_best is not None:
        best = policy_label(report.best_baseline, short=True)
        over = f" over {len(report.seeds)} seeds" if len(report.seeds) > 1 else ""
        _paragraph(f"share of the gap from the best implementable baseline ({best}: the highest mean return on "
                   f"{report.validation_episodes} validation episodes) to DP closed{over}:", width,
                   estimate(report.gap_share_best, newline=False))
    if report.gap_share_end is not None or report.gap_share_best_end is not None:
        shares = [f"SOP → DP+end {estimate(report.gap_share_end, newline=False)}"] if report.gap_share_end else []
        if report.gap_share_best_end is not None:
            best = policy_label(report.best_baseline, short=True)
            shares.append(f"{best} → DP+end {estimate(report.gap_share_best_end, newline=False)}")
        _paragraph("on return + end-storage value (the storage left valued with the SDP's value; DP+end: the DP "
                   "that values it), share of the gap closed:", width, "; ".join(shares))
    _print_failures(report, width)
    for path in report.files:
        console.print(f"wrote {path}", highlight=False)
    if report.traced_episodes:
        starts = report.episode_info["start_date"]
        episodes = ", ".join(f"{e}\xa0({starts[e]})" for e in report.traced_episodes)  # (no break inside one)
        _paragraph(f"traced episodes (index, start date): {episodes}", width)


def _print_failures(report, width: int) -> None:
    """A paragraph of ``width`` columns: each policy's failed episodes, the avoidable ones (DP avoided them on the same trace) and,
    for a guarded policy, the share of days its release guard changed the action."""
    cells = []
    for name in report.policies:
        counts = report._failure_summary(name)
        if counts["failed_episodes"] is None:
            continue
        avoidable = ""
        if counts["failures_avoidable"] is not None:
            window = (f", {counts['failures_avoidable_in_window']} of them within the forecast window"
                      if counts["failures_avoidable"] else "")
            avoidable = f" ({counts['failures_avoidable']} avoidable{window})"
        share = report.summary[name].get("guard_override_fraction")
        guard = f", guard {100 * share.value:.1f}% of days" if counts["guarded"] and share is not None \
            and share.value == share.value else ""
        cells.append(f"{policy_label(name, short=True)} {counts['failed_episodes']}{avoidable}{guard}")
    if cells:
        pairs = f"{len(report.seeds)} seeds × {report.episodes}" if len(report.seeds) > 1 else f"{report.episodes}"
        _paragraph(f"failed episodes of {pairs} (avoidable: DP avoided them on the same trace; within the forecast "
                   "window: still avoidable on the first day the forecast reached the failure's day): " + "; ".join(cells),
                   width, indent="  ")
