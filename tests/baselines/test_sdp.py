"""Tests of reservoir_rl.baselines.sdp: the stochastic DP solves the recursion it states, learns only from
training years, is solved once per config and record, and acts on storage, day and today's inflow.

The value iteration is checked against an independent brute-force expected-value recursion (plain loops
over days, classes, storage levels, releases and tomorrow's classes) on a tiny problem, and against the
deterministic recursion when the inflow is the same every year (one class); the policy is checked to
choose what its values say, to score no more than perfect foresight and more than SOP on held-out years.
"""

from __future__ import annotations

import datetime as dt
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from reservoir_rl.baselines import episode_returns, run_episodes
from reservoir_rl.baselines.dp import interpolate_on_grid, storage_grid_hm3, transition
from reservoir_rl.baselines.inflow_classes import InflowClasses, period_of_day
from reservoir_rl.baselines.sdp import (
    StochasticDPPolicy,
    clear_sdp_cache,
    sdp_solution,
    solution_key,
    solve_sdp,
    training_mask,
    value_iteration,
)
from reservoir_rl.catalog import make_baseline
from reservoir_rl.config import Config, EnvConfig, ReservoirConfig, RewardConfig, load_config
from reservoir_rl.env import DiscreteReservoirEnv, make_env
from reservoir_rl.env.inflow import InflowRecord
from reservoir_rl.env.physics import ReservoirPhysics
from reservoir_rl.env.reward import reward_components, weighted_reward
from reservoir_rl.errors import ConfigError
from reservoir_rl.units import HM3_PER_CMS_DAY

F64 = torch.float64
WEIGHTS = RewardConfig()
CONFIGS = Path(__file__).resolve().parents[2] / "configs"


def lerp_on_grid(grid: list[float], values: list[float], storage: float) -> float:
    """Linear interpolation of grid values at one storage, clamped to the grid's ends (plain floats)."""
    if storage <= grid[0]:
        return values[0]
    if storage >= grid[-1]:
        return values[-1]
    spacing = (grid[-1] - grid[0]) / (len(grid) - 1)
    lower = min(int((storage - grid[0]) / spacing), len(grid) - 2)
    weight = (storage - grid[lower]) / spacing
    return values[lower] + weight * (values[lower + 1] - values[lower])


def one_day_outcomes(physics, inflow: list[float], day: int, grid: list[float]):
    """Reward, next storage and failure of every (class inflow, grid storage, release level) on one day,
    as nested lists [c][g][a], stepped exactly (float64)."""
    actions = torch.arange(physics.n_release_levels)
    storage = torch.tensor(grid, dtype=F64).view(1, -1, 1)
    inflow_hm3 = torch.tensor(inflow, dtype=F64).view(-1, 1, 1)
    out = physics.step(storage, inflow_hm3, actions, torch.tensor(float(day), dtype=F64))
    reward = weighted_reward(WEIGHTS, reward_components(physics, out))
    failed = out.flood_failure | out.drought_failure
    return reward.tolist(), out.next_storage_hm3.tolist(), failed.tolist()


def brute_force_sdp(physics, classes: InflowClasses, n_storage: int, gamma: float, tolerance: float) -> np.ndarray:
    """V[d][c][g] of the annual-cycle SDP by plain loops, until no value moves by ``tolerance``: (366, C, G)."""
    dead, cap = physics.dead_storage_hm3, physics.capacity_hm3
    grid = [dead + g * (cap - dead) / (n_storage - 1) for g in range(n_storage)]
    period = classes.period_of_day.tolist()
    inflow, transitions = classes.inflow_hm3.tolist(), classes.transitions.tolist()
    n_classes, n_actions = classes.n_classes, physics.n_release_levels
    outcomes = [one_day_outcomes(physics, inflow[period[d]], d, grid) for d in range(366)]
    values = [[[0.0] * n_storage for _ in range(n_classes)] for _ in range(366)]

    def backup(d: int, next_day: int) -> float:
        reward, next_storage, failed = outcomes[d]
        change = 0.0
        for c in range(n_classes):
            for g in range(n_storage):
                best = -math.inf
                for a in range(n_actions):
                    future = 0.0
                    if not failed[c][g][a]:
                        for c2 in range(n_classes):
                            probability = transitions[period[d]][c][c2]
                            future += probability * lerp_on_grid(grid, values[next_day][c2], next_storage[c][g][a])
                    best = max(best, reward[c][g][a] + gamma * future)
                change = max(change, abs(best - values[d][c][g]))
                values[d][c][g] = best
        return change

    for _ in range(500):
        change = max(backup(d, d + 1 if d < 364 else 0) for d in range(364, -1, -1))
        if change < tolerance:
            break
    backup(365, 0)
    return np.array(values)


@pytest.fixture(scope="module")
def tiny():
    """3 storage levels, 3 release levels, 2 periods (days 0 … 181, 182 … 365) of 2 classes each: a dry
    class that can empty the reservoir and a wet class that can overtop it; persistent transitions."""
    physics = ReservoirPhysics(ReservoirConfig(), 3)
    classes = InflowClasses(
        period_days=182,
        period_of_day=torch.as_tensor(period_of_day(182)),
        edges_hm3=torch.tensor([[20.0], [10.0]], dtype=F64),
        inflow_hm3=torch.tensor([[0.5, 300.0], [2.0, 60.0]], dtype=F64),
        marginal=torch.tensor([[0.7, 0.3], [0.6, 0.4]], dtype=F64),
        transitions=torch.tensor([[[0.8, 0.2], [0.4, 0.6]], [[0.9, 0.1], [0.3, 0.7]]], dtype=F64),
        pair_counts=torch.tensor([[10, 10], [10, 10]]),
    )
    solution = value_iteration(physics, WEIGHTS, classes, 3, gamma=0.99, terminate_on_failure=True, tolerance=1e-12)
    return physics, classes, solution


def test_tiny_problem_equals_the_brute_force_expected_value_recursion(tiny):
    physics, classes, solution = tiny
    # the problem is not trivial: some transitions fail (no future), some do not
    grid = storage_grid_hm3(physics, 3).tolist()
    failures = [one_day_outcomes(physics, classes.inflow_hm3[p].tolist(), day, grid)[2]
                for p, day in ((0, 60), (1, 200))]
    assert any(np.ravel(failures)) and not all(np.ravel(failures))
    expected = brute_force_sdp(physics, classes, 3, 0.99, 1e-12)
    assert solution.values.shape == (366, 2, 3) and solution.sweeps > 2
    np.testing.assert_allclose(solution.values.numpy(), expected, rtol=0, atol=1e-9)


def test_solution_values_at_storages_and_in_expectation(tiny):
    physics, classes, solution = tiny
    grid = solution.storage_grid_hm3
    day = torch.tensor([0, 181, 182, 365])
    klass = torch.tensor([0, 1, 1, 0])
    on_grid = grid.expand(4, -1)
    torch.testing.assert_close(solution.value_at(day, klass, on_grid), solution.values[day, klass])
    between = (grid[:1] + grid[1:2]).view(1, 1).expand(4, 1) / 2  # halfway between the two lowest levels
    torch.testing.assert_close(solution.value_at(day, klass, between),
                               solution.values[day, klass, :2].mean(-1, keepdim=True))
    marginal = classes.marginal[classes.period_of_day[day]]
    torch.testing.assert_close(solution.mean_value(day, on_grid),
                               (marginal.unsqueeze(-1) * solution.values[day]).sum(1))
    # E over tomorrow's class: day 181 (period 0) continues into day 182 (period 1's classes)
    rows = classes.transitions[0, klass[1]]
    expected = rows @ solution.values[182]
    torch.testing.assert_close(solution.expected_next_value(day[1:2], klass[1:2], on_grid[:1]), expected.view(1, -1))
    # day 364 continues into day 0, unless told it is followed by day 365 (a leap year)
    last = torch.tensor([364])
    torch.testing.assert_close(solution.continuation_on_grid(last, klass[:1]),
                               (classes.transitions[1, 0] @ solution.values[0]).view(1, -1))
    torch.testing.assert_close(solution.continuation_on_grid(last, klass[:1], torch.tensor([365])),
                               (classes.transitions[1, 0] @ solution.values[365]).view(1, -1))


def periodic_record(n_years: int = 5) -> InflowRecord:
    """Daily inflow that depends only on the day of year (the same every year), from 1 January 2001
    (2004 is a leap year, so day 365 occurs; its inflow is day 364's)."""
    dates = np.datetime64("2001-01-01") + np.arange((dt.date(2001 + n_years, 1, 1) - dt.date(2001, 1, 1)).days)
    day = (dates - dates.astype("datetime64[Y]")).astype(np.int64)
    inflow_cms = 170.0 + 140.0 * np.cos(2 * np.pi * (np.minimum(day, 364) - 95) / 365.0) ** 3
    return InflowRecord("periodic", dates, inflow_cms)


def test_one_class_on_a_periodic_inflow_equals_the_deterministic_recursion():
    record = periodic_record()
    physics = ReservoirPhysics(ReservoirConfig(), 5)
    gamma, n_storage = 0.98, 25
    solution = solve_sdp(physics, WEIGHTS, record.inflow_hm3(), record.day_of_year, np.ones(record.n_days, dtype=bool),
                         n_classes=1, period_days=1, n_storage=n_storage, gamma=gamma, terminate_on_failure=True,
                         tolerance=1e-12)
    # V[d](s) = max_a r(s, I_d, a, d) + γ·[not failed]·V[d + 1](s') with the known inflow I_d of each day
    inflow_hm3 = (170.0 + 140.0 * np.cos(2 * np.pi * (np.arange(365) - 95) / 365.0) ** 3) * HM3_PER_CMS_DAY
    grid = storage_grid_hm3(physics, n_storage)
    values = torch.zeros(366, n_storage, dtype=F64)

    def backup(d: int, inflow: float, next_day: int) -> None:
        reward, next_storage, alive = transition(physics, WEIGHTS, grid.view(-1, 1), torch.tensor(inflow, dtype=F64),
                                                 torch.tensor(d), True)
        future = interpolate_on_grid(values[next_day].view(1, -1), next_storage.reshape(1, -1), physics)
        q = reward + gamma * torch.where(alive, future.view(alive.shape), torch.zeros_like(reward))
        values[d] = q.amax(dim=-1)

    for _ in range(100):
        before = values.clone()
        for d in range(364, -1, -1):
            backup(d, float(inflow_hm3[d]), (d + 1) % 365)
        if (values - before).abs().max() < 1e-12:
            break
    backup(365, float(inflow_hm3[364]), 0)
    torch.testing.assert_close(solution.values[:, 0], values, rtol=0, atol=1e-9)


# ------------------------------------------------------------------ training years only, from a config


SMALL = {"storage_levels": 30}


def split_config(**sdp) -> Config:
    """The synthetic record (water years 1991 … 2002): 2002 … 2000 held out, 1999 and 1998 validate."""
    return Config(inflow={"heldout_water_years": 3, "validation_water_years": 2}, baselines={"sdp": {**SMALL, **sdp}})


def scaled_years(record: InflowRecord, years: list[int], factor: float) -> InflowRecord:
    inflow = np.where(np.isin(record.water_years, years), record.inflow_cms * factor, record.inflow_cms)
    return InflowRecord(record.name, record.dates, inflow)


def test_classes_and_values_come_from_the_training_years_only(synthetic_record):
    config = split_config()
    mask = training_mask(synthetic_record, config)
    assert sorted(set(synthetic_record.water_years[mask].tolist())) == list(range(1991, 1998))
    physics = ReservoirPhysics(EnvConfig().reservoir, EnvConfig().n_release_levels)

    def solve(record: InflowRecord):
        return solve_sdp(physics, WEIGHTS, record.inflow_hm3(), record.day_of_year, training_mask(record, config),
                         n_classes=7, period_days=7, n_storage=30, gamma=0.99, terminate_on_failure=True)

    base = solve(synthetic_record)
    other = solve(scaled_years(synthetic_record, [1998, 1999, 2000, 2001, 2002], 3.0))  # validation and held out
    assert torch.equal(base.values, other.values) and torch.equal(base.transitions, other.transitions)
    trained = solve(scaled_years(synthetic_record, [1995], 3.0))  # a training year: the SDP sees it
    assert not torch.equal(base.class_edges_hm3, trained.class_edges_hm3)
    assert not torch.equal(base.values, trained.values)


def synthetic_env(record: InflowRecord, n_envs: int = 8, seed: int = 0, **env) -> DiscreteReservoirEnv:
    return DiscreteReservoirEnv(EnvConfig(**env), record, record.complete_water_years()[:7], n_envs=n_envs, seed=seed)


def test_solved_once_per_config_and_training_record(synthetic_record, monkeypatch):
    import reservoir_rl.baselines.sdp as sdp_module

    calls = []
    solve = sdp_module.solve_sdp
    monkeypatch.setattr(sdp_module, "solve_sdp", lambda *args, **kwargs: calls.append(1) or solve(*args, **kwargs))
    clear_sdp_cache()
    env = synthetic_env(synthetic_record, horizon_days=30)
    config = split_config()
    first = sdp_solution(env, config)
    assert make_baseline("sdp", env, config).solution is first and sdp_solution(env, config) is first
    assert len(calls) == 1
    # held-out years do not enter the key; the discount, the SDP settings and the env's reservoir do
    held_out_changed = synthetic_env(scaled_years(synthetic_record, [2001, 2002], 2.0), horizon_days=30)
    assert solution_key(held_out_changed, config) == solution_key(env, config)
    assert sdp_solution(held_out_changed, config) is first and len(calls) == 1
    assert sdp_solution(synthetic_env(synthetic_record, horizon_days=60), config) is first  # horizon: no matter
    other_gamma = config.model_copy(update={"agent": config.agent.model_copy(update={"gamma": 0.95})})
    assert sdp_solution(env, other_gamma).gamma == 0.95 and len(calls) == 2
    assert sdp_solution(env, split_config(inflow_classes=3)).classes.n_classes == 3 and len(calls) == 3
    other_env = synthetic_env(synthetic_record, horizon_days=30, n_release_levels=5)
    assert sdp_solution(other_env, config) is not first and len(calls) == 4
    assert sdp_solution(env, config) is first and len(calls) == 4  # still cached
    clear_sdp_cache()
    assert sdp_solution(env, config) is not first and len(calls) == 5


def test_settings_the_record_cannot_support_are_one_line_config_errors(synthetic_record):
    env = synthetic_env(synthetic_record, horizon_days=30)
    with pytest.raises(ConfigError, match=r"baselines.sdp: period 0 \(days 0…\) holds 7 training days, fewer than"):
        sdp_solution(env, split_config(inflow_classes=20, period_days=1))
    undiscounted = split_config().model_copy(update={"agent": Config().agent.model_copy(update={"gamma": 1.0})})
    with pytest.raises(ConfigError, match="set baselines.sdp.discount"):
        sdp_solution(env, undiscounted)
    with pytest.raises(ConfigError, match="did not converge in 1 annual sweeps"):
        sdp_solution(env, split_config(max_sweeps=1))
    discounted = undiscounted.model_copy(update={"baselines": split_config(discount=0.9).baselines})
    assert sdp_solution(env, discounted).gamma == 0.9


# ------------------------------------------------------------------ the policy


def test_policy_chooses_the_release_its_values_say_from_todays_true_inflow(synthetic_record):
    env = synthetic_env(synthetic_record, n_envs=24, seed=5, horizon_days=30, initial_storage_fraction=(0.1, 1.0))
    policy = StochasticDPPolicy(env, split_config())
    solution, physics = policy.solution, env.physics
    td = env.reset()
    # two of the days: 30 December of a leap year (day 364, followed by day 365) and 31 December 1991
    for i, date in enumerate(("1992-12-30", "1991-12-31")):
        td["record_index"][i] = int(np.flatnonzero(synthetic_record.dates == np.datetime64(date))[0])
        td["day_of_year"][i] = 364
    chosen = policy(td.clone()).get("action")
    action_values = policy.action_values(td)
    grid = solution.storage_grid_hm3.tolist()
    edges, transitions = solution.class_edges_hm3.tolist(), solution.transitions.tolist()
    for i in range(env.n_envs):
        index, day = int(td["record_index"][i]), int(td["day_of_year"][i])
        inflow = float(env.inflow_hm3_at(torch.tensor(index)))  # the float32 inflow the env steps with
        period = int(solution.classes.period_of_day[day])
        klass = sum(edge <= inflow for edge in edges[period])
        tomorrow = int(synthetic_record.day_of_year[index + 1])
        q = []
        for a in range(env.n_actions):
            out = physics.step(td["storage_hm3"][i].to(F64), torch.tensor(inflow, dtype=F64), torch.tensor(a),
                               torch.tensor(float(day), dtype=F64))
            reward = float(weighted_reward(env.config.reward, reward_components(physics, out)))
            future = 0.0 if bool(out.flood_failure | out.drought_failure) else sum(
                transitions[period][klass][c2] * lerp_on_grid(grid, solution.values[tomorrow, c2].tolist(),
                                                              float(out.next_storage_hm3))
                for c2 in range(solution.classes.n_classes))
            q.append(reward + solution.gamma * future)
        np.testing.assert_allclose(action_values[i].numpy(), q, rtol=1e-9, atol=1e-9)
        assert int(chosen[i]) == int(np.argmax(q)), (i, q)


def test_perfect_foresight_bounds_sdp_and_sdp_beats_sop_on_validation_montague_episodes():
    config = load_config(CONFIGS / "base.yaml")
    returns = {}
    for n_envs, names in ((6, ("sdp", "dp")), (50, ("sop", "sdp"))):  # the DP bound on a few; the mean on 50
        env = make_env(config, "validation", n_envs=n_envs, seed=0)
        for name in names:
            env.set_seed(0)
            returns[name, n_envs] = episode_returns(run_episodes(env, make_baseline(name, env, config)))
    assert (returns["dp", 6] >= returns["sdp", 6]).all(), (returns["dp", 6], returns["sdp", 6])
    # SOP with the firm-yield target and flood-control releases is a strong rule; the SDP still does better
    assert returns["sdp", 50].mean() > returns["sop", 50].mean(), (returns["sdp", 50].mean(), returns["sop", 50].mean())
