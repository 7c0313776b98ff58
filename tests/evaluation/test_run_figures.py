"""Figures drawn from what a run recorded (TensorBoard scalars, evaluation.json)."""

from __future__ import annotations

import numpy as np

from reservoir_rl.evaluation.run_figures import learning_figure, training_figures


def test_learning_curve_names_the_validation_episodes():
    steps, values = np.array([256, 512]), np.array([1.0, 2.0])
    scalars = {tag: (steps, values) for tag in ("episode/return_mean", "eval/return", "eval/energy_gwh")}
    (ax,) = learning_figure(scalars, {"SOP": 0.5}, "tiny", 4).get_axes()
    assert "greedy agent (validation, 4 episodes)" in [line.get_label() for line in ax.get_lines()]
    assert ax.get_title() == "tiny: learning curve; dashed: baselines on the same validation episodes"
    energy = training_figures(scalars, "tiny")["reservoir_metrics"].get_axes()[0]
    assert "validation greedy" in [line.get_label() for line in energy.get_lines()]
