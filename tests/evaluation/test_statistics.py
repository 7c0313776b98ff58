"""Percentile bootstrap: reproducible, brackets the estimate, pairs episodes across statistics."""

from __future__ import annotations

import math

import pytest
import torch

from reservoir_rl.evaluation.statistics import PairedBootstrap


def test_constant_sample_has_a_degenerate_interval():
    estimate = PairedBootstrap(10).mean(torch.full((10,), 3.5))
    assert (estimate.value, estimate.ci_low, estimate.ci_high, estimate.n) == (3.5, 3.5, 3.5, 10)


def test_interval_brackets_the_mean_narrows_with_n_and_is_reproducible():
    generator = torch.Generator().manual_seed(0)
    small = torch.randn(20, generator=generator, dtype=torch.float64) * 2 + 5
    large = torch.randn(2000, generator=generator, dtype=torch.float64) * 2 + 5
    a, b = PairedBootstrap(20, seed=3).mean(small), PairedBootstrap(2000, seed=3).mean(large)
    assert a.value == pytest.approx(float(small.mean()))
    assert a.ci_low < a.value < a.ci_high and b.ci_low < b.value < b.ci_high
    assert b.ci_high - b.ci_low < (a.ci_high - a.ci_low) / 5  # ~ 1 / sqrt(n)
    assert b.ci_low < 5.0 < b.ci_high
    assert PairedBootstrap(20, seed=3).mean(small) == a  # same seed, same interval


def test_missing_values_are_left_out():
    values = torch.tensor([1.0, float("nan"), 3.0, float("nan")])
    estimate = PairedBootstrap(4).mean(values)
    assert estimate.value == 2.0 and estimate.n == 2
    assert 1.0 <= estimate.ci_low <= estimate.ci_high <= 3.0
    undefined = PairedBootstrap(3).mean(torch.full((3,), float("nan")))
    assert math.isnan(undefined.value) and math.isnan(undefined.ci_low) and undefined.as_dict()["mean"] is None


def test_gap_share_is_exact_when_the_agent_closes_the_same_share_on_every_episode():
    generator = torch.Generator().manual_seed(1)
    sop = torch.randn(30, generator=generator, dtype=torch.float64)
    dp = sop + 1.0 + torch.rand(30, generator=generator, dtype=torch.float64)
    agent = sop + 0.25 * (dp - sop)
    share = PairedBootstrap(30).gap_share(agent, sop, dp)
    # resampling episodes jointly keeps the ratio at exactly 0.25; unpaired resampling would not
    assert share.value == pytest.approx(0.25)
    assert share.ci_low == pytest.approx(0.25) and share.ci_high == pytest.approx(0.25)


def test_paired_difference_cancels_the_shared_trace_variability():
    generator = torch.Generator().manual_seed(2)
    trace_effect = torch.randn(40, generator=generator, dtype=torch.float64) * 100.0  # hard vs easy years
    baseline = trace_effect
    agent = trace_effect + 1.0 + 0.1 * torch.randn(40, generator=generator, dtype=torch.float64)
    boot = PairedBootstrap(40)
    diff = boot.difference(agent, baseline)
    assert 0.9 < diff.ci_low < 1.0 < diff.ci_high < 1.1
    together, alone = boot.means({"a": agent, "b": baseline})["a"], boot.mean(agent)
    assert (together.value, together.ci_low, together.ci_high) == pytest.approx((alone.value, alone.ci_low, alone.ci_high))


def test_gap_share_is_undefined_when_the_references_tie():
    x = torch.ones(5)
    assert math.isnan(PairedBootstrap(5).gap_share(x, x, x).value)
