"""Several runs' learning curves in one figure: one colour per run, a band for a run of several seeds."""

from __future__ import annotations

import numpy as np
from matplotlib.collections import PolyCollection

from reservoir_rl.monitor.comparison_figures import runs_curves_figure
from reservoir_rl.monitor.seed_figures import SeedCurves

STEPS = np.array([100, 200, 300])


def test_each_run_keeps_its_colour_and_only_several_seeds_get_a_band():
    one = SeedCurves.from_series({"": (STEPS, np.array([1.0, 2.0, 3.0]))})
    two = SeedCurves.from_series({"seed 0": (STEPS, np.array([0.0, 1.0, 2.0])), "seed 1": (STEPS, np.array([2.0, 3.0, 4.0]))})
    fig = runs_curves_figure(
        {"training": {"run-1 (x=1)": one, "run-2 (x=2)": two}, "validation": {"run-1 (x=1)": one, "run-2 (x=2)": two}},
        reference_lines={"validation": {"SOP (run-1)": 1.5}}, title="t", caption="what the return is",
    )
    training, validation = fig.axes
    assert sum(isinstance(c, PolyCollection) for c in training.collections) == 1  # run-2's band only
    lines = {line.get_label(): line for line in training.get_lines()}
    assert set(lines) == {"run-1 (x=1)", "run-2 (x=2): 2 seeds, mean and range"}
    assert lines["run-2 (x=2): 2 seeds, mean and range"].get_ydata().tolist() == [1.0, 2.0, 3.0]  # the mean
    colours = {line.get_label(): line.get_color() for line in validation.get_lines() if not line.get_label().startswith("SOP")}
    assert colours == {label: line.get_color() for label, line in lines.items()}  # same colour in every panel
    legend = [t.get_text() for t in validation.get_legend().get_texts()]
    assert "SOP (run-1) (1.5)" in legend
    assert any(t.get_text() == "what the return is" for t in fig.texts)


def test_a_run_without_data_says_so():
    empty = SeedCurves.from_series({})
    fig = runs_curves_figure({"training": {"run-1": empty}})
    assert any(t.get_text() == "no data" for t in fig.axes[0].texts)
