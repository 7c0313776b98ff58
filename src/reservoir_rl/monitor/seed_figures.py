"""Learning curves of several seeds: every seed's curve, their mean and a band across seeds.

Built like `reservoir_rl.monitor.figures`: a :class:`matplotlib.figure.Figure` from plain numpy arrays,
no ``pyplot``. Steps are environment frames.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
from matplotlib import colormaps
from matplotlib.figure import Figure

from reservoir_rl.monitor.figures import add_caption, frames_axis, plain_axis

__all__ = ["SeedCurves", "seed_curves_figure"]

_SEED_COLOR = (0.55, 0.55, 0.55)
_REFERENCE_COLORS = list(colormaps["tab10"].colors)[1:]


@dataclass
class SeedCurves:
    """One scalar of several seeds.

    ``per_seed``: seed label → (steps (N_s,), values (N_s,)); ``steps`` (N,): the frames every seed logged;
    ``mean``, ``low``, ``high`` (N,): the mean over seeds at those frames and the band (min and max over seeds).
    """

    per_seed: dict[str, tuple[np.ndarray, np.ndarray]]
    steps: np.ndarray
    mean: np.ndarray
    low: np.ndarray
    high: np.ndarray

    @classmethod
    def from_series(cls, per_seed: Mapping[str, tuple[np.ndarray, np.ndarray]]) -> "SeedCurves":
        """Mean and min–max band at the frames every seed has (a seed stopped earlier shortens them)."""
        per_seed = {k: (np.asarray(s, dtype=np.int64), np.asarray(v, dtype=float)) for k, (s, v) in per_seed.items()}
        common = None
        for steps, _ in per_seed.values():
            common = set(steps.tolist()) if common is None else common & set(steps.tolist())
        steps = np.array(sorted(common or ()), dtype=np.int64)
        table = np.array([[dict(zip(s.tolist(), v))[int(x)] for x in steps] for s, v in per_seed.values()]).reshape(
            len(per_seed), len(steps))
        if not len(steps):
            empty = np.zeros(0)
            return cls(per_seed, steps, empty, empty, empty)
        return cls(per_seed, steps, table.mean(axis=0), table.min(axis=0), table.max(axis=0))


def seed_curves_figure(
    panels: Mapping[str, SeedCurves],
    reference_lines: Mapping[str, Mapping[str, float]] | None = None,
    ylabel: str = "return per episode",
    title: str = "",
    caption: str = "",
) -> Figure:
    """One panel per key of ``panels`` (side by side): each seed's curve (thin grey), the mean over seeds
    (bold) and the band between the lowest and highest seed; ``reference_lines`` (panel → name → level)
    adds dashed horizontal lines, e.g. the baselines' returns; ``caption``: a note under the panels (e.g.
    what the return is in physical terms)."""
    n = max(1, len(panels))
    fig = Figure(figsize=(6.0 * n + 1.5, 4.6), dpi=120, layout="constrained")
    axes = fig.subplots(1, n, squeeze=False)[0]
    for ax, (name, curves) in zip(axes, panels.items()):
        for i, (label, (steps, values)) in enumerate(curves.per_seed.items()):
            ax.plot(steps, values, color=_SEED_COLOR, lw=0.8, alpha=0.8, label="each seed" if i == 0 else None)
        if len(curves.steps):
            ax.fill_between(curves.steps, curves.low, curves.high, color="tab:blue", alpha=0.2,
                            label=f"range over {len(curves.per_seed)} seeds")
            ax.plot(curves.steps, curves.mean, color="tab:blue", lw=2.0, label="mean over seeds")
        refs = {k: float(v) for k, v in ((reference_lines or {}).get(name) or {}).items() if v is not None and math.isfinite(v)}
        for color, (ref, value) in zip(_REFERENCE_COLORS, refs.items()):
            ax.axhline(value, color=color, ls="--", lw=1.1, label=f"{ref} ({value:,.3g})")
        if not curves.per_seed:
            ax.text(0.5, 0.5, "no data", transform=ax.transAxes, ha="center", va="center", color="gray")
        finish_curve_axes(ax, name, ylabel)
    fig.suptitle(title or "Learning curves")
    if caption:
        add_caption(fig, caption)
    return fig


def finish_curve_axes(ax, name: str, ylabel: str) -> None:
    """Title, axis labels and formatters (frames on x, plain numbers on y), grid and legend of one
    learning-curve panel."""
    ax.set_title(name, fontsize="medium")
    ax.set_xlabel("frames")
    ax.set_ylabel(ylabel)
    frames_axis(ax.xaxis)
    plain_axis(ax.yaxis)
    ax.grid(alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize="x-small", loc="best")
