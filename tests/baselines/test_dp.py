"""Tests of reservoir_rl.baselines.dp: the perfect-foresight DP is the upper bound it claims to be.

The recursion is checked against brute-force enumeration of every release sequence on tiny cases (3 levels,
4 days), where the only allowed difference is the storage-grid interpolation error; the policy is checked
to score at least as much as every catalog baseline (SOP, hedging, the rule curve, SDP, MPC) and random
release levels on the same inflow traces, episode by episode, on the synthetic record (small grid), on the
bundled record and on the shipped configs.
"""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest
import torch

from reservoir_rl.baselines import episode_returns, run_episodes
from reservoir_rl.catalog import BASELINE_NAMES, make_baseline
from reservoir_rl.baselines.dp import interpolate_on_grid, solve_values, storage_grid_hm3
from reservoir_rl.config import BaselinesConfig, Config, EnvConfig, ReservoirConfig, RewardConfig, load_config
from reservoir_rl.env import DiscreteReservoirEnv
from reservoir_rl.env.reservoir_env import make_env
from reservoir_rl.env.physics import ReservoirPhysics
from reservoir_rl.env.reward import reward_components, weighted_reward

F64 = torch.float64
WEIGHTS = RewardConfig()

# 4-day inflow traces (hm³/day) and their days of year: ordinary, a flood that can overtop, a dry spell
TINY_CASES = {
    "ordinary": ([10.0, 20.0, 5.0, 15.0], [100, 101, 102, 103]),
    "flood": ([150.0, 300.0, 260.0, 50.0], [60, 61, 62, 63]),
    "dry": ([0.5, 0.2, 0.0, 0.1], [200, 201, 202, 203]),
}


@pytest.fixture(scope="module")
def tiny_physics() -> ReservoirPhysics:
    return ReservoirPhysics(ReservoirConfig(), 3)


def step_reward(physics, storage, inflow, action, day, terminate_on_failure):
    """Exact (float64) next storage, reward and failure of one day."""
    out = physics.step(storage, torch.tensor(inflow, dtype=F64), action, torch.tensor(day, dtype=F64))
    failed = out.flood_failure | out.drought_failure
    return out.next_storage_hm3, weighted_reward(WEIGHTS, reward_components(physics, out)), failed


def brute_force_best_return(physics, storage_hm3, inflow, days, terminate_on_failure, end_value=None) -> float:
    """Best undiscounted return over all A^T release sequences from ``storage_hm3``, stepped exactly; plus
    ``end_value(storage)`` of the storage left when the sequence has not failed (with termination), if given."""
    sequences = torch.tensor(list(itertools.product(range(physics.n_release_levels), repeat=len(inflow))))
    storage = torch.full((len(sequences),), storage_hm3, dtype=F64)
    total = torch.zeros(len(sequences), dtype=F64)
    alive = torch.ones(len(sequences), dtype=torch.bool)
    for t in range(len(inflow)):
        storage, reward, failed = step_reward(physics, storage, inflow[t], sequences[:, t], days[t], terminate_on_failure)
        total = total + torch.where(alive, reward, torch.zeros_like(reward))
        if terminate_on_failure:
            alive = alive & ~failed
    if end_value is not None:
        total = total + torch.where(alive, end_value(storage), torch.zeros_like(storage))
    return total.max().item()


def greedy_return(physics, values, storage_hm3, inflow, days, terminate_on_failure) -> float:
    """Return of acting greedily on the DP values (argmax r + V_{t+1}(s')), stepped exactly from ``storage_hm3``."""
    actions = torch.arange(physics.n_release_levels)
    storage, total = torch.tensor([storage_hm3], dtype=F64), 0.0
    for t in range(len(inflow)):
        next_storage, reward, failed = step_reward(physics, storage, inflow[t], actions, days[t], terminate_on_failure)
        future = interpolate_on_grid(values[t + 1 : t + 2], next_storage.view(1, -1), physics).view(-1)
        if terminate_on_failure:
            future = torch.where(failed, torch.zeros_like(future), future)
        best = int((reward + future).argmax())
        total += reward[best].item()
        if terminate_on_failure and failed[best]:
            break
        storage = next_storage[best : best + 1]
    return total


# ------------------------------------------------------------------ the recursion


def test_last_day_value_is_the_best_single_day_reward_exactly(tiny_physics):
    inflow, days = TINY_CASES["flood"]
    values, grid = solve_values(tiny_physics, WEIGHTS, torch.tensor([inflow]), torch.tensor([days]), 101, True)
    assert values.shape == (1, 5, 101) and values.dtype == F64
    assert (values[:, -1] == 0).all()
    for t in range(4):  # a one-day problem on day t: no interpolation at all
        one_day, _ = solve_values(tiny_physics, WEIGHTS, torch.tensor([inflow[t:t + 1]]), torch.tensor([days[t:t + 1]]), 101, True)
        rewards = torch.stack(
            [step_reward(tiny_physics, grid, inflow[t], torch.tensor(a), days[t], True)[1] for a in range(3)]
        )
        torch.testing.assert_close(one_day[0, 0], rewards.amax(dim=0), rtol=0, atol=1e-12)
    # the last day of the 4-day problem is the same one-day problem
    torch.testing.assert_close(values[0, 3], one_day[0, 0], rtol=0, atol=1e-12)


@pytest.mark.parametrize("terminate_on_failure", [True, False])
@pytest.mark.parametrize("case", sorted(TINY_CASES))
def test_dp_matches_brute_force_enumeration(tiny_physics, case, terminate_on_failure):
    """3 release levels × 4 days = 81 sequences: DP value and greedy return equal the best, up to the grid error."""
    inflow, days = TINY_CASES[case]
    n_grid = 1001
    values, grid = solve_values(tiny_physics, WEIGHTS, torch.tensor([inflow]), torch.tensor([days]), n_grid,
                                terminate_on_failure)
    tolerance = 0.01  # grid spacing 1.35 hm³: interpolation error of a few thousandths of a day's reward
    # start on grid points (no interpolation at day 0), away from the drought cliff at dead storage
    for g in (150, 500, 850, 990, n_grid - 1):
        best = brute_force_best_return(tiny_physics, grid[g].item(), inflow, days, terminate_on_failure)
        assert values[0, 0, g].item() == pytest.approx(best, abs=tolerance), (case, g)
        greedy = greedy_return(tiny_physics, values[0], grid[g].item(), inflow, days, terminate_on_failure)
        assert best - tolerance <= greedy <= best + 1e-9, (case, g)


def _end_value(storage: torch.Tensor) -> torch.Tensor:
    """A terminal value that rewards water left, and more so the fuller: 0.02 per hm³ above 600 hm³, concave."""
    return 0.02 * (storage - 600.0) - 1e-5 * (storage - 600.0) ** 2


@pytest.mark.parametrize("terminate_on_failure", [True, False])
@pytest.mark.parametrize("case", sorted(TINY_CASES))
def test_dp_with_a_terminal_value_matches_brute_force_enumeration(tiny_physics, case, terminate_on_failure):
    """The storage left valued by a terminal value: the DP equals the best of the 81 sequences scored with it."""
    inflow, days = TINY_CASES[case]
    n_grid = 1001
    grid = storage_grid_hm3(tiny_physics, n_grid)
    terminal = _end_value(grid).unsqueeze(0)
    values, _ = solve_values(tiny_physics, WEIGHTS, torch.tensor([inflow]), torch.tensor([days]), n_grid,
                             terminate_on_failure, terminal_values=terminal)
    torch.testing.assert_close(values[0, -1], terminal[0], rtol=0, atol=0)
    plain, _ = solve_values(tiny_physics, WEIGHTS, torch.tensor([inflow]), torch.tensor([days]), n_grid,
                            terminate_on_failure)
    changed = False
    for g in (150, 500, 850, 990, n_grid - 1):
        best = brute_force_best_return(tiny_physics, grid[g].item(), inflow, days, terminate_on_failure, _end_value)
        assert values[0, 0, g].item() == pytest.approx(best, abs=0.01), (case, g)
        changed |= abs(values[0, 0, g].item() - plain[0, 0, g].item()) > 0.1
    assert changed  # the terminal value matters on these cases
    with pytest.raises(ValueError, match="terminal_values"):
        solve_values(tiny_physics, WEIGHTS, torch.tensor([inflow]), torch.tensor([days]), n_grid, True,
                     terminal_values=terminal[:, :10])


def test_brute_force_cases_reach_the_interesting_regimes(tiny_physics):
    """The tiny cases are not trivial: the flood case can fail from a full reservoir, and the best choice varies."""
    inflow, days = TINY_CASES["flood"]
    assert brute_force_best_return(tiny_physics, 1500.0, inflow, days, True) < -40  # overtopping cannot be avoided
    assert brute_force_best_return(tiny_physics, 800.0, inflow, days, True) > 0
    inflow, days = TINY_CASES["dry"]
    # near dead storage the only safe choice is to release nothing (env-flow deficit every day)
    assert brute_force_best_return(tiny_physics, 152.0, inflow, days, True) == pytest.approx(-4.0, abs=1e-9)


def test_solve_values_batches_traces_independently(tiny_physics):
    inflow = torch.tensor([case[0] for case in TINY_CASES.values()])
    days = torch.tensor([case[1] for case in TINY_CASES.values()])
    batched, _ = solve_values(tiny_physics, WEIGHTS, inflow, days, 301, True)
    for b in range(3):
        single, _ = solve_values(tiny_physics, WEIGHTS, inflow[b : b + 1], days[b : b + 1], 301, True)
        torch.testing.assert_close(batched[b], single[0], rtol=0, atol=1e-12)
    with pytest.raises(ValueError, match=r"\(B, T\)"):
        solve_values(tiny_physics, WEIGHTS, inflow[0], days[0], 301, True)


def test_interpolate_on_grid(tiny_physics):
    grid = storage_grid_hm3(tiny_physics, 4)  # 150, 600, 1050, 1500
    torch.testing.assert_close(grid, torch.tensor([150.0, 600.0, 1050.0, 1500.0], dtype=F64))
    values = torch.tensor([[0.0, 3.0, 9.0, 10.0]], dtype=F64)
    at = torch.tensor([[100.0, 150.0, 375.0, 600.0, 900.0, 1500.0, 1600.0]])
    torch.testing.assert_close(interpolate_on_grid(values, at, tiny_physics),
                               torch.tensor([[0.0, 0.0, 1.5, 3.0, 7.0, 10.0, 10.0]], dtype=F64))


def test_policy_through_the_env_finds_the_best_sequence(synthetic_record):
    """PerfectForesightPolicy acting in the env (3 levels, 4-day episodes) scores the brute-force best."""
    config = EnvConfig(n_release_levels=3, horizon_days=4, initial_storage_fraction=(0.1, 1.0))
    env = DiscreteReservoirEnv(config, synthetic_record, synthetic_record.complete_water_years(), n_envs=24, seed=2)
    trajectory = run_episodes(env, make_baseline("dp", env, Config(baselines=BaselinesConfig(dp_storage_levels=1000))))
    returns = episode_returns(trajectory)
    physics = env.physics
    sequences = torch.tensor(list(itertools.product(range(3), repeat=4)))
    for i in range(env.n_envs):
        first = trajectory[i, 0]
        inflow = env.inflow_trace_hm3(first.get("record_index"), 4)
        days = env.day_of_year_trace(first.get("record_index"), 4)
        # every sequence stepped exactly as the env steps (float32), failures ending the episode
        storage = first.get("storage_hm3").expand(len(sequences))
        total = torch.zeros(len(sequences))
        alive = torch.ones(len(sequences), dtype=torch.bool)
        for t in range(4):
            out = physics.step(storage, inflow[t], sequences[:, t], days[t])
            reward = weighted_reward(config.reward, reward_components(physics, out))
            total = total + torch.where(alive, reward, torch.zeros_like(reward))
            alive = alive & ~(out.flood_failure | out.drought_failure)
            storage = out.next_storage_hm3
        best = total.max().item()
        assert returns[i].item() <= best + 1e-4
        assert returns[i].item() >= best - 0.01, (i, returns[i].item(), best)


# ------------------------------------------------------------------ upper bound of the return


def uniform_random_policy(n_actions: int, seed: int):
    generator = torch.Generator().manual_seed(seed)

    def policy(td):
        td.set("action", torch.randint(0, n_actions, td.batch_size, generator=generator))
        return td

    return policy


def returns_on_same_traces(env, config: Config, seed: int) -> dict[str, torch.Tensor]:
    """Episode return (n_envs,) of every baseline and a random policy, each from the same reset (same seed)."""
    returns, first_days = {}, {}
    policies = {name: make_baseline(name, env, config) for name in BASELINE_NAMES}
    policies["random"] = uniform_random_policy(env.n_actions, seed)
    for name, policy in policies.items():
        env.set_seed(seed)
        trajectory = run_episodes(env, policy)
        returns[name] = episode_returns(trajectory)
        first_days[name] = trajectory[:, 0].select("record_index", "storage_hm3")
    for name in policies:  # same start day and initial storage for every policy
        assert torch.equal(first_days[name].get("record_index"), first_days["dp"].get("record_index")), name
        assert torch.equal(first_days[name].get("storage_hm3"), first_days["dp"].get("storage_hm3")), name
    return returns


def test_dp_return_bounds_every_policy_on_synthetic_traces(synthetic_record):
    env = DiscreteReservoirEnv(EnvConfig(horizon_days=180), synthetic_record, synthetic_record.complete_water_years(),
                               n_envs=6, seed=0)
    # the synthetic record's last 2 water years held out (the SDP's classes come from the others)
    config = Config(inflow={"heldout_water_years": 2}, baselines={"dp_storage_levels": 200, "sdp": {"storage_levels": 60}})
    returns = returns_on_same_traces(env, config, seed=11)
    for name in returns.keys() - {"dp"}:  # every catalog baseline and a random policy
        assert (returns["dp"] >= returns[name]).all(), (name, returns["dp"], returns[name])

    # the policy scores what its value function promised from the initial storage (up to the grid error)
    env.set_seed(11)
    start = env.reset()
    n_days = env.config.horizon_days
    values, _ = solve_values(env.physics, env.config.reward, env.inflow_trace_hm3(start.get("record_index"), n_days),
                             env.day_of_year_trace(start.get("record_index"), n_days), 200, True)
    promised = interpolate_on_grid(values[:, 0], start.get("storage_hm3").view(-1, 1), env.physics).view(-1)
    torch.testing.assert_close(returns["dp"].double(), promised, rtol=0, atol=0.3)


def test_dp_return_bounds_every_policy_on_the_bundled_record(bundled_record):
    env = DiscreteReservoirEnv(inflow=bundled_record, n_envs=2, seed=0)
    returns = returns_on_same_traces(env, Config(), seed=4)  # the default 1,000-level grid
    for name in returns.keys() - {"dp"}:
        assert (returns["dp"] >= returns[name]).all(), (name, returns["dp"], returns[name])


@pytest.mark.parametrize("name", ["base.yaml", "trenton.yaml"])
def test_dp_return_bounds_every_baseline_on_the_shipped_configs(name):
    """The shipped designs (seasonal flood zone, firm-yield SOP / hedging target, rule curve with its
    environmental flow), three training-year episodes each."""
    config = load_config(Path(__file__).resolve().parents[2] / "configs" / name)
    env = make_env(config, "train", n_envs=3, seed=7)
    returns = returns_on_same_traces(env, config, seed=7)
    for baseline in [b for b in BASELINE_NAMES if b != "dp"] + ["random"]:
        assert (returns["dp"] >= returns[baseline]).all(), (baseline, returns["dp"], returns[baseline])


def brute_force_failure_free(physics, storage_hm3: float, inflow, days) -> bool:
    """Whether any of the A^T release sequences from ``storage_hm3`` has no failure, stepped exactly."""
    sequences = torch.tensor(list(itertools.product(range(physics.n_release_levels), repeat=len(inflow))))
    storage = torch.full((len(sequences),), storage_hm3, dtype=F64)
    alive = torch.ones(len(sequences), dtype=torch.bool)
    for t in range(len(inflow)):
        storage, _, failed = step_reward(physics, storage, inflow[t], sequences[:, t], days[t], True)
        alive = alive & ~failed
    return bool(alive.any())


@pytest.mark.parametrize("case", ["flood", "dry", "ordinary"])
def test_failure_free_matches_brute_force_enumeration(tiny_physics, case):
    """`failure_free` says whether some release sequence avoids every failure, as enumerating them all does,
    for storages from dead storage to capacity (except within two grid steps of where the answer changes)."""
    from reservoir_rl.baselines.dp import failure_free

    inflow, days = TINY_CASES[case]
    n_storage = 2000
    storages = torch.linspace(tiny_physics.dead_storage_hm3, tiny_physics.capacity_hm3, 241, dtype=F64)
    expected = torch.tensor([brute_force_failure_free(tiny_physics, float(s), inflow, days) for s in storages])
    found = failure_free(tiny_physics, torch.tensor([inflow] * len(storages), dtype=F64),
                         torch.tensor([days] * len(storages), dtype=F64), storages, n_storage)
    step = (tiny_physics.capacity_hm3 - tiny_physics.dead_storage_hm3) / (n_storage - 1)
    changes = storages[1:][expected[1:] != expected[:-1]]
    far = torch.ones_like(expected)
    for boundary in changes:
        far &= (storages - boundary).abs() > 2 * step + (storages[1] - storages[0])
    assert torch.equal(found[far], expected[far])
    if case == "flood":  # the case reaches both answers
        assert expected.any() and not expected.all()
