"""Streaming episode metrics (`EpisodeAccumulator`) against a direct per-episode computation."""

from __future__ import annotations

import pytest
import torch

from reservoir_rl.config import EnvConfig
from reservoir_rl.env import DiscreteReservoirEnv
from reservoir_rl.env.metrics import REDUCTIONS, EpisodeAccumulator, FinishedEpisodes, daily_indicators

N_ENVS, DAYS = 4, 70


@pytest.fixture(scope="module")
def stream(synthetic_record):
    """(N_ENVS, DAYS) days of random releases with 25-day episodes (auto-reset), some ending in failure."""
    config = EnvConfig(horizon_days=25, initial_storage_fraction=(0.1, 0.95))
    env = DiscreteReservoirEnv(config, synthetic_record, synthetic_record.complete_water_years(), n_envs=N_ENVS, seed=4)
    generator = torch.Generator().manual_seed(0)

    def policy(td):
        td.set("action", torch.randint(0, config.n_release_levels, td.batch_size, generator=generator))
        return td

    data = env.rollout(DAYS, policy, break_when_any_done=False)
    return config, data


def direct_episodes(config: EnvConfig, data) -> list[dict[str, float]]:
    """Completed episodes in (env, end day) order, each reduced from its days directly."""
    daily = daily_indicators(data["next"], config)
    done = data["next", "done"].reshape(N_ENVS, DAYS)
    episodes = []
    for env in range(N_ENVS):
        start = 0
        for day in range(DAYS):
            if not bool(done[env, day]):
                continue
            days = slice(start, day + 1)
            metrics = {}
            for name, how in REDUCTIONS.items():
                values = daily[name][env, days].double()
                metrics[name] = {"sum": values.sum(), "mean": values.mean(), "min": values.min(), "max": values.max()}[how]
            metrics["success"] = float(metrics["failures"] == 0 and metrics["length"] >= config.horizon_days)
            episodes.append({k: float(v) for k, v in metrics.items()})
            start = day + 1
    return episodes


def check(selected: dict[str, torch.Tensor], expected: list[dict[str, float]]) -> None:
    assert selected["return"].numel() == len(expected) > 0
    for i, episode in enumerate(expected):
        for name, value in episode.items():
            assert float(selected[name][i]) == pytest.approx(value, rel=1e-5, abs=1e-4), name


def test_finished_episodes_match_a_direct_reduction(stream) -> None:
    config, data = stream
    accumulator = EpisodeAccumulator(N_ENVS, config)
    finished = FinishedEpisodes.concat([accumulator.update_batch(data[:, :30]), accumulator.update_batch(data[:, 30:])])
    assert finished.done.shape == (N_ENVS, DAYS)
    assert int(finished.count()) == int(data["next", "done"].sum())
    expected = direct_episodes(config, data)
    assert any(e["failures"] > 0 for e in expected) and any(e["success"] == 1.0 for e in expected)
    check(finished.select(), expected)


def test_state_round_trip_mid_episode(stream) -> None:
    config, data = stream
    first = EpisodeAccumulator(N_ENVS, config)
    early = first.update_batch(data[:, :17])
    second = EpisodeAccumulator(N_ENVS, config)
    second.load_state_dict(first.state_dict())
    late = second.update_batch(data[:, 17:])
    check(FinishedEpisodes.concat([early, late]).select(), direct_episodes(config, data))
    restored = FinishedEpisodes.from_state_dict(late.state_dict())
    assert torch.equal(restored.done, late.done)
    assert all(torch.equal(restored.metrics[k], late.metrics[k]) for k in late.metrics)


def test_update_reports_one_day_at_a_time(stream) -> None:
    config, data = stream
    accumulator = EpisodeAccumulator(N_ENVS, config)
    ended = [accumulator.update(data["next"][:, t]) for t in range(DAYS)]
    returns = torch.cat([e["return"] for e in ended if e is not None])
    expected = direct_episodes(config, data)
    # day order here, (env, day) order in the direct list: compare as multisets
    assert sorted(returns.tolist()) == pytest.approx(sorted(e["return"] for e in expected), rel=1e-5, abs=1e-4)
