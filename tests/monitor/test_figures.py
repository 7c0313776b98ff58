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
    assert {f"release ({p})" for p in POLICIES} | {f"spill ({p})" for p in POLICIES} <= set(flow_labels)
    assert [lbl.split(" (")[0] for lbl in _labels(energy_ax)] == list(POLICIES)
    assert "hm³" in storage_ax.get_ylabel() and "m³/s" in flow_ax.get_ylabel() and "MWh" in energy_ax.get_ylabel()
    # shared x axis
    assert storage_ax.get_shared_x_axes().joined(storage_ax, energy_ax)


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
