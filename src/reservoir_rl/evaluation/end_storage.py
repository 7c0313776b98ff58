"""Scores without the end-of-episode artifact: each episode's end-storage value added to its metrics.

``end_storage_value`` and ``return_end_valued`` (return + end-storage value) are defined in
`reservoir_rl.baselines.end_value`: the storage left after the episode's last day valued with the SDP value
function of the training years, relative to the storage the episode started from; no future after a failure
that ended the episode.
"""

from __future__ import annotations

from typing import Iterable, Optional

import torch

from reservoir_rl.baselines.end_value import EndStorageValue
from reservoir_rl.baselines.sdp import sdp_solution
from reservoir_rl.config import Config
from reservoir_rl.env.reservoir_env import DiscreteReservoirEnv
from reservoir_rl.errors import ConfigError
from reservoir_rl.evaluation.rollout import EvaluationResult

END_VALUE_METRICS = ("end_storage_value", "return_end_valued")


def add_end_storage_value(result: EvaluationResult, end_value: EndStorageValue) -> None:
    """Add ``end_storage_value`` and ``return_end_valued`` (float64, (episodes,)) to ``result.metrics``.

    The trajectory's last entry holds each episode's last real day (`run_episodes` repeats it after a done),
    so its ``("next", "storage_hm3")`` is the storage left and its ``("next", "terminated")`` says whether
    the env ended the episode on a failure.
    """
    trajectory = result.trajectory
    start = trajectory.get("record_index")[:, 0]
    initial = trajectory.get("storage_hm3")[:, 0]
    final = trajectory.get(("next", "storage_hm3"))[:, -1]
    alive = ~trajectory.get(("next", "terminated"))[:, -1].reshape(-1)
    value = end_value.episode_values(start, initial, final, alive)
    result.metrics["end_storage_value"] = value
    result.metrics["return_end_valued"] = result.metrics["return"].to(torch.float64) + value


def missing_end_storage_value(result: EvaluationResult) -> None:
    """NaN end-storage metrics, for when the SDP that values the storage cannot be solved for the config."""
    nan = torch.full_like(result.metrics["return"], float("nan"), dtype=torch.float64)
    result.metrics["end_storage_value"] = nan
    result.metrics["return_end_valued"] = nan.clone()


def value_end_storage(env: DiscreteReservoirEnv, config: Config, results: Iterable[EvaluationResult]) -> Optional[str]:
    """Add the end-storage metrics to every result of a paired evaluation on ``env``; a config whose SDP cannot
    be solved leaves them NaN and returns a one-line note saying why (else None)."""
    try:
        end_value = EndStorageValue(env, sdp_solution(env, config))
    except ConfigError as error:
        for result in results:
            missing_end_storage_value(result)
        return f"end-storage value not computed ({error})"
    for result in results:
        add_end_storage_value(result, end_value)
    return None
