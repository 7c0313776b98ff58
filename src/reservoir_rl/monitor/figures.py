"""Matplotlib figures for reservoir runs: trajectories, actions, rewards, training curves.

Every function builds a :class:`matplotlib.figure.Figure` directly (no ``pyplot``: no global state,
no display needed) from plain numbers / numpy arrays and returns it. Units: volumes hm³, flows m³/s,
energy MWh. Policies keep the same colour across the panels of one figure.
"""

from __future__ import annotations

import math
import textwrap
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np
from matplotlib import colormaps
from matplotlib.dates import AutoDateLocator, ConciseDateFormatter
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.ticker import FuncFormatter, MaxNLocator, NullFormatter

__all__ = ["Zones", "trajectory_figure", "action_histogram_figure", "reward_breakdown_figure",
           "learning_curve_figure", "metric_panels_figure", "policy_comparison_figure", "save_figure",
           "compact_number", "frames_axis", "plain_axis", "add_caption"]

_PALETTE = list(colormaps["tab10"].colors)
_DPI = 120
_LEGEND = {"loc": "center left", "bbox_to_anchor": (1.01, 0.5), "fontsize": "small"}


@dataclass
class Zones:
    """Storage zones of the reservoir, all in hm³ (0 ≤ dead ≤ min operating ≤ flood zone ≤ capacity).

    ``flood_zone_hm3`` is one number, or one value per plotted day (T,) for a seasonal flood-control zone."""

    dead_storage_hm3: float
    min_operating_hm3: float
    flood_zone_hm3: float | np.ndarray
    capacity_hm3: float

    def __post_init__(self) -> None:
        flood = np.asarray(self.flood_zone_hm3, dtype=float).reshape(-1)
        lowest, highest = (float(flood.min()), float(flood.max())) if flood.size else (math.nan, math.nan)
        levels = [self.dead_storage_hm3, self.min_operating_hm3, lowest, highest, self.capacity_hm3]
        if not all(math.isfinite(v) for v in levels) or levels[0] < 0 or levels != sorted(levels):
            raise ValueError(f"zones must satisfy 0 <= dead <= min_operating <= flood_zone <= capacity, got {levels}")


def _colors(*groups: Mapping[str, object] | None) -> dict[str, tuple[float, ...]]:
    """One palette colour per policy name, in first-seen order across ``groups``."""
    names: list[str] = []
    for group in groups:
        names += [k for k in (group or {}) if k not in names]
    return {name: _PALETTE[i % len(_PALETTE)] for i, name in enumerate(names)}


def _series(values: object, n: int, what: str) -> np.ndarray:
    arr = np.asarray(values, dtype=float).reshape(-1)
    if arr.shape != (n,):
        raise ValueError(f"{what}: expected shape ({n},), got {np.shape(values)}")
    return arr


def _new_figure(width: float, height: float) -> Figure:
    return Figure(figsize=(width, height), dpi=_DPI, layout="constrained")


def compact_number(value: float, _position: object = None) -> str:
    """A tick label that stays short: ``50000`` → ``50k``, ``1500000`` → ``1.5M``, ``1234.5`` → ``1,234``,
    ``0.012`` → ``0.012`` (plain numbers, never an offset or a power of ten)."""
    size = abs(value)
    for limit, unit, suffix in ((1e9, 1e9, "G"), (1e6, 1e6, "M"), (1e4, 1e3, "k")):
        if size >= limit:
            return f"{value / unit:,.3g}{suffix}"
    if size >= 100 or value == int(value):
        return f"{value:,.0f}"
    return f"{value:.3g}"


def frames_axis(axis: object) -> None:
    """An axis of environment frames (or any large count): at most 6 ticks, labelled 50k, 100k, 1.5M."""
    axis.set_major_locator(MaxNLocator(nbins=6, min_n_ticks=3))  # type: ignore[attr-defined]
    axis.set_major_formatter(FuncFormatter(compact_number))  # type: ignore[attr-defined]


def plain_axis(axis: object, log: bool = False) -> None:
    """Tick labels as plain numbers with thousands separators (``1,500``, ``0.01``), no offset, no 10ⁿ;
    ``log``: a log-scaled axis, its decades labelled the same way and its minor ticks unlabelled."""
    axis.set_major_formatter(FuncFormatter(compact_number))  # type: ignore[attr-defined]
    if log:
        axis.set_minor_formatter(NullFormatter())  # type: ignore[attr-defined]


def add_caption(fig: Figure, text: str) -> None:
    """A caption under the axes, wrapped to the figure's width, e.g. what the y axis means physically; the
    axes are laid out above it (never overlapping it)."""
    width_in, height_in = fig.get_size_inches()
    lines = textwrap.wrap(text, max(40, int(width_in * 14)))  # ~14 characters per inch at "small"
    caption_height = min(0.5, (0.17 * len(lines) + 0.12) / height_in)
    fig.get_layout_engine().set(rect=(0.0, caption_height, 1.0, 1.0 - caption_height))  # type: ignore[union-attr]
    fig.text(0.01, 0.01, "\n".join(lines), ha="left", va="bottom", fontsize="small", color="dimgray")


def trajectory_figure(
    days: np.ndarray,
    storage_hm3: Mapping[str, np.ndarray],
    zones: Zones,
    inflow_cms: np.ndarray,
    release_cms: Mapping[str, np.ndarray],
    spill_cms: Mapping[str, np.ndarray] | None = None,
    energy_mwh: Mapping[str, np.ndarray] | None = None,
    title: str = "",
    failures: Mapping[str, tuple[int, str]] | None = None,
) -> Figure:
    """Daily trajectory of one or more policies over the same inflow sequence.

    Inputs (T = number of days):
      * ``days``: (T,) day index (int/float) or dates (``datetime64``).
      * ``storage_hm3``: policy name → (T,) storage in hm³ (e.g. {"agent": …, "SOP": …, "DP": …}).
      * ``zones``: storage zones in hm³, shaded in the storage panel.
      * ``inflow_cms``: (T,) inflow in m³/s (shared by all policies).
      * ``release_cms`` / ``spill_cms``: policy name → (T,) controlled release / spill in m³/s.
      * ``energy_mwh``: policy name → (T,) daily hydropower energy in MWh; ``None`` omits that panel.
      * ``failures``: policy name → (day index in 0..T-1, kind, e.g. "flood" or "drought") of the failure
        that ended its episode: marked with a cross on its storage line and a labelled vertical line.

    Returns a figure with 3 stacked axes sharing x (2 without energy): storage with the dead pool,
    inactive, conservation and flood-control zones shaded and a line at capacity; inflow vs release
    (+ spill: dashed, thick, drawn above the other lines on the days it is above zero, its number of
    days and peak in the legend); daily energy. Flows, volumes and energy are labelled with thousands separators.
    """
    days = np.asarray(days).reshape(-1)
    n = days.shape[0]
    if not storage_hm3:
        raise ValueError("storage_hm3 needs at least one policy")
    colors = _colors(storage_hm3, release_cms, spill_cms, energy_mwh)
    fig = _new_figure(11.0, 8.0 if energy_mwh is not None else 6.0)
    axes = list(fig.subplots(3 if energy_mwh is not None else 2, 1, sharex=True, squeeze=False)[:, 0])

    ax = axes[0]
    storages = {k: _series(v, n, f"storage_hm3[{k!r}]") for k, v in storage_hm3.items()}
    finite_max = max((float(np.nanmax(s)) for s in storages.values() if np.isfinite(s).any()), default=0.0)
    top = max(zones.capacity_hm3, finite_max) * 1.05 or 1.0
    flood_zone = np.asarray(zones.flood_zone_hm3, dtype=float)
    if flood_zone.ndim:  # seasonal: one bottom per day
        flood_zone = _series(flood_zone, n, "zones.flood_zone_hm3")
    bands = [
        (0.0, zones.dead_storage_hm3, "dimgray", 0.35, "dead pool"),
        (zones.dead_storage_hm3, zones.min_operating_hm3, "tan", 0.35, "inactive"),
        (zones.min_operating_hm3, flood_zone, "lightskyblue", 0.2, "conservation"),
        (flood_zone, zones.capacity_hm3, "salmon", 0.3, "flood control"),
    ]
    for low, high, color, alpha, label in bands:
        if np.ndim(low) or np.ndim(high):
            ax.fill_between(days, low, high, color=color, alpha=alpha, lw=0, label=label)
        else:
            ax.axhspan(low, high, color=color, alpha=alpha, lw=0, label=label)
    ax.axhline(zones.capacity_hm3, color="black", lw=1.0, ls="-", label=f"capacity ({zones.capacity_hm3:,.0f} hm³)")
    for name, storage in storages.items():
        ax.plot(days, storage, color=colors[name], lw=1.4, label=name)
    for name, (day, kind) in (failures or {}).items():
        day = int(min(max(day, 0), n - 1))
        level = storages[name][day] if name in storages and np.isfinite(storages[name][day]) else top / 2
        for other in axes:
            other.axvline(days[day], color=colors.get(name, "black"), ls=(0, (1, 2)), lw=1.0, alpha=0.8)
        ax.plot([days[day]], [level], marker="X", ms=11, mec="black", mew=0.8, color=colors.get(name, "black"),
                ls="none", zorder=5, label=f"{name}: {kind} failure, day {day + 1}")
        ax.annotate(f"{kind} failure ({name})", (days[day], level), xytext=(6, 8), textcoords="offset points",
                    fontsize="small", color="black", zorder=6)
    ax.set_ylim(0.0, top)
    ax.set_ylabel("storage (hm³)")
    ax.set_title("Storage")
    plain_axis(ax.yaxis)
    ax.legend(**_LEGEND)

    ax = axes[1]
    ax.plot(days, _series(inflow_cms, n, "inflow_cms"), color="black", lw=1.0, alpha=0.7, label="inflow")
    for name, release in release_cms.items():
        ax.plot(days, _series(release, n, f"release_cms[{name!r}]"), color=colors[name], lw=1.2,
                label=f"release ({name})")
    for name, spill in (spill_cms or {}).items():
        values = _series(spill, n, f"spill_cms[{name!r}]")
        spilled = values > 0
        shown = np.where(spilled, values, np.nan)  # days without spill leave a gap, not a line along zero
        label = (f"spill ({name}): {int(spilled.sum())} days, peak {np.nanmax(shown):,.0f} m³/s" if spilled.any()
                 else f"spill ({name}): none")
        ax.plot(days, shown, color=colors[name], lw=2.2, ls="--", zorder=4,
                marker="v" if 0 < spilled.sum() <= 3 else None, label=label)  # (a lone day is a marker)
    ax.set_ylabel("flow (m³/s)")
    ax.set_title("Inflow, release and spill (dashed)" if spill_cms else "Inflow and release")
    plain_axis(ax.yaxis)
    ax.legend(**_LEGEND)

    if energy_mwh is not None:
        ax = axes[2]
        for name, energy in energy_mwh.items():
            values = _series(energy, n, f"energy_mwh[{name!r}]")
            ax.plot(days, values, color=colors[name], lw=1.2, label=f"{name} ({np.nansum(values) / 1000:,.1f} GWh)")
        ax.set_ylabel("energy (MWh/day)")
        ax.set_title("Daily hydropower energy")
        plain_axis(ax.yaxis)
        ax.legend(**_LEGEND)

    if np.issubdtype(days.dtype, np.datetime64):
        locator = AutoDateLocator()
        axes[-1].xaxis.set_major_locator(locator)
        axes[-1].xaxis.set_major_formatter(ConciseDateFormatter(locator))
        axes[-1].set_xlabel("date")
    else:
        axes[-1].set_xlabel("day")
    fig.suptitle(title or "Reservoir trajectory")
    return fig


def action_histogram_figure(
    counts: np.ndarray | Mapping[str, np.ndarray],
    release_levels_cms: np.ndarray,
    title: str = "",
) -> Figure:
    """Share of days spent at each discrete release level.

    Inputs: ``counts`` — (n_levels,) number of days per action, or policy name → (n_levels,) for
    several policies drawn side by side; ``release_levels_cms`` — (n_levels,) release of each action
    in m³/s (x tick labels). Shares are in % of each policy's own days. Returns a one-axes figure.
    """
    levels = np.asarray(release_levels_cms, dtype=float).reshape(-1)
    groups = dict(counts) if isinstance(counts, Mapping) else {"": counts}
    colors = _colors(groups)
    fig = _new_figure(max(6.0, 0.45 * len(levels) * max(1, len(groups)) + 2.0), 4.0)
    ax = fig.subplots()
    x = np.arange(len(levels))
    width = 0.8 / max(1, len(groups))
    for i, (name, c) in enumerate(groups.items()):
        c = _series(c, len(levels), f"counts[{name!r}]" if name else "counts")
        total = np.nansum(c)
        share = 100.0 * c / total if total > 0 else np.zeros_like(c)
        ax.bar(x + (i - (len(groups) - 1) / 2) * width, share, width=width, color=colors[name],
               label=name or None, edgecolor="white", lw=0.5)
    ax.set_xticks(x, [f"{v:,.4g}" for v in levels], rotation=45 if len(levels) > 8 else 0)
    ax.set_xlabel("release level (m³/s)")
    ax.set_ylabel("share of days (%)")
    plain_axis(ax.yaxis)
    ax.set_title(title or "Release decisions")
    if isinstance(counts, Mapping):
        ax.legend(fontsize="small")
    return fig


def reward_breakdown_figure(
    components: Mapping[str, float] | Mapping[str, Mapping[str, float]],
    title: str = "",
) -> Figure:
    """Contribution of each weighted reward component, as horizontal bars.

    Inputs: ``components`` — component name → weighted contribution (reward units, e.g. summed over
    an episode; hydropower positive, penalties negative), or policy name → such a dict for grouped
    bars (a component missing in a policy counts as 0). A "total" row marks each policy's sum with a
    diamond and its value. Returns a one-axes figure.
    """
    nested = bool(components) and all(isinstance(v, Mapping) for v in components.values())
    groups: dict[str, Mapping[str, float]] = dict(components) if nested else {"": components}  # type: ignore[arg-type]
    names: list[str] = []
    for comp in groups.values():
        names += [k for k in comp if k not in names]
    colors = _colors(groups)
    fig = _new_figure(8.0, 1.2 + 0.45 * (len(names) + 1) * max(1, len(groups) * 0.7))
    ax = fig.subplots()
    y = np.arange(len(names), dtype=float)
    height = 0.8 / max(1, len(groups))
    handles: list[object] = []
    for i, (policy, comp) in enumerate(groups.items()):
        values = np.array([float(comp.get(k, 0.0)) for k in names])
        offset = (i - (len(groups) - 1) / 2) * height
        if nested:
            bar_colors: object = colors[policy]
            handles.append(Patch(color=colors[policy], label=policy))
        else:
            bar_colors = ["tab:green" if v >= 0 else "tab:red" for v in values]
        ax.barh(y + offset, values, height=height, color=bar_colors, edgecolor="white", lw=0.5)
        total = float(np.nansum(values))
        marker_color = colors[policy] if nested else "black"
        ax.plot([total], [len(names) + offset], marker="D", ms=7, color=marker_color, ls="none")
        ax.annotate(f"{total:+,.2f}", (total, len(names) + offset), xytext=(6, 0), textcoords="offset points",
                    va="center", fontsize="small")
        if not nested:
            for yi, v in zip(y, values):
                ax.annotate(f"{v:+,.2f}", (v, yi), xytext=(4 if v >= 0 else -4, 0), textcoords="offset points",
                            ha="left" if v >= 0 else "right", va="center", fontsize="small")
    if not nested:
        handles += [Patch(color="tab:green", label="benefit (+)"), Patch(color="tab:red", label="penalty (−)")]
    handles.append(Line2D([], [], marker="D", color="black", ls="none", label="total"))
    ax.axvline(0.0, color="black", lw=0.8)
    ax.set_yticks(list(y) + [len(names)], names + ["total"])
    ax.invert_yaxis()
    ax.margins(x=0.15)
    ax.set_xlabel("weighted contribution to return (reward units)")
    ax.xaxis.set_major_locator(MaxNLocator(nbins=6))
    plain_axis(ax.xaxis)
    ax.set_title(title or "Reward breakdown")
    ax.legend(handles=handles, **_LEGEND)
    return fig


def _plot_series(ax: object, series: Mapping[str, tuple[np.ndarray, np.ndarray]], colors: Mapping[str, object],
                 label: bool = True) -> None:
    for name, (steps, values) in series.items():
        steps = np.asarray(steps, dtype=float).reshape(-1)
        values = _series(values, steps.shape[0], f"series[{name!r}] values")
        marker = "o" if 0 < len(steps) <= 40 else None
        ax.plot(steps, values, color=colors[name], lw=1.3, marker=marker, ms=3,  # type: ignore[attr-defined]
                label=name if label else None)


def learning_curve_figure(
    series: Mapping[str, tuple[np.ndarray, np.ndarray]],
    reference_lines: Mapping[str, float] | None = None,
    ylabel: str = "return",
    title: str = "",
    xlabel: str = "frames",
    caption: str = "",
) -> Figure:
    """Learning curves with baseline reference levels.

    Inputs: ``series`` — name → (steps (N,), values (N,)), e.g. {"train return": …, "eval return
    (validation)": …}; steps are environment frames (``xlabel``), NaN values leave gaps.
    ``reference_lines`` — name → level in the units of ``ylabel`` (e.g. {"SOP": -12.0, "DP": 40.0}),
    drawn as labelled horizontal dashed lines. ``caption``: a note under the axes (e.g. what the return
    is in physical terms). Frames are labelled 50k, 100k, …; values with thousands separators. Returns a
    one-axes figure.
    """
    refs = {k: float(v) for k, v in (reference_lines or {}).items() if v is not None and math.isfinite(float(v))}
    colors = _colors(series, {f"ref:{k}": v for k, v in refs.items()})
    fig = _new_figure(9.0, 4.5)
    ax = fig.subplots()
    _plot_series(ax, series, colors)
    for name, value in refs.items():
        color = colors[f"ref:{name}"]
        ax.axhline(value, color=color, ls="--", lw=1.2, label=f"{name} ({value:,.3g})")
        ax.text(0.99, value, name, transform=ax.get_yaxis_transform(), ha="right", va="bottom", color=color,
                fontsize="small")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    frames_axis(ax.xaxis)
    plain_axis(ax.yaxis)
    ax.grid(alpha=0.3)
    ax.set_title(title or "Learning curve")
    if series or refs:
        ax.legend(**_LEGEND)
    if caption:
        add_caption(fig, caption)
    return fig


def metric_panels_figure(
    panels: Mapping[str, Mapping[str, tuple[np.ndarray, np.ndarray]]],
    title: str = "",
    xlabel: str = "frames",
) -> Figure:
    """Grid of small panels (up to 3 per row), one per key of ``panels``.

    Inputs: ``panels`` — panel title (e.g. "loss", "epsilon", "spill (hm³)") → series name →
    (steps (N,), values (N,)). Panels whose key contains "loss" use a log y axis when all values are
    positive, labelled in plain numbers (0.01, 0.1, 1). Frames are labelled 50k, 100k, …. Returns a figure
    with exactly ``len(panels)`` axes.
    """
    n = max(1, len(panels))
    ncols = min(3, n)
    nrows = math.ceil(n / ncols)
    fig = _new_figure(4.0 * ncols, 2.8 * nrows + 0.5)
    grid = fig.subplots(nrows, ncols, squeeze=False)
    flat = list(grid.ravel())
    for ax in flat[len(panels):] if panels else flat[1:]:
        fig.delaxes(ax)
    for ax, (key, series) in zip(flat, panels.items()):
        _plot_series(ax, series, _colors(series))
        finite = [np.asarray(v, dtype=float) for _, v in series.values()]
        finite = [v[np.isfinite(v)] for v in finite]
        log = "loss" in key.lower() and any(v.size for v in finite) and all((v > 0).all() for v in finite)
        if log:
            ax.set_yscale("log")
        frames_axis(ax.xaxis)
        plain_axis(ax.yaxis, log=log)
        if not series:
            ax.text(0.5, 0.5, "no data", transform=ax.transAxes, ha="center", va="center", color="gray")
        ax.set_title(key, fontsize="medium")
        ax.set_xlabel(xlabel, fontsize="small")
        ax.grid(alpha=0.3)
        if len(series) > 1:
            ax.legend(fontsize="x-small")
    if not panels:
        flat[0].text(0.5, 0.5, "no data", transform=flat[0].transAxes, ha="center", va="center", color="gray")
    fig.suptitle(title or "Training metrics")
    return fig


def policy_comparison_figure(
    stats: Mapping[str, Mapping[str, tuple[float | None, float | None, float | None]]],
    title: str = "",
    caption: str = "",
) -> Figure:
    """Per metric, one horizontal bar per policy with its confidence interval as an error bar; ``caption``:
    a note under the panels (e.g. what the rows' names stand for).

    Inputs: ``stats`` — metric label (e.g. "return", "energy (GWh)") → policy name → (mean, ci_low,
    ci_high), all in the metric's units; ``None`` marks an undefined value (written "n/a", no bar).
    Policies keep one colour across panels. Returns a figure with one axes per metric (up to 3 per row).
    """
    n = max(1, len(stats))
    ncols = min(3, n)
    nrows = math.ceil(n / ncols)
    colors = _colors(*stats.values())
    n_policies = max((len(v) for v in stats.values()), default=1)
    fig = _new_figure(4.2 * ncols, (0.45 * n_policies + 1.3) * nrows + 0.6)
    flat = list(fig.subplots(nrows, ncols, squeeze=False).ravel())
    for ax in flat[len(stats):]:
        fig.delaxes(ax)
    for ax, (metric, per_policy) in zip(flat, stats.items()):
        names = list(per_policy)
        y = np.arange(len(names), dtype=float)
        for yi, name in zip(y, names):
            mean, low, high = (np.nan if v is None else float(v) for v in per_policy[name])
            if not math.isfinite(mean):
                ax.text(0.0, yi, " n/a", va="center", color="gray", fontsize="small")
                continue
            ax.barh(yi, mean, height=0.7, color=colors[name], alpha=0.85)
            if math.isfinite(low) and math.isfinite(high):
                ax.errorbar(mean, yi, xerr=[[max(mean - low, 0.0)], [max(high - mean, 0.0)]], color="black",
                            capsize=3, lw=1.0)
            ax.annotate(f"{mean:,.3g}", (high if math.isfinite(high) else mean, yi), xytext=(4, 0),
                        textcoords="offset points", va="center", fontsize="x-small")
        ax.set_yticks(y, names)
        ax.invert_yaxis()
        ax.axvline(0.0, color="black", lw=0.8)
        ax.margins(x=0.2)
        drawn = [abs(float(v)) for triple in per_policy.values() for v in triple if v is not None and math.isfinite(v)]
        if not drawn or max(drawn) == 0.0:  # all zero: a readable unit axis instead of a 1e-16 scale
            ax.set_xlim(-0.1, 1.0)
        ax.xaxis.set_major_locator(MaxNLocator(nbins=4))  # narrow panels: few, short labels
        plain_axis(ax.xaxis)
        ax.grid(axis="x", alpha=0.3)
        ax.set_title(metric, fontsize="medium")
    fig.suptitle(title or "Policies compared")
    if caption:
        add_caption(fig, caption)
    return fig


def save_figure(fig: Figure, path: Path | str | BinaryIO, format: str = "png") -> Path | BinaryIO:
    """Write ``fig`` as ``format`` ("png" or "svg", dpi 120) to ``path``, creating parent directories, or
    into an open binary file (e.g. the temporary file of an atomic write, which the caller renames).

    A path without a suffix gets ``.<format>`` appended. Returns the path (or file) written.
    """
    fmt = format.lower().lstrip(".")
    if fmt not in ("png", "svg"):
        raise ValueError(f"format must be 'png' or 'svg', got {format!r}")
    metadata = {"Date": None} if fmt == "svg" else None  # reproducible SVG output
    if hasattr(path, "write"):
        fig.savefig(path, format=fmt, dpi=_DPI, metadata=metadata)
        return path
    path = Path(path)
    if not path.suffix:
        path = path.with_suffix(f".{fmt}")
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format=fmt, dpi=_DPI, metadata=metadata)
    return path
