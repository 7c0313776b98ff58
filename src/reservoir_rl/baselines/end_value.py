"""The value of the storage an episode leaves behind: scores without the end-of-episode artifact.

Episodes stop after ``env.horizon_days``; a policy that knows it (the perfect-foresight DP) draws the
reservoir down in the last weeks, which no continuing operation would do. To judge policies as a continuing
operation is judged, the water left at the end is valued with the stochastic DP's value function of the
training years (`reservoir_rl.baselines.sdp`): on the day of year d_end after the episode's last day,
averaged over that day's inflow classes with their frequencies (today's class beyond the episode is not
known; `SDPSolution.mean_value`), written V̄(d_end, S). It is the discounted return (per day discount γ of the
SDP, ``agent.gamma`` by default) an SDP operator would earn from storage S on; the differences between
storages are what matter (they measure what the stored water is worth downstream of the horizon).

An episode's end-storage value is V̄(d_end, S_end) − V̄(d_end, S_0): the value of the storage left, relative
to the same day with the storage the episode started from (S_0, the same for every policy on a paired
episode, so paired differences and gap shares do not depend on this reference). An episode the env ended on
a failure has no future (as in the DPs): its value is −V̄(d_end, S_0). "Return + end-storage value" is the
episode's return plus that value; `PerfectForesightPolicy` with ``end_value=EndStorageValue(…)`` maximises it.
Volumes hm³; values float64 in return points.
"""

from __future__ import annotations

import torch

from reservoir_rl.baselines.inflow_classes import YEAR_DAYS
from reservoir_rl.baselines.sdp import SDPSolution
from reservoir_rl.env.reservoir_env import DiscreteReservoirEnv


class EndStorageValue:
    """V̄(d_end, S) for episodes of ``env`` by their start index: ``end_value(start_index (n,), storage_hm3
    (n, K)) -> (n, K)`` float64, d_end the calendar day after the episode's ``horizon_days`` (the record's
    next day; past the record's end, the day after its last day)."""

    def __init__(self, env: DiscreteReservoirEnv, solution: SDPSolution) -> None:
        self.env = env
        self.solution = solution
        self.horizon_days = env.config.horizon_days

    def day_after_episode(self, start_index: torch.Tensor) -> torch.Tensor:
        """Calendar day (0 … 365, int64) after the last day of the episodes starting at ``start_index`` (n,)."""
        last_index = self.env.inflow.n_days - 1
        last_day = (start_index + self.horizon_days - 1).clamp(max=last_index)
        following = (last_day + 1).clamp(max=last_index)
        day = self.env.day_of_year_trace(following, 1).reshape(-1)
        beyond = self.env.day_of_year_trace(last_day, 1).reshape(-1).add(1).remainder(YEAR_DAYS)
        return torch.where(last_day + 1 <= last_index, day, beyond)

    def __call__(self, start_index: torch.Tensor, storage_hm3: torch.Tensor) -> torch.Tensor:
        day = self.day_after_episode(start_index.reshape(-1)).to(self.solution.values.device)
        return self.solution.mean_value(day, storage_hm3).to(storage_hm3.device)

    def episode_values(self, start_index: torch.Tensor, initial_storage_hm3: torch.Tensor,
                       final_storage_hm3: torch.Tensor, alive: torch.Tensor) -> torch.Tensor:
        """End-storage value of each episode (see the module): [alive] · V̄(d_end, S_end) − V̄(d_end, S_0).

        All arguments (n,): start index (int64), storage at the start and after the last simulated day (hm³),
        and whether the episode has a future (False when the env ended it on a failure). Returns (n,) float64.
        """
        storages = torch.stack([final_storage_hm3, initial_storage_hm3], dim=-1).to(torch.float64)
        values = self(start_index, storages)
        return torch.where(alive.to(values.device), values[:, 0], torch.zeros_like(values[:, 0])) - values[:, 1]
