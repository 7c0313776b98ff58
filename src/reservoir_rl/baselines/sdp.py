"""Stochastic dynamic programming (Stedinger, Sule & Loucks 1984; R ``reservoir::sdp_hydro``): the classic
optimal operating policy without foresight.

State: storage on a uniform grid dead … capacity (G levels), the day of the year (0 … 365) and today's
inflow class c (quantile classes of the training years' inflow per period of the year, with lag-one
Markov transitions between them: `reservoir_rl.baselines.inflow_classes`). Today's inflow is known when
the release is chosen (as SOP knows it); tomorrow's class is not. With I_{p,c} the representative inflow
of class c in day d's period p, r and s' from `ReservoirPhysics.step` and `weighted_reward` (evaporation,
the seasonal flood zone and demand on day d; spill and failures included) and γ the discount:

    V[d, c, s] = max_a  r(s, I_{p,c}, a, d) + γ · [not failed] · Σ_{c'} P[p, c, c'] · V[d + 1, c', s']

with s' = s'(s, I_{p,c}, a, d).

V at s' is linearly interpolated on the grid; a failing transition has no future value when the env
terminates on failure (as in `reservoir_rl.baselines.dp`). The objective is the DISCOUNTED infinite-horizon
return with the agent's γ (``agent.gamma``, or ``baselines.sdp.discount``): the agent is trained on that
very objective, so the SDP's policy is the optimal one, for the objective the agent optimises, among the
policies that know storage, day and today's inflow class. (An average-reward criterion would ignore
the termination on failure — the lost future that makes a failure cost more than its penalty — and
would answer a different question than the one the agent is trained on.) Value iteration sweeps the 365
days of the annual cycle backwards (day 364 continues into day 0) until the greedy actions on the grid
stop changing over a whole cycle and no value changes by ``tolerance`` or more; day 365 (31 December of
a leap year) is then backed up once from day 0.

The policy (`StochasticDPPolicy`) acts on today's storage, day of year and TRUE inflow: it chooses
argmax_a r(S, I, a, d) + γ·[not failed]·Σ_{c'} P[p, c(I), c'] V[d + 1, c', S'] at the exact storage S,
as `PerfectForesightPolicy` does with its known future. Values are float64; volumes hm³, inflows hm³/day.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from dataclasses import dataclass
from typing import Iterator, Optional

import numpy as np
import torch
from tensordict import TensorDictBase

from reservoir_rl.baselines.dp import (
    CHUNK_ELEMENTS,
    VALUE_DTYPE,
    grid_position,
    interpolate_on_grid,
    storage_grid_hm3,
    transition,
)
from reservoir_rl.baselines.inflow_classes import CALENDAR_DAYS, YEAR_DAYS, InflowClasses, estimate_inflow_classes
from reservoir_rl.config import Config, EnvConfig, RewardConfig
from reservoir_rl.env.inflow import InflowRecord, split_validation, split_water_years
from reservoir_rl.env.physics import ReservoirPhysics
from reservoir_rl.env.reservoir_env import DiscreteReservoirEnv
from reservoir_rl.errors import ConfigError

TABLE_BYTES_PER_ELEMENT = 20  # reward (float64), lower grid level (int32), weight (float64)
KEEP_TABLE_BYTES = 512 << 20  # tables of all 366 days kept between sweeps up to this size (default grid: 113 MB)


@dataclass(frozen=True, eq=False)  # tensors inside: compared by identity
class SDPSolution:
    """The solved SDP: values on the grid for every day of year and inflow class, and the classes.

    Attributes:
        physics: the reservoir the values belong to (for interpolation on the grid).
        classes: inflow classes and transitions (`InflowClasses`, P periods × C classes).
        storage_grid_hm3: (G,) float64 uniform grid dead … capacity, hm³.
        values: (366, C, G) float64; ``values[d, c, g]``: discounted value at the start of day of year d
            in inflow class c (of d's period) at storage ``storage_grid_hm3[g]``.
        gamma: the discount per day.
        sweeps: annual sweeps value iteration made.
        value_change: largest |ΔV| over the last sweep (below the tolerance when solved).
    """

    physics: ReservoirPhysics
    classes: InflowClasses
    storage_grid_hm3: torch.Tensor
    values: torch.Tensor
    gamma: float
    sweeps: int
    value_change: float

    @property
    def class_edges_hm3(self) -> torch.Tensor:
        """(P, C − 1) class edges per period, hm³/day."""
        return self.classes.edges_hm3

    @property
    def transitions(self) -> torch.Tensor:
        """(P, C, C) class transition probabilities, today's period's row → tomorrow's class."""
        return self.classes.transitions

    def classify(self, day_of_year: torch.Tensor, inflow_hm3: torch.Tensor) -> torch.Tensor:
        """Inflow class (int64) of each inflow (hm³/day) on its day of year; both of one shape."""
        return self.classes.classify(day_of_year, inflow_hm3)

    def _interpolate(self, grid_values: torch.Tensor, storage_hm3: torch.Tensor) -> torch.Tensor:
        return interpolate_on_grid(grid_values, storage_hm3.to(VALUE_DTYPE), self.physics)

    def value_at(self, day_of_year: torch.Tensor, class_index: torch.Tensor, storage_hm3: torch.Tensor) -> torch.Tensor:
        """V[d, c] at storages: ``day_of_year`` and ``class_index`` int64 (B,), ``storage_hm3`` (B, K)
        hm³ → (B, K) float64 (storages outside dead … capacity take the end values)."""
        values = self.values.to(storage_hm3.device)
        return self._interpolate(values[day_of_year, class_index], storage_hm3)

    def mean_value(self, day_of_year: torch.Tensor, storage_hm3: torch.Tensor) -> torch.Tensor:
        """Σ_c marginal[p(d), c] · V[d, c] at storages, for when the day's class is unknown (e.g. a
        terminal value): ``day_of_year`` int64 (B,), ``storage_hm3`` (B, K) hm³ → (B, K) float64."""
        values = self.values.to(storage_hm3.device)
        period = self.classes.period_of_day.to(storage_hm3.device)[day_of_year]
        weights = self.classes.marginal.to(storage_hm3.device)[period]  # (B, C)
        return self._interpolate(torch.einsum("bc,bcg->bg", weights, values[day_of_year]), storage_hm3)

    def continuation_on_grid(
        self, day_of_year: torch.Tensor, class_index: torch.Tensor, next_day_of_year: Optional[torch.Tensor] = None
    ) -> torch.Tensor:
        """E over tomorrow's class of V[tomorrow] on the grid, given today's day and class: (B, G) float64.

        ``day_of_year``, ``class_index`` int64 (B,); ``next_day_of_year`` int64 (B,), default the next
        day of the 365-day cycle (day 364 → 0; pass the record's tomorrow to reach day 365 of leap years).
        """
        device = self.values.device
        day_of_year, class_index = day_of_year.to(device), class_index.to(device)
        if next_day_of_year is None:
            next_day_of_year = torch.where(day_of_year >= YEAR_DAYS - 1, 0, day_of_year + 1)
        rows = self.classes.transitions[self.classes.period_of_day[day_of_year], class_index]  # (B, C)
        return torch.einsum("bc,bcg->bg", rows, self.values[next_day_of_year.to(device)])

    def expected_next_value(
        self,
        day_of_year: torch.Tensor,
        class_index: torch.Tensor,
        storage_hm3: torch.Tensor,
        next_day_of_year: Optional[torch.Tensor] = None,
    ) -> torch.Tensor:
        """Σ_{c'} P[p(d), c, c'] V[d + 1, c'] at storages (B, K) hm³ → (B, K) float64 (see
        `continuation_on_grid` for the arguments)."""
        grid_values = self.continuation_on_grid(day_of_year, class_index, next_day_of_year)
        return self._interpolate(grid_values.to(storage_hm3.device), storage_hm3)


class _Sweep:
    """The day-by-day backup of value iteration; rewards and next-storage grid positions of every
    (day, class, storage level, release level) do not depend on the values, so they are computed once per
    chunk of days and kept for the later sweeps while they fit in ``keep_bytes``."""

    def __init__(
        self,
        physics: ReservoirPhysics,
        reward_weights: RewardConfig,
        classes: InflowClasses,
        grid: torch.Tensor,
        gamma: float,
        terminate_on_failure: bool,
        keep_bytes: int,
    ) -> None:
        self.physics, self.reward_weights, self.classes = physics, reward_weights, classes
        self.grid, self.gamma, self.terminate_on_failure = grid, gamma, terminate_on_failure
        n_classes, n_storage = classes.n_classes, len(grid)
        per_day = n_classes * n_storage * physics.n_release_levels
        self.chunk_days = max(1, CHUNK_ELEMENTS // per_day)
        self.keep = per_day * CALENDAR_DAYS * TABLE_BYTES_PER_ELEMENT <= keep_bytes
        self._tables: dict[int, tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = {}
        # E over tomorrow's class on the grid, plus two zero levels a failed transition points to
        self._continuation = torch.zeros(n_classes, n_storage + 2, dtype=VALUE_DTYPE)

    def _chunk_tables(self, first_day: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Reward (k, C, G, A) float64, lower grid level of s' (int32; G = no future: failed) and its
        weight (float64) for the days first_day … first_day + k − 1."""
        tables = self._tables.get(first_day)
        if tables is not None:
            return tables
        n_storage = len(self.grid)
        day = torch.arange(first_day, min(first_day + self.chunk_days, CALENDAR_DAYS))
        inflow = self.classes.inflow_hm3[self.classes.period_of_day[day]]  # (k, C)
        reward, next_storage, alive = transition(
            self.physics, self.reward_weights, self.grid.view(1, 1, -1, 1), inflow[:, :, None, None],
            day.view(-1, 1, 1, 1), self.terminate_on_failure,
        )
        lower, weight = grid_position(next_storage, self.physics, n_storage)
        tables = (reward, torch.where(alive, lower, n_storage).to(torch.int32), weight)
        if self.keep:
            self._tables[first_day] = tables
        return tables

    def backup(self, values: torch.Tensor, day: int, next_day: int) -> torch.Tensor:
        """values[day] ← the backup from values[next_day]; returns the greedy release levels (C, G)."""
        first_day = day - day % self.chunk_days
        reward, lower, weight = (table[day - first_day] for table in self._chunk_tables(first_day))
        n_classes, n_storage = values.shape[1], values.shape[2]
        rows = self.classes.transitions[self.classes.period_of_day[day]]  # (C, C)
        torch.matmul(rows, values[next_day], out=self._continuation[:, :n_storage])
        flat_lower = lower.reshape(n_classes, -1).long()
        low = self._continuation.gather(1, flat_lower).view(lower.shape)
        high = self._continuation.gather(1, flat_lower + 1).view(lower.shape)
        q = torch.add(reward, low.lerp_(high, weight), alpha=self.gamma)  # r + γ · (low + w · (high − low))
        best, action = q.max(dim=-1)
        values[day] = best
        return action


@contextlib.contextmanager
def _one_thread() -> Iterator[None]:
    """Run the block on one torch thread, restoring the previous count afterwards."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def value_iteration(
    physics: ReservoirPhysics,
    reward_weights: RewardConfig,
    classes: InflowClasses,
    n_storage: int,
    gamma: float,
    terminate_on_failure: bool,
    tolerance: float = 1e-4,
    max_sweeps: int = 200,
    keep_bytes: int = KEEP_TABLE_BYTES,
) -> SDPSolution:
    """Solve the SDP of given inflow classes by value iteration over the annual cycle (see the module).

    Stops after the first sweep in which no greedy action on the grid changed and no value changed by
    ``tolerance`` or more; a ValueError when ``max_sweeps`` sweeps do not get there. ``keep_bytes``: memory
    the per-day reward and grid-position tables may take to be reused by later sweeps (else recomputed).
    """
    if not 0.0 < gamma < 1.0:
        raise ValueError(f"the SDP's discount must lie in (0, 1), got {gamma}")
    with _one_thread():  # a day's tensors are small: more threads only add waiting (see benchmarks/README.md)
        grid = storage_grid_hm3(physics, n_storage)
        sweep = _Sweep(physics, reward_weights, classes, grid, gamma, terminate_on_failure, keep_bytes)
        values = torch.zeros(CALENDAR_DAYS, classes.n_classes, n_storage, dtype=VALUE_DTYPE)
        actions = torch.zeros(YEAR_DAYS, classes.n_classes, n_storage, dtype=torch.int64)
        for sweep_index in range(1, max_sweeps + 1):
            change, stable = 0.0, True
            for day in range(YEAR_DAYS - 1, -1, -1):  # day 364 continues into day 0 of the next year
                before = values[day].clone()
                action = sweep.backup(values, day, day + 1 if day < YEAR_DAYS - 1 else 0)
                change = max(change, float((values[day] - before).abs().max()))
                stable = stable and torch.equal(action, actions[day])
                actions[day] = action
            if stable and change < tolerance and sweep_index > 1:
                break
            if sweep_index == 1:  # first guess of next year's value: this year's return repeated, discounted
                values[0] /= 1.0 - gamma ** YEAR_DAYS
        else:
            raise ValueError(f"value iteration did not converge in {max_sweeps} annual sweeps (last value change "
                             f"{change:.3g}, tolerance {tolerance:g}); raise max_sweeps or tolerance")
        sweep.backup(values, YEAR_DAYS, 0)  # 31 December of leap years, into 1 January
        return SDPSolution(physics, classes, grid, values, float(gamma), sweep_index, change)


def solve_sdp(
    physics: ReservoirPhysics,
    reward_weights: RewardConfig,
    record_inflow_hm3: np.ndarray,
    record_day_of_year: np.ndarray,
    train_mask: np.ndarray,
    *,
    n_classes: int,
    period_days: int,
    n_storage: int,
    gamma: float,
    terminate_on_failure: bool,
    tolerance: float = 1e-4,
    max_sweeps: int = 200,
) -> SDPSolution:
    """Estimate the inflow classes from the training days (``train_mask``, bool (T,)) of a record
    (``record_inflow_hm3`` (T,) hm³/day, ``record_day_of_year`` (T,)) and solve the SDP on them."""
    classes = estimate_inflow_classes(record_inflow_hm3, record_day_of_year, train_mask, n_classes, period_days)
    return value_iteration(physics, reward_weights, classes, n_storage, gamma, terminate_on_failure, tolerance,
                           max_sweeps)


# ------------------------------------------------------------------ from a config, cached


def training_mask(record: InflowRecord, config: Config) -> np.ndarray:
    """Bool (T,): the record's days in the years the agent trains on — the complete water years left
    after holding out ``inflow.heldout_water_years`` and taking out ``inflow.validation_water_years`` (as
    `make_env` splits them). The SDP's classes and transitions are estimated from these days only."""
    train_years, _ = split_water_years(record, config.inflow.heldout_water_years)
    fit_years, _ = split_validation(record, train_years, config.inflow.validation_water_years)
    return np.isin(record.water_years, np.asarray(fit_years, dtype=np.int64))


def sdp_discount(config: Config) -> float:
    """The SDP's discount per day: ``baselines.sdp.discount``, else ``agent.gamma`` (must be < 1)."""
    discount = config.baselines.sdp.discount
    if discount is None:
        discount = config.agent.gamma
        if discount >= 1.0:
            raise ConfigError("baselines.sdp.discount: agent.gamma is 1, and the SDP's infinite-horizon value needs a "
                              "discount below 1; set baselines.sdp.discount (e.g. 0.99)")
    return float(discount)


_SOLUTIONS: dict[str, SDPSolution] = {}  # sha256 key → solution, most recent last
MAX_CACHED_SOLUTIONS = 8  # ~6 MB of values each on the default grid


def solution_key(env: DiscreteReservoirEnv, config: Config) -> str:
    """sha256 of what the solution depends on: the env's reservoir, reward weights, release levels and
    failure termination, ``baselines.sdp``, the discount, and the training days' inflows and calendar days
    (not the env's horizon, forecast or water years: envs of any split share one solution)."""
    return _solution_key(env.config, env.inflow, config)


def _solution_key(env_config: EnvConfig, record: InflowRecord, config: Config) -> str:
    mask = training_mask(record, config)
    digest = hashlib.sha256()
    digest.update(json.dumps({
        "env": env_config.model_dump(mode="json", include={"reservoir", "reward", "n_release_levels",
                                                           "terminate_on_failure"}),
        "sdp": config.baselines.sdp.model_dump(mode="json"),
        "discount": sdp_discount(config),
    }, sort_keys=True).encode())
    for array in (np.flatnonzero(mask), record.inflow_hm3()[mask], record.day_of_year[mask]):
        digest.update(np.ascontiguousarray(array).tobytes())
    return digest.hexdigest()


def sdp_solution(env: DiscreteReservoirEnv, config: Config) -> SDPSolution:
    """The SDP of ``env``'s reservoir and record under ``config`` (``baselines.sdp``, the discount and the
    training years of ``inflow``), solved once per process: later calls with the same inputs (see
    `solution_key`) return the same object. A setting the record cannot support is a `ConfigError`."""
    return _cached_solution(env.physics, env.config, env.inflow, config)


def sdp_solution_of(config: Config, record: InflowRecord) -> SDPSolution:
    """`sdp_solution` of the env ``config`` builds on ``record`` (``config.env``), without building one: the
    same cached object (the observation feature ``sdp_release_fraction`` is made before its env)."""
    return _cached_solution(ReservoirPhysics(config.env.reservoir, config.env.n_release_levels), config.env,
                            record, config)


def _cached_solution(physics: ReservoirPhysics, env_config: EnvConfig, record: InflowRecord,
                     config: Config) -> SDPSolution:
    key = _solution_key(env_config, record, config)
    solution = _SOLUTIONS.pop(key, None)
    if solution is None:
        sdp = config.baselines.sdp
        try:
            solution = solve_sdp(
                physics, env_config.reward, record.inflow_hm3(), record.day_of_year, training_mask(record, config),
                n_classes=sdp.inflow_classes, period_days=sdp.period_days, n_storage=sdp.storage_levels,
                gamma=sdp_discount(config), terminate_on_failure=env_config.terminate_on_failure,
                tolerance=sdp.tolerance, max_sweeps=sdp.max_sweeps,
            )
        except ValueError as error:
            raise ConfigError(f"baselines.sdp: {error}") from None
    _SOLUTIONS[key] = solution
    while len(_SOLUTIONS) > MAX_CACHED_SOLUTIONS:
        del _SOLUTIONS[next(iter(_SOLUTIONS))]
    return solution


def clear_sdp_cache() -> None:
    """Forget every solved SDP (benchmarks time the solve with it)."""
    _SOLUTIONS.clear()


def greedy_action_values(
    solution: SDPSolution,
    env_config: EnvConfig,
    day_of_year: torch.Tensor,
    next_day_of_year: torch.Tensor,
    storage_hm3: torch.Tensor,
    inflow_hm3: torch.Tensor,
) -> torch.Tensor:
    """What the SDP's policy maximises, for every release level: r(S, I, a, d) + γ·[not failed]·
    Σ_{c'} P[p(d), c(I), c'] V[d', c', S'] with today's class c(I) from the inflow I itself, at the exact
    storage S; (n, A) float64.

    ``day_of_year`` d and ``next_day_of_year`` d' int64 (n,) (d' the record's next calendar day);
    ``storage_hm3`` (n,) hm³; ``inflow_hm3`` (n,) hm³/day: today's true inflow for `StochasticDPPolicy`,
    the observed lead-1 forecast for the observation feature (`reservoir_rl.baselines.features`).
    ``env_config``: the reward weights and failure termination of the env the solution was solved for.
    """
    inflow = inflow_hm3.reshape(-1).to(VALUE_DTYPE)
    day = day_of_year.reshape(-1)
    continuation = solution.continuation_on_grid(day, solution.classify(day, inflow), next_day_of_year.reshape(-1))
    reward, next_storage, alive = transition(
        solution.physics, env_config.reward, storage_hm3.reshape(-1, 1).to(VALUE_DTYPE), inflow.reshape(-1, 1),
        day.reshape(-1, 1), env_config.terminate_on_failure,
    )  # (n, A)
    future = interpolate_on_grid(continuation.to(next_storage.device), next_storage, solution.physics)
    return reward + solution.gamma * torch.where(alive, future, torch.zeros_like(future))


class StochasticDPPolicy:
    """The SDP's policy (see the module): knows today's storage, day of year and true inflow.

    Each day: today's class c from today's true inflow I (the classes of the day's period); then the
    release level maximising r(S, I, a, d) + γ·[not failed]·Σ_{c'} P[p(d), c, c'] V[d + 1, c', S'] at the
    exact storage S, V interpolated on the grid, d + 1 the record's next calendar day. Interface:
    ``policy(tensordict) -> tensordict`` writing ``action`` (int64, (n_envs,)); ``solution`` is the
    cached `SDPSolution` (`sdp_solution`).
    """

    def __init__(self, env: DiscreteReservoirEnv, config: Config) -> None:
        self.env = env
        self.solution = sdp_solution(env, config)
        self._last_index = env.inflow.n_days - 1

    def action_values(self, tensordict: TensorDictBase) -> torch.Tensor:
        """r(S, I, a, d) + γ·[not failed]·E[V[d + 1](S')] of every release level: (n_envs, A) float64."""
        env = self.env
        record_index = tensordict.get("record_index").reshape(-1)
        inflow = env.inflow_hm3_at(record_index)
        tomorrow = env.day_of_year_trace((record_index + 1).clamp(max=self._last_index), 1).reshape(-1)
        return greedy_action_values(self.solution, env.config, tensordict.get("day_of_year").reshape(-1), tomorrow,
                                    tensordict.get("storage_hm3").reshape(-1), inflow)

    def __call__(self, tensordict: TensorDictBase) -> TensorDictBase:
        tensordict.set("action", self.action_values(tensordict).argmax(dim=-1).reshape(tensordict.batch_size))
        return tensordict
