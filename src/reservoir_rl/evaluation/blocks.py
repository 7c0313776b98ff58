"""K seeds' validation evaluations as one rollout: a `BlockedReservoirEnv` whose block k is seed k's
validation env, one policy call per day for all K × ``train.eval_episodes`` episodes.

Block k's result is what `evaluate_policy` returns on seed k's own validation env: the env's blocks are
reseeded as `evaluate_policy` seeds its env, and block k's trajectory is cut at the day its own episodes
were all done (where the rollout of its own env stops), so its metrics are computed on the same numbers
(`tests/evaluation/test_evaluate_blocks.py` checks them bitwise).
"""

from __future__ import annotations

from typing import Any, Sequence

import torch
from torchrl.envs.utils import ExplorationType, set_exploration_type

from reservoir_rl.baselines.rollout import run_episodes
from reservoir_rl.catalog import RAW_RETURN_BASELINES, make_baseline
from reservoir_rl.config import Config
from reservoir_rl.env.blocks import BlockedReservoirEnv
from reservoir_rl.env.metrics import first_done_mask
from reservoir_rl.evaluation.rollout import EvaluationResult, evaluation_result


def block_results(env: BlockedReservoirEnv, trajectory) -> list[EvaluationResult]:
    """Each block's `EvaluationResult` from a trajectory of ``env`` (``run_episodes``), each block's rows cut
    at the day its last episode ended."""
    done = trajectory.get(("next", "done")).reshape(*trajectory.batch_size)
    # a block's own rollout stops after the first day on which every one of its episodes has been done
    ended = ~first_done_mask(done)  # (n, T): after each episode's first done
    results = []
    for k in range(env.n_blocks):
        rows = env.block(k)
        finished = (ended[rows] | done[rows]).all(0)  # (T,): every episode of the block done by that day
        days = int(finished.to(torch.int64).argmax()) + 1 if bool(finished.any()) else done.shape[1]
        results.append(evaluation_result(trajectory[rows, :days], env.config))
    return results


@torch.no_grad()
def evaluate_blocks(env: BlockedReservoirEnv, policy: Any) -> list[EvaluationResult]:
    """`evaluate_policy` of every block: block k's episodes from a reset of its generator seeded with its
    seed, greedy; ``policy`` acts on all K × block_size envs at once."""
    env.reseed()
    with set_exploration_type(ExplorationType.DETERMINISTIC):
        trajectory = run_episodes(env, policy)
    return block_results(env, trajectory)


def blocked_baseline_returns(env: BlockedReservoirEnv, config: Config,
                             names: Sequence[str] = RAW_RETURN_BASELINES) -> list[dict[str, float]]:
    """`baseline_returns` of every block (one dict per block): each baseline set up once for the whole env
    and rolled out on all its episodes at once."""
    per_block: list[dict[str, float]] = [{} for _ in range(env.n_blocks)]
    for name in names:
        for k, result in enumerate(evaluate_blocks(env, make_baseline(name, env, config))):
            per_block[k][name] = result.mean("return")
    return per_block
