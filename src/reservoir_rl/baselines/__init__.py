"""Baseline operating policies the agent is compared with: SOP, hedging, rule curve, perfect-foresight DP,
forecast-informed MPC, stochastic DP; the firm yield SOP and hedging aim at.

Every baseline is a policy ``policy(tensordict) -> tensordict`` that writes ``action`` (int64 release
level, (n_envs,)) from the env's root keys, so ``env.rollout(policy=...)`` and `run_episodes` work.
Which baselines exist, their labels and how each is built from the config: `reservoir_rl.catalog`.
"""

from __future__ import annotations

from reservoir_rl.baselines.dp import PerfectForesightPolicy, solve_values
from reservoir_rl.baselines.firm_yield import firm_yield_hm3, training_firm_yield_hm3
from reservoir_rl.baselines.mpc import ForecastMPCPolicy, decode_forecast_hm3
from reservoir_rl.baselines.rollout import episode_returns, run_episodes
from reservoir_rl.baselines.rules import (
    HedgingPolicy,
    RuleCurvePolicy,
    StandardOperatingPolicy,
    target_release_hm3,
    target_warning,
)
from reservoir_rl.baselines.sdp import SDPSolution, StochasticDPPolicy, sdp_solution, solve_sdp

__all__ = [
    "ForecastMPCPolicy",
    "HedgingPolicy",
    "PerfectForesightPolicy",
    "RuleCurvePolicy",
    "SDPSolution",
    "StandardOperatingPolicy",
    "decode_forecast_hm3",
    "StochasticDPPolicy",
    "episode_returns",
    "firm_yield_hm3",
    "run_episodes",
    "sdp_solution",
    "solve_sdp",
    "solve_values",
    "target_release_hm3",
    "target_warning",
    "training_firm_yield_hm3",
]
