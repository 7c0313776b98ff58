"""Demonstrations from a baseline for DQfD (Hester et al. 2018; ``train.demonstrations``).

Before training, the teacher — a baseline of the catalog that does not know the future (``sop``, ``hedging``,
``rule``, ``sdp``, ``mpc``), under the env's release guard like the agent — runs ``episodes`` one-year episodes
on the training years, with the training env's inflow and flood scaling, from an env seeded with
``train.seed`` + `DEMONSTRATION_SEED_OFFSET` (never the training env's or the evaluation's stream). Its
transitions are kept apart from the replay buffer for the whole run (never overwritten), as the agent's are:
rewards shaped when ``train.sdp_potential_weight`` is set, n-step windows when ``agent.n_step`` > 1 (the last
n − 1 days of each teacher episode are then left out).

Then the agent learns from them in two ways (`reservoir_rl.agent.fused.DemonstrationMargin`):

- ``pretrain_updates`` updates on demonstrations alone before the first frame is collected;
- every later update adds ``batch_size`` demonstration transitions (drawn uniformly, with the seed's torch
  stream) to its replay batch.

On demonstration rows the loss adds the large-margin term λ·(max_a [Q(s, a) + m·(a ≠ a_E)] − Q(s, a_E)), which
makes the teacher's action the greedy one by at least the margin m unless the TD loss says otherwise. The
teacher's episodes are computed again when a run resumes: they draw nothing from the training streams and are
the same every time (deterministic baselines, a seeded env), so resume stays exact.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Optional

import torch
from tensordict import TensorDictBase
from torchrl.envs.utils import ExplorationType, set_exploration_type

from reservoir_rl.agent.dqn import SAMPLE_KEYS, TRANSITION_KEYS
from reservoir_rl.agent.fused import DemonstrationMargin
from reservoir_rl.agent.nstep import NStepTransitions
from reservoir_rl.baselines.features import build_env
from reservoir_rl.baselines.rollout import first_done_mask, run_episodes
from reservoir_rl.catalog import IMPLEMENTABLE_BASELINES, make_baseline
from reservoir_rl.config import Config
from reservoir_rl.env.inflow import InflowRecord
from reservoir_rl.env.safety import guarded
from reservoir_rl.errors import ConfigError

# The teacher's env seed is train.seed + DEMONSTRATION_SEED_OFFSET (apart from training and evaluation envs).
DEMONSTRATION_SEED_OFFSET = 2_000_029



@dataclass
class Demonstrations:
    """The teacher's transitions as plain tensors keyed like a replay sample (first dimension D) and the
    large-margin settings of the rows each update adds (``margin.rows`` = ``batch_size``)."""

    transitions: dict[Any, torch.Tensor]
    margin: DemonstrationMargin
    teacher: str

    @property
    def size(self) -> int:
        return int(self.transitions["action"].shape[0])

    def sample(self, rows: int) -> dict[Any, torch.Tensor]:
        """``rows`` transitions drawn uniformly with replacement (the global torch stream)."""
        action = self.transitions["action"]
        index = torch.randint(self.size, (rows,), device=action.device)
        return {key: value.index_select(0, index) for key, value in self.transitions.items()}

    def extend(self, sample: dict[Any, torch.Tensor], weights: Optional[torch.Tensor],
               ) -> tuple[dict[Any, torch.Tensor], Optional[torch.Tensor]]:
        """A replay sample of B rows with ``margin.rows`` demonstration rows appended (the last rows), and its
        importance weights (B,) extended with weight 1 for them (None stays None)."""
        demo = self.sample(self.margin.rows)
        merged = {key: torch.cat([value, demo[key].to(value.dtype)]) for key, value in sample.items() if key in demo}
        if weights is not None:
            weights = torch.cat([weights, torch.ones(self.margin.rows, dtype=weights.dtype, device=weights.device)])
        return merged, weights


def collect_demonstrations(
    config: Config, inflow: InflowRecord, device: torch.device | str,
    shaping: Optional[Callable[[TensorDictBase], TensorDictBase]] = None,
) -> Optional[Demonstrations]:
    """The teacher's transitions ``train.demonstrations`` asks for (see the module), or None without a teacher.

    A teacher that is not an implementable baseline is a one-line `ConfigError`. ``shaping``: the trainer's
    reward shaping (`reservoir_rl.training.shaping`), applied as to the agent's own transitions."""
    settings = config.train.demonstrations
    if settings.teacher is None:
        return None
    teacher = settings.teacher.strip().lower()
    if teacher not in IMPLEMENTABLE_BASELINES:
        raise ConfigError(
            f"train.demonstrations.teacher {settings.teacher!r}: choose a baseline that does not know the future "
            f"({', '.join(IMPLEMENTABLE_BASELINES)})"
        )
    env = build_env(config, "train", n_envs=settings.episodes, device=device,
                    seed=config.train.seed + DEMONSTRATION_SEED_OFFSET, inflow=inflow, scale_inflow=True)
    policy = guarded(make_baseline(teacher, env, config), env)
    with set_exploration_type(ExplorationType.DETERMINISTIC), torch.no_grad():
        trajectory = run_episodes(env, policy)
    valid = first_done_mask(trajectory)  # (E, T): the days of each episode, not the repeats after its end
    if shaping is not None:
        trajectory = shaping(trajectory)
    flat = NStepTransitions(config.agent.n_step, config.agent.gamma, TRANSITION_KEYS)(trajectory)
    ready = flat.shape[0] // settings.episodes
    flat = flat[valid[:, :ready].reshape(-1)]
    stored = flat.keys(True, True)
    transitions = {key: flat.get(key).clone() for key in SAMPLE_KEYS if key in stored}
    transitions["action"] = transitions["action"].reshape(-1).to(torch.int64)
    margin = DemonstrationMargin(rows=settings.batch_size, margin=settings.margin, weight=settings.margin_weight)
    return Demonstrations(transitions, margin, teacher)
