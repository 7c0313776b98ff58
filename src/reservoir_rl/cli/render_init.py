"""Rich renderings of what `init` and `flood-zone` return, and of plausibility warnings."""

from __future__ import annotations

from rich import box
from rich.markup import escape
from rich.table import Table

from reservoir_rl.cli.console import console, err_console


def print_warning(message: str) -> None:
    """One yellow ``warning:`` line on stderr."""
    err_console.print(f"[bold yellow]warning:[/] {escape(message)}", highlight=False, soft_wrap=True)


def _years(years: list[int]) -> str:
    if not years:
        return "none"
    return f"{years[0]}–{years[-1]} ({len(years)})" if len(years) > 1 else f"{years[0]} (1)"


def render_init(result) -> None:
    """The record's summary, the design with its rules, where the config is and what to run next."""
    s, d = result.summary, result.design
    console.print(f"Record {s.name} ({result.record_format}): {s.first_day} .. {s.last_day}, {s.n_days:,} days",
                  highlight=False)
    facts = Table(box=box.SIMPLE_HEAD, show_header=False, pad_edge=False)
    facts.add_row("complete water years", _years(s.complete_years))
    facts.add_row("training / held-out", f"{_years(s.train_years)} / {_years(s.heldout_years)}")
    facts.add_row("validation (of training)", _years(s.validation_years))
    facts.add_row("mean inflow", f"{s.mean_inflow_training_cms:,.4g} m³/s training years; "
                                 f"{s.reference_inflow_cms:,.4g} m³/s without the validation years (scales the observation)")
    quantiles = ", ".join(f"Q{share * 100:g} {value:,.4g}" for share, value in s.exceeded_cms.items())
    facts.add_row("flow exceeded on x % of days", f"{quantiles} m³/s")
    facts.add_row("largest floods", ", ".join(f"{value:,.4g} ({day})" for day, value in s.largest_floods) + " m³/s")
    facts.add_row("driest water year", f"{s.driest_year[0]}: mean {s.driest_year[1]:,.4g} m³/s")
    facts.add_row("driest 30 days", f"{s.driest_spell[0]} .. {s.driest_spell[1]}: mean {s.driest_spell[2]:,.4g} m³/s")
    console.print(facts)
    design = Table(title="Reservoir sized to the training years", title_justify="left", box=box.SIMPLE_HEAD,
                   pad_edge=False)
    design.add_column("value")
    design.add_column("rule")
    if abs(d.active_storage_hm3 - d.required_storage_hm3) <= 1e-3 * d.required_storage_hm3:
        storage_rule = f"sustains half the mean inflow (sequent peak): {d.storage_ratio_years:.3g} years of inflow"
    else:
        storage_rule = (f"half the mean inflow would need {d.required_storage_hm3:,.4g} hm³: kept to "
                        f"{d.storage_ratio_years:.3g} years of inflow")
    design.add_row(f"capacity {d.capacity_hm3:,.4g} hm³ (active {d.active_storage_hm3:,.4g})", storage_rule)
    zone = [storage for _, storage in d.flood_zone_hm3]
    bottom = f"{min(zone):,.4g}–{max(zone):,.4g}" if min(zone) < max(zone) else f"{min(zone):,.4g}"
    design.add_row(f"flood-control zone bottom {bottom} hm³", "largest 10-day flood volume near each date, "
                   "15–60 % of capacity")
    design.add_row(f"release / turbine {d.release_capacity_cms:,.4g} / {d.turbine_capacity_cms:,.4g} m³/s",
                   "flows exceeded on 5 % / 20 % of days")
    design.add_row(f"spillway {d.spillway_capacity_cms:,.4g} m³/s",
                   f"largest day {d.largest_inflow_cms:,.4g} m³/s, its flood part × 1.5, reservoir full")
    design.add_row(f"environmental flow {d.env_flow_cms:,.4g} m³/s", "Q95")
    design.add_row(f"plant {d.installed_capacity_mw:,.4g} MW, lake {d.area_at_capacity_km2:,.4g} km²",
                   f"a {d.max_head_m:g} m head")
    design.add_row(f"SOP / hedging target {result.firm_yield_cms:,.4g} m³/s", "firm yield of the training years")
    console.print(design)
    console.print(f"wrote {result.config_path} (every value with its rule); next:", highlight=False)
    console.print(f"  reservoir-rl train {result.config_path} --name NAME", highlight=False)
    console.print("  reservoir-rl evaluate NAME", highlight=False)
    for warning in result.warnings:
        print_warning(warning)


def render_flood_zone(result) -> None:
    """The zone's YAML lines, what they were sized on, and whether the config was rewritten."""
    years = result.fit_years
    console.print(f"# {result.record_name}: water years {years[0]}-{years[-1]} (all but the held-out ones), flood volumes above "
                  f"{result.release_capacity_cms:g} m³/s", highlight=False, soft_wrap=True)
    for line in result.yaml_lines:
        console.print(line, highlight=False, soft_wrap=True)
    if result.written:
        console.print(f"rewrote flood_zone_hm3 and rule_curve in {result.config_path}", highlight=False)
    for warning in result.warnings:
        print_warning(warning)
