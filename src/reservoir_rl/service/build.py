"""Factories that turn a validated config into the pieces of a run (one place for every command)."""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass

import numpy as np
import torch
from torchrl.collectors import Collector

from reservoir_rl.agent.dqn import DQNAgent, make_agent
from reservoir_rl.agent.replay import make_replay_buffer
from reservoir_rl.config import Config
from reservoir_rl.env.inflow import InflowRecord
from reservoir_rl.env.reservoir_env import DiscreteReservoirEnv, make_env
from reservoir_rl.env.sources import load_inflow
from reservoir_rl.errors import UserError

EVAL_SEED_OFFSET = 1_000_003  # the held-out evaluation env never shares the training env's random stream


def resolve_device(device: str) -> torch.device:
    if device == "cuda" and not torch.cuda.is_available():
        raise UserError("--device cuda: no CUDA device is available on this machine")
    return torch.device(device)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


@dataclass
class TrainingParts:
    """Everything a training run steps: env, agent, replay buffer, collector, held-out eval env."""

    config: Config
    device: torch.device
    inflow: InflowRecord
    env: DiscreteReservoirEnv
    eval_env: DiscreteReservoirEnv
    agent: DQNAgent
    replay_buffer: object
    collector: Collector

    @property
    def eval_seed(self) -> int:
        return self.config.train.seed + EVAL_SEED_OFFSET


def build_training(config: Config, device: torch.device) -> TrainingParts:
    """Seed every generator from ``train.seed`` and build the run's pieces in a fixed order."""
    train = config.train
    if train.frames_per_batch % train.n_envs:
        raise UserError(
            f"train.frames_per_batch ({train.frames_per_batch}) must be a multiple of train.n_envs ({train.n_envs})"
        )
    logging.getLogger("torchrl").setLevel(logging.WARNING)  # no storage-allocation INFO lines mid-display
    seed_everything(train.seed)
    inflow = load_inflow(config.inflow)
    env = make_env(config, "train", n_envs=train.n_envs, device=device, seed=train.seed, inflow=inflow)
    eval_env = make_env(
        config, "heldout", n_envs=train.eval_episodes, device=device, seed=train.seed + EVAL_SEED_OFFSET, inflow=inflow
    )
    agent = make_agent(env.observation_size, env.action_spec, config.agent, train, device=device)
    replay_buffer = make_replay_buffer(train, device=device)
    collector = Collector(
        env,
        agent.explore_policy,
        frames_per_batch=train.frames_per_batch,
        total_frames=-1,
        device=device,
        track_traj_ids=False,
        # the policy reads only "observation": it needs no env transform (InitTracker, primers)
        auto_register_policy_transforms=False,
    )
    return TrainingParts(config, device, inflow, env, eval_env, agent, replay_buffer, collector)
