"""Tests of reservoir_rl.env.augmentation: grown floods, log-uniform factors (their ranges: tests/test_config.py)."""

from __future__ import annotations

import math

import torch

from reservoir_rl.env.augmentation import draw_log_uniform, grow_floods


def test_grow_floods_multiplies_only_the_part_above_the_threshold():
    inflow = torch.tensor([[10.0, 30.0, 50.0], [10.0, 30.0, 50.0]])
    grown = grow_floods(inflow.clone(), 30.0, torch.tensor([[2.0], [1.0]]))
    torch.testing.assert_close(grown, torch.tensor([[10.0, 30.0, 70.0], [10.0, 30.0, 50.0]]))


def test_draw_log_uniform_stays_in_range_with_a_uniform_log():
    factors = draw_log_uniform((1.0, 4.0), 20_000, torch.Generator().manual_seed(0), "cpu")
    assert factors.dtype == torch.float32 and factors.shape == (20_000,)
    assert factors.min() >= 1.0 and factors.max() <= 4.0
    assert abs(float(factors.log().mean()) - 0.5 * math.log(4.0)) < 0.02
    assert torch.equal(draw_log_uniform((2.0, 2.0), 3, torch.Generator(), "cpu"), torch.full((3,), 2.0))
