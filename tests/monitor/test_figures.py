"""Figures are built headless from plain arrays and written as PNG / SVG."""

from __future__ import annotations

import ast
from pathlib import Path

import numpy as np
import pytest
from matplotlib.figure import Figure

from reservoir_rl.monitor.figures import (
    Zones,
    action_histogram_figure,
    learning_curve_figure,
    metric_panels_figure,
    policy_comparison_figure,
    reward_breakdown_figure,
    save_figure,
    trajectory_figure,
)

T = 120
ZONES = Zones(dead_storage_hm3=50.0, min_operating_hm3=120.0, flood_zone_hm3=800.0, capacity_hm3=1000.0)
POLICIES = ("agent", "SOP", "DP")


def _trajectory(with_spill: bool = True, with_energy: bool = True, dates: bool = False) -> Figure:
    rng = np.random.default_rng(0)
    days = np.datetime64("2001-10-01") + np.arange(T) if dates else np.arange(T)
    storage = {p: 500.0 + 100.0 * np.sin(np.arange(T) / 20.0 + i) for i, p in enumerate(POLICIES)}
    release = {p: rng.uniform(20.0, 200.0, T) for p in POLICIES}
    spill = {p: np.zeros(T) for p in POLICIES} if with_spill else None
    energy = {p: rng.uniform(0.0, 500.0, T) for p in POLICIES} if with_energy else None
    return trajectory_figure(days, storage, ZONES, rng.uniform(10.0, 400.0, T), release, spill, energy, title="test")


def _labels(ax) -> list[str]:
    legend = ax.get_legend()
    assert legend is not None
    return [t.get_text() for t in legend.get_texts()]


def test_monitor_modules_use_no_pyplot_and_no_project_packages() -> None:
    import reservoir_rl.monitor.figures as figures
    import reservoir_rl.monitor.live as live

    for module in (figures, live):
        imported: set[str] = set()
        for node in ast.walk(ast.parse(Path(module.__file__).read_text())):
            if isinstance(node, ast.Import):
                imported |= {alias.name for alias in node.names}
            elif isinstance(node, ast.ImportFrom):
                imported.add("." * node.level + (node.module or ""))
        assert not any("pyplot" in name for name in imported), module.__name__
        assert not any(name.startswith((".", "reservoir_rl")) for name in imported), (module.__name__, imported)


def test_trajectory_three_panels_with_zones_and_policy_legend() -> None:
    fig = _trajectory()
    assert isinstance(fig, Figure)
    assert len(fig.axes) == 3
    storage_ax, flow_ax, energy_ax = fig.axes
    # four shaded zones (dead pool, inactive, conservation, flood control)
    assert len(storage_ax.patches) + len(storage_ax.collections) >= 4
    labels = _labels(storage_ax)
    for zone in ("dead pool", "inactive", "conservation", "flood control"):
        assert zone in labels
    assert any(lbl.startswith("capacity") for lbl in labels)
    assert [lbl for lbl in labels if lbl in POLICIES] == list(POLICIES)
    # the capacity line sits at capacity
    assert any(np.allclose(line.get_ydata(), ZONES.capacity_hm3) for line in storage_ax.get_lines())
    flow_labels = _labels(flow_ax)
    assert "inflow" in flow_labels
    assert {f"release ({p})" for p in POLICIES} | {f"spill ({p}): none" for p in POLICIES} <= set(flow_labels)
    assert [lbl.split(" (")[0] for lbl in _labels(energy_ax)] == list(POLICIES)
    assert "hm³" in storage_ax.get_ylabel() and "m³/s" in flow_ax.get_ylabel() and "MWh" in energy_ax.get_ylabel()
    # shared x axis
    assert storage_ax.get_shared_x_axes().joined(storage_ax, energy_ax)


def test_trajectory_marks_a_failure_and_draws_spill_visibly() -> None:
    """A failed episode is marked where it failed (a cross on its storage line, labelled with the kind and
    day); spill is a thick dashed line above the others, drawn only on days with spill (no line on zero)."""
    rng = np.random.default_rng(1)
    days = np.arange(T)
    storage = {p: np.full(T, 600.0) for p in POLICIES}
    storage["agent"][80:] = np.nan  # the agent's episode ended on day 80 (index 79)
    spill = {p: np.zeros(T) for p in POLICIES}
    spill["SOP"][[10, 11, 12, 50]] = [300.0, 1200.0, 50.0, 5.0]
    fig = trajectory_figure(days, storage, ZONES, rng.uniform(10.0, 400.0, T), {p: np.full(T, 50.0) for p in POLICIES},
                            spill, None, failures={"agent": (79, "flood")})
    storage_ax, flow_ax = fig.axes
    labels = _labels(storage_ax)
    assert "agent: flood failure, day 80" in labels
    cross = next(line for line in storage_ax.get_lines() if line.get_label() == "agent: flood failure, day 80")
    assert cross.get_marker() == "X" and cross.get_xdata()[0] == 79 and cross.get_ydata()[0] == 600.0
    assert any("flood failure (agent)" in text.get_text() for text in storage_ax.texts)
    assert "spill (SOP): 4 days, peak 1,200 m³/s" in _labels(flow_ax)
    line = next(line for line in flow_ax.get_lines() if line.get_label().startswith("spill (SOP)"))
    values = np.asarray(line.get_ydata(), dtype=float)
    assert np.isnan(values[0]) and values[11] == 1200.0 and line.get_linestyle() == "--" and line.get_linewidth() > 2
    others = [other for other in flow_ax.get_lines() if not other.get_label().startswith("spill")]
    assert line.get_zorder() > max(other.get_zorder() for other in others)


def test_tick_labels_are_plain_thousands_and_the_loss_axis_plain_numbers() -> None:
    from reservoir_rl.monitor.figures import compact_number

    assert [compact_number(v) for v in (0, 5_000, 50_000, 1_500_000, 1234.5, 0.012, -20_000)] == \
        ["0", "5,000", "50k", "1.5M", "1,234", "0.012", "-20k"]
    steps = np.arange(0, 2_000_001, 100_000)
    fig = metric_panels_figure({"loss": {"loss": (steps, np.geomspace(1.0, 1e-3, len(steps)))},
                                "spill": {"x": (steps, np.linspace(0, 30_000, len(steps)))}})
    fig.canvas.draw()
    loss_ax, spill_ax = fig.axes
    assert loss_ax.get_yscale() == "log"
    loss_ticks = [t.get_text() for t in loss_ax.get_yticklabels() if t.get_text()]
    assert loss_ticks and all("10^" not in t and "$" not in t for t in loss_ticks) and "0.01" in loss_ticks
    for ax in (loss_ax, spill_ax):
        low, high = ax.get_xlim()
        x_ticks = [t.get_text() for t in ax.get_xticklabels() if low <= t.get_position()[0] <= high]
        assert 3 <= len(x_ticks) <= 7 and all(len(t) <= 5 for t in x_ticks), x_ticks  # "500k", "1.5M"
        assert not ax.xaxis.get_offset_text().get_text()  # no "1e6" offset
    assert any(t.get_text() == "30k" for t in spill_ax.get_yticklabels())


def test_learning_curve_caption() -> None:
    fig = learning_curve_figure({"eval": (np.array([1, 2]), np.array([1.0, 2.0]))}, caption="return: what it means")
    assert any(text.get_text() == "return: what it means" for text in fig.texts)


def test_trajectory_without_energy_or_spill_and_with_dates() -> None:
    fig = _trajectory(with_spill=False, with_energy=False, dates=True)
    assert len(fig.axes) == 2
    assert not any(lbl.startswith("spill") for lbl in _labels(fig.axes[1]))
    assert fig.axes[-1].get_xlabel() == "date"


def test_trajectory_rejects_shape_mismatch() -> None:
    with pytest.raises(ValueError, match="storage_hm3"):
        trajectory_figure(np.arange(5), {"agent": np.zeros(4)}, ZONES, np.zeros(5), {"agent": np.zeros(5)})


def test_zones_must_be_ordered() -> None:
    with pytest.raises(ValueError):
        Zones(dead_storage_hm3=100.0, min_operating_hm3=50.0, flood_zone_hm3=800.0, capacity_hm3=1000.0)


def test_trajectory_shades_a_seasonal_flood_zone_day_by_day() -> None:
    flood_zone = 700.0 + 200.0 * np.cos(np.arange(T) / 30.0)
    zones = Zones(dead_storage_hm3=50.0, min_operating_hm3=120.0, flood_zone_hm3=flood_zone, capacity_hm3=1000.0)
    storage = {"agent": np.full(T, 600.0)}
    fig = trajectory_figure(np.arange(T), storage, zones, np.full(T, 100.0), {"agent": np.full(T, 90.0)})
    flood_band = next(c for c in fig.axes[0].collections if c.get_label() == "flood control")
    bottom = flood_band.get_paths()[0].vertices[:, 1]
    assert bottom.min() == pytest.approx(flood_zone.min()) and bottom.max() == pytest.approx(1000.0)
    with pytest.raises(ValueError, match="zones.flood_zone_hm3"):
        trajectory_figure(np.arange(T - 1), {"agent": np.full(T - 1, 600.0)}, zones, np.full(T - 1, 100.0),
                          {"agent": np.full(T - 1, 90.0)})
    with pytest.raises(ValueError, match="zones must satisfy"):
        Zones(dead_storage_hm3=50.0, min_operating_hm3=120.0, flood_zone_hm3=np.array([500.0, 1100.0]), capacity_hm3=1000.0)


def test_action_histogram_single_and_grouped() -> None:
    levels = np.array([0.0, 25.0, 50.0, 100.0, 200.0])
    fig = action_histogram_figure(np.array([10, 0, 30, 50, 10]), levels)
    (ax,) = fig.axes
    heights = [p.get_height() for p in ax.patches]
    assert len(heights) == 5 and sum(heights) == pytest.approx(100.0)
    assert [t.get_text() for t in ax.get_xticklabels()] == ["0", "25", "50", "100", "200"]
    assert "m³/s" in ax.get_xlabel()

    fig = action_histogram_figure({"agent": np.ones(5), "SOP": np.arange(5)}, levels, title="actions")
    (ax,) = fig.axes
    assert len(ax.patches) == 10
    assert _labels(ax) == ["agent", "SOP"]
    assert ax.get_title() == "actions"


def test_action_histogram_all_zero_counts() -> None:
    fig = action_histogram_figure(np.zeros(3), np.array([1.0, 2.0, 3.0]))
    assert all(p.get_height() == 0 for p in fig.axes[0].patches)


def test_reward_breakdown_single_policy_has_total() -> None:
    comps = {"hydropower": 12.0, "flood": -3.0, "env_flow": -1.5, "spill": -0.5}
    fig = reward_breakdown_figure(comps)
    (ax,) = fig.axes
    widths = [p.get_width() for p in ax.containers[0]]
    assert widths == list(comps.values())
    assert [t.get_text() for t in ax.get_yticklabels()] == [*comps, "total"]
    texts = [t.get_text() for t in ax.texts]
    assert "+7.00" in texts  # total annotation
    assert "total" in _labels(ax)


def test_reward_breakdown_grouped() -> None:
    comps = {"agent": {"hydropower": 12.0, "flood": -3.0}, "SOP": {"hydropower": 9.0, "env_flow": -4.0}}
    fig = reward_breakdown_figure(comps, title="per policy")
    (ax,) = fig.axes
    assert len(ax.containers) == 2 and all(len(c) == 3 for c in ax.containers)
    assert _labels(ax)[:2] == ["agent", "SOP"]
    assert {"+9.00", "+5.00"} <= {t.get_text() for t in ax.texts}


def test_learning_curve_has_labelled_reference_lines() -> None:
    steps = np.arange(0, 10_000, 500)
    series = {"train return": (steps, np.linspace(-20, 30, steps.size)),
              "eval return (validation)": (steps[::4], np.array([-15.0, np.nan, 10.0, 25.0, 28.0]))}
    fig = learning_curve_figure(series, {"SOP": -12.0, "DP": 40.0, "missing": float("nan")}, title="lc")
    (ax,) = fig.axes
    labels = _labels(ax)
    assert labels[:2] == list(series)
    assert any(lbl.startswith("SOP") for lbl in labels) and any(lbl.startswith("DP") for lbl in labels)
    assert not any(lbl.startswith("missing") for lbl in labels)
    dashed = [ln for ln in ax.get_lines() if ln.get_linestyle() == "--"]
    assert sorted(float(ln.get_ydata()[0]) for ln in dashed) == [-12.0, 40.0]
    assert {"SOP", "DP"} <= {t.get_text() for t in ax.texts}
    assert ax.get_ylabel() == "return"


def test_metric_panels_grid() -> None:
    steps = np.arange(100)
    panels = {
        "loss": {"td loss": (steps, np.exp(-steps / 30.0))},
        "epsilon": {"epsilon": (steps, np.linspace(1.0, 0.05, 100))},
        "spill (hm³)": {"train": (steps, np.zeros(100)), "eval": (steps[::10], np.ones(10))},
        "violations": {},
    }
    fig = metric_panels_figure(panels, title="metrics")
    assert len(fig.axes) == 4
    assert [ax.get_title() for ax in fig.axes] == list(panels)
    assert fig.axes[0].get_yscale() == "log"
    assert _labels(fig.axes[2]) == ["train", "eval"]
    assert len(metric_panels_figure({}).axes) == 1


@pytest.mark.parametrize("fmt", ["png", "svg"])
def test_save_figure_writes_file(tmp_path: Path, fmt: str) -> None:
    out = save_figure(_trajectory(), tmp_path / "nested" / "dir" / f"traj.{fmt}", fmt)
    assert out.exists() and out.stat().st_size > 0
    data = out.read_bytes()
    if fmt == "png":
        assert data.startswith(b"\x89PNG\r\n\x1a\n")
    else:
        assert b"<svg" in data[:2000]


def test_save_figure_appends_suffix_and_rejects_unknown_format(tmp_path: Path) -> None:
    fig = learning_curve_figure({"a": (np.arange(3), np.arange(3.0))})
    assert save_figure(fig, tmp_path / "curve", "svg").name == "curve.svg"
    with pytest.raises(ValueError):
        save_figure(fig, tmp_path / "curve.pdf", "pdf")


def test_policy_comparison_bars_with_intervals_and_undefined_values() -> None:
    stats = {
        "return": {"agent": (10.0, 8.0, 12.5), "SOP": (6.0, 5.0, 7.0), "DP": (15.0, 14.0, 16.0)},
        "resilience": {"agent": (None, None, None), "SOP": (0.5, 0.4, 0.6), "DP": (0.9, 0.8, 1.0)},
        "spill (hm³)": {"agent": (0.0, 0.0, 0.0), "SOP": (0.0, 0.0, 0.0), "DP": (0.0, 0.0, 0.0)},
    }
    fig = policy_comparison_figure(stats, title="compared")
    axes = fig.get_axes()
    assert [ax.get_title() for ax in axes] == list(stats)
    bars = axes[0].patches
    assert [b.get_width() for b in bars] == [10.0, 6.0, 15.0]
    # one colour per policy across panels: SOP is the first bar of the resilience panel (agent is n/a)
    assert bars[1].get_facecolor() == axes[1].patches[0].get_facecolor() != bars[0].get_facecolor()
    from matplotlib.container import ErrorbarContainer

    spans = [c.lines[2][0].get_segments()[0][:, 0].tolist() for c in axes[0].containers if isinstance(c, ErrorbarContainer)]
    assert spans == [[8.0, 12.5], [5.0, 7.0], [14.0, 16.0]]
    assert len(axes[1].patches) == 2 and "n/a" in [t.get_text().strip() for t in axes[1].texts]
    assert axes[2].get_xlim() == (-0.1, 1.0)  # all zero: a readable axis
    assert fig._suptitle.get_text() == "compared"
