"""The figure of `tune`: how much each searched parameter mattered for the validation return."""

from __future__ import annotations

from typing import Mapping

from matplotlib.figure import Figure

from reservoir_rl.monitor.figures import add_caption


def importance_figure(importances: Mapping[str, float], title: str, caption: str) -> Figure:
    """Horizontal bars, one per parameter (``name → importance``, importances ≥ 0 summing to 1), the most
    important on top, each labelled with its value."""
    if not importances:
        raise ValueError("no importances to draw")
    ordered = sorted(importances.items(), key=lambda item: item[1])  # barh draws bottom-up: largest on top
    names = [name for name, _ in ordered]
    values = [float(value) for _, value in ordered]
    fig = Figure(figsize=(7.0, 1.2 + 0.4 * len(names)), dpi=120, layout="constrained")
    ax = fig.add_subplot()
    bars = ax.barh(range(len(names)), values, color="tab:blue")
    ax.set_yticks(range(len(names)), names)
    ax.bar_label(bars, labels=[f"{v:.2f}" for v in values], padding=3, fontsize="small")
    ax.set_xlim(0.0, max(1.0, max(values) * 1.15))
    ax.set_xlabel("importance for the validation return (share of the total)")
    ax.grid(axis="x", alpha=0.3)
    ax.set_title(title, fontsize="medium")
    add_caption(fig, caption)
    return fig
