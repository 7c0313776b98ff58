"""Aggregation across seeds: interquartile mean, stratified bootstrap (episodes resampled within each seed)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from reservoir_rl.evaluation.statistics import PairedBootstrap, StratifiedBootstrap, iqm, trimmed_mean


def reference_trim_mean(values, proportion: float) -> float:
    """scipy.stats.trim_mean, written out: sort, drop int(proportion · n) from each end, average."""
    ordered = np.sort(np.asarray([v for v in values if not math.isnan(v)], dtype=float))
    cut = int(proportion * len(ordered))
    return float(ordered[cut: len(ordered) - cut].mean())


def test_iqm_of_known_values() -> None:
    assert iqm(torch.arange(1.0, 9.0)) == 4.5  # 8 values: drop 2 each side, mean of 3, 4, 5, 6
    assert iqm(torch.tensor([1.0, 2.0, 3.0, 100.0])) == 2.5  # the outlier is dropped
    assert iqm(torch.tensor([[5.0, 1.0], [100.0, 2.0]])) == 3.5  # all values of a table, whatever its shape
    assert iqm(torch.tensor([1.0, 2.0, 30.0])) == 11.0  # n < 4: nothing dropped
    assert iqm(torch.tensor([7.0])) == 7.0
    assert iqm(torch.tensor([1.0, float("nan"), 2.0, 3.0, 100.0])) == 2.5  # NaN left out
    assert math.isnan(iqm(torch.tensor([float("nan")])))


@pytest.mark.parametrize("n", [1, 2, 5, 9, 12, 37])
def test_trimmed_mean_matches_a_direct_computation_row_by_row(n: int) -> None:
    generator = torch.Generator().manual_seed(n)
    table = torch.randn(6, n, generator=generator, dtype=torch.float64).exp()
    table[1, : n // 3] = float("nan")  # rows with different numbers of defined values
    got = trimmed_mean(table, 0.25)
    for row, value in zip(table.tolist(), got.tolist()):
        assert value == pytest.approx(reference_trim_mean(row, 0.25), rel=1e-12)
    assert trimmed_mean(table, 0.0)[0] == pytest.approx(float(table[0].mean()))


def test_one_seed_gives_the_paired_bootstrap_exactly() -> None:
    values = torch.randn(30, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    assert StratifiedBootstrap(1, 30, resamples=500, seed=4).mean(values[None]) == PairedBootstrap(30, 500, seed=4).mean(values)


def test_shared_episode_draws_do_not_narrow_the_interval_of_identical_seeds() -> None:
    """Three seeds scoring exactly alike on the same episodes carry no more information than one: the
    shared draw gives the single-seed interval; independent draws would pretend to 3× the episodes."""
    one = torch.randn(40, generator=torch.Generator().manual_seed(2), dtype=torch.float64) * 3 + 1
    three = one.expand(3, 40)
    single = PairedBootstrap(40, 1000, seed=5).mean(one)
    shared = StratifiedBootstrap(3, 40, 1000, seed=5).mean(three)
    independent = StratifiedBootstrap(3, 40, 1000, seed=5, shared_episodes=False).mean(three)
    assert (shared.value, shared.ci_low, shared.ci_high) == pytest.approx((single.value, single.ci_low, single.ci_high), rel=1e-12)
    width = lambda e: e.ci_high - e.ci_low  # noqa: E731
    assert width(independent) < 0.75 * width(shared)  # ~ 1/√3 of it


def test_stratified_estimates_equal_direct_computations_and_their_intervals_bracket_them() -> None:
    generator = torch.Generator().manual_seed(3)
    scores = torch.randn(4, 25, generator=generator, dtype=torch.float64) + torch.tensor([[0.0], [1.0], [2.0], [5.0]])
    scores[2, 3] = float("nan")
    boot = StratifiedBootstrap(4, 25, resamples=800, seed=0)
    mean, middle = boot.mean(scores), boot.iqm(scores)
    per_seed = [np.nanmean(row) for row in scores.numpy()]
    assert mean.value == pytest.approx(float(np.mean(per_seed)), rel=1e-12)
    assert middle.value == pytest.approx(reference_trim_mean(scores.reshape(-1).tolist(), 0.25), rel=1e-12)
    assert mean.n == middle.n == 99
    for estimate in (mean, middle):
        assert estimate.ci_low < estimate.value < estimate.ci_high
    # the drawn episodes are resampled within each seed: the mean of every resample lies in the range of
    # the seeds' means of their own values, never mixing one seed's episodes into another's
    resampled = boot._resampled(scores)
    assert resampled.shape == (800, 4, 25)
    for s in range(4):
        assert set(resampled[:, s].reshape(-1)[~torch.isnan(resampled[:, s].reshape(-1))].tolist()) <= set(
            scores[s][~torch.isnan(scores[s])].tolist())


def test_stratified_gap_share_and_baselines_shared_by_every_seed() -> None:
    generator = torch.Generator().manual_seed(4)
    sop = torch.randn(20, generator=generator, dtype=torch.float64)
    dp = sop + 10 + torch.rand(20, generator=generator, dtype=torch.float64)
    agent = sop + torch.tensor([[6.0], [7.0], [8.0]]) + torch.rand(3, 20, generator=generator, dtype=torch.float64)
    boot = StratifiedBootstrap(3, 20, resamples=600, seed=1)
    gap = boot.gap_share(agent, sop, dp)
    direct = (agent.mean() - sop.mean()) / (dp.mean() - sop.mean())
    assert gap.value == pytest.approx(float(direct), rel=1e-12)
    assert gap.ci_low < gap.value < gap.ci_high < 1.0
    # a (n_episodes,) baseline is one stratum, resampled with the first seed's indices
    assert boot.mean(sop).value == pytest.approx(float(sop.mean()))
    alone, repeated = boot.mean(sop), boot.mean(sop.expand(3, 20))
    assert (alone.value, alone.ci_low, alone.ci_high) == pytest.approx((repeated.value, repeated.ci_low, repeated.ci_high), rel=1e-12)
    assert math.isnan(boot.gap_share(agent, sop, sop).value)
    with pytest.raises(ValueError, match="expected"):
        boot.mean(torch.zeros(2, 20))
