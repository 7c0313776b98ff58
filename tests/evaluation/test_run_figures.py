"""Figures drawn from what a run recorded (TensorBoard scalars, evaluation.json)."""

from __future__ import annotations

import numpy as np

from reservoir_rl.config import RewardConfig
from reservoir_rl.env.reward import COMPONENT_MEANINGS, COMPONENTS
from reservoir_rl.evaluation.run_figures import learning_figure, return_caption, training_figures


def test_learning_curve_names_the_validation_episodes():
    steps, values = np.array([256, 512]), np.array([1.0, 2.0])
    scalars = {tag: (steps, values) for tag in ("episode/return_mean", "eval/return", "eval/energy_gwh")}
    (ax,) = learning_figure(scalars, {"SOP": 0.5}, "tiny", 4).get_axes()
    assert "greedy agent (validation, 4 episodes)" in [line.get_label() for line in ax.get_lines()]
    assert ax.get_title() == "tiny: learning curve; dashed: baselines on the same validation episodes"
    energy = training_figures(scalars, "tiny")["reservoir_metrics"].get_axes()[0]
    assert "validation greedy" in [line.get_label() for line in energy.get_lines()]


def test_the_return_is_explained_in_physical_terms():
    """The learning curve's caption says what the return is, with the run's weights; a zero weight is left out."""
    caption = return_caption(RewardConfig(spill=0.0, failure=25.0), 365)
    assert caption.startswith("return: the sum of an episode's daily rewards (365 days unless a failure ends it)")
    assert "1 × energy ÷ the maximum daily energy (1 for a day at full power)" in caption
    assert "− 25 × 1 on a catastrophic-flood or critical-drought day" in caption and "spill" not in caption
    assert all(name in caption for name in ("flood-control zone", "environmental-flow", "supply deficit"))
    assert set(COMPONENT_MEANINGS) == set(COMPONENTS)  # every component has its meaning
    steps, values = np.array([256, 512]), np.array([1.0, 2.0])
    figure = learning_figure({"eval/return": (steps, values)}, {}, "tiny", 4, caption)
    assert caption in [" ".join(text.get_text().split("\n")) for text in figure.texts]  # wrapped to the width
