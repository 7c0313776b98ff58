"""Numbers as the terminal tables show them."""

from __future__ import annotations

from typing import Optional


def number(value: Optional[float], percent: bool = False) -> str:
    """Three significant-ish digits (``1,234``, ``12.3``, ``1.23``), ``n/a`` for None or NaN."""
    if value is None or value != value:  # None or NaN
        return "n/a"
    if percent:
        return f"{100 * value:.0f}%"
    size = abs(value)
    return f"{value:,.0f}" if size >= 100 else f"{value:.1f}" if size >= 10 else f"{value:.2f}"


def estimate(value, percent: bool = False, newline: bool = True) -> str:
    """An `Estimate` as ``mean [low, high]`` (the interval on a second line unless ``newline=False``); plain
    text, not Rich markup."""
    if value is None or value.value != value.value:
        return "n/a"
    sep = "\n" if newline else " "
    low, high = number(value.ci_low, percent), number(value.ci_high, percent)
    return f"{number(value.value, percent)}{sep}[{low}, {high}]"


def interval(value) -> str:
    """An `Estimate`'s interval as ``[low, high]`` ("" when undefined); plain text, not Rich markup."""
    if value.ci_low != value.ci_low:
        return ""
    return f"[{number(value.ci_low)}, {number(value.ci_high)}]"
