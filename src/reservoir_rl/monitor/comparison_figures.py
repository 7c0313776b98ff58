"""Learning curves of several runs in one figure: each run's mean over its seeds, with a band over seeds.

Built like `reservoir_rl.monitor.figures`: a :class:`matplotlib.figure.Figure` from plain numpy arrays,
no ``pyplot``. Steps are environment frames.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from matplotlib import colormaps
from matplotlib.figure import Figure

from reservoir_rl.monitor.figures import add_caption
from reservoir_rl.monitor.seed_figures import SeedCurves, finish_curve_axes

__all__ = ["runs_curves_figure"]

_RUN_COLORS = list(colormaps["tab10"].colors)
_REFERENCE_COLOR = (0.35, 0.35, 0.35)
_REFERENCE_STYLES = ["--", ":", "-.", (0, (5, 1)), (0, (3, 1, 1, 1))]


def runs_curves_figure(
    panels: Mapping[str, Mapping[str, SeedCurves]],
    reference_lines: Mapping[str, Mapping[str, float]] | None = None,
    ylabel: str = "return per episode",
    title: str = "",
    caption: str = "",
) -> Figure:
    """One panel per key of ``panels`` (panel title → run label → its curves over seeds), side by side.

    Each run keeps one colour in every panel: the mean over its seeds as a line (a single seed: its own
    curve, markers when short) and, with several seeds, the band between its lowest and highest seed.
    ``reference_lines`` (panel → name → level) adds grey horizontal lines, e.g. baselines' returns.
    Each panel's legend names its runs (with their seed counts) and lines; ``caption`` is a note under the panels.
    """
    n = max(1, len(panels))
    n_runs = max((len(p) for p in panels.values()), default=1)
    fig = Figure(figsize=(6.0 * n + 1.0, 4.6 + 0.15 * n_runs), dpi=120, layout="constrained")
    axes = fig.subplots(1, n, squeeze=False)[0]
    colors: dict[str, tuple[float, ...]] = {}
    for ax, (name, runs) in zip(axes, panels.items()):
        for label, curves in runs.items():
            color = colors.setdefault(label, _RUN_COLORS[len(colors) % len(_RUN_COLORS)])
            seeds = len(curves.per_seed)
            legend = f"{label}: {seeds} seeds, mean and range" if seeds > 1 else label
            if seeds > 1 and len(curves.steps):
                ax.fill_between(curves.steps, curves.low, curves.high, color=color, alpha=0.18, lw=0)
            steps, values = (curves.steps, curves.mean) if seeds > 1 or not seeds else next(iter(curves.per_seed.values()))
            marker = "o" if 0 < len(steps) <= 40 else None
            ax.plot(steps, values, color=color, lw=1.8, marker=marker, ms=3, label=legend)
        refs = {k: float(v) for k, v in ((reference_lines or {}).get(name) or {}).items() if v is not None and math.isfinite(v)}
        for style, (ref, value) in zip(_REFERENCE_STYLES, refs.items()):
            ax.axhline(value, color=_REFERENCE_COLOR, ls=style, lw=1.0, label=f"{ref} ({value:,.3g})")
        if not any(len(c.steps) or c.per_seed for c in runs.values()):
            ax.text(0.5, 0.5, "no data", transform=ax.transAxes, ha="center", va="center", color="gray")
        finish_curve_axes(ax, name, ylabel)
    fig.suptitle(title or "Learning curves of several runs")
    if caption:
        add_caption(fig, caption)
    return fig
