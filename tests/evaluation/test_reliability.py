"""Hashimoto reliability / resilience / vulnerability of supply, checked against hand-counted series."""

from __future__ import annotations

import math

import pytest
import torch

from reservoir_rl.evaluation.reliability import hashimoto_metrics


def _metrics(deficits: list[list[float]], lengths: list[int], has_demand: bool = True) -> dict[str, list[float]]:
    deficit = torch.tensor(deficits, dtype=torch.float32)
    valid = torch.arange(deficit.shape[1]).unsqueeze(0) < torch.tensor(lengths).unsqueeze(1)
    return {k: v.tolist() for k, v in hashimoto_metrics(deficit, valid, has_demand).items()}


def test_two_events_counted_by_hand():
    # failure days 1, 2 (event, worst 2.0) and 5 (event, worst 3.0); recoveries after days 2 and 5
    m = _metrics([[0.0, 1.0, 2.0, 0.0, 0.0, 3.0, 0.0, 0.0]], [8])
    assert m["supply_reliability"][0] == pytest.approx(5 / 8)
    assert m["supply_resilience"][0] == pytest.approx(2 / 3)
    assert m["supply_vulnerability_hm3"][0] == pytest.approx((2.0 + 3.0) / 2)


def test_days_after_the_episode_are_ignored_and_a_last_day_failure_is_not_a_recovery():
    # valid days 0..3: failures on days 2, 3 (one event, worst 4.0) and no recovery inside the episode;
    # the huge deficits after the end must not count
    m = _metrics([[0.0, 0.0, 1.0, 4.0, 0.0, 9.0, 9.0, 9.0]], [4])
    assert m["supply_reliability"][0] == pytest.approx(2 / 4)
    assert m["supply_resilience"][0] == 0.0
    assert m["supply_vulnerability_hm3"][0] == pytest.approx(4.0)


def test_episodes_are_independent_in_a_batch():
    m = _metrics([[1.0, 0.0, 1.0, 0.0], [0.0, 0.0, 0.0, 0.0], [2.0, 2.0, 2.0, 2.0]], [4, 4, 4])
    assert m["supply_reliability"] == pytest.approx([0.5, 1.0, 0.0])
    assert m["supply_resilience"] == pytest.approx([1.0, 1.0, 0.0])  # no failure: resilience 1 by convention
    assert m["supply_vulnerability_hm3"] == pytest.approx([1.0, 0.0, 2.0])


def test_without_demand_resilience_and_vulnerability_are_not_applicable():
    m = _metrics([[0.0, 0.0, 0.0]], [3], has_demand=False)
    assert m["supply_reliability"] == [1.0]
    assert math.isnan(m["supply_resilience"][0]) and math.isnan(m["supply_vulnerability_hm3"][0])
