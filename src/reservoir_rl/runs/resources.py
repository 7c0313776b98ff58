"""Memory estimates made from the config before any work starts, checked against the memory available.

A replay buffer of ``train.buffer_size`` transitions, a collector batch of ``train.frames_per_batch`` env
steps and an evaluation of N episodes (every policy's trajectory kept for the paired statistics) are
allocated as tensors; one too large for the machine used to end in an allocation traceback (or the kernel's
OOM killer) after the run folder existed. `check_memory` refuses it first, in one line with the estimate
and the memory available. Estimates count the tensors' bytes only (Python and library overheads come on top).
"""

from __future__ import annotations

import os
from typing import Optional

from reservoir_rl.agent.dqn import TRANSITION_KEYS
from reservoir_rl.config import Config
from reservoir_rl.env.reservoir_env import FAILURE_FLAGS, STEP_QUANTITIES
from reservoir_rl.env.reward import COMPONENTS
from reservoir_rl.errors import UserError

FLOAT_BYTES, INDEX_BYTES, FLAG_BYTES = 4, 8, 1  # float32 values, int64 indices / actions, bool flags
SAMPLER_BYTES_PER_SLOT = 16  # prioritized replay: the sum and min trees, one float64 per slot each


def observation_size(config: Config) -> int:
    """Features of one observation (`DiscreteReservoirEnv.observation_size`): storage, season (2), forecast, extras."""
    return 3 + config.env.forecast.lead_days + len(config.env.extra_features)


def step_bytes(config: Config) -> int:
    """Bytes one env step takes in a collected batch or an evaluation trajectory: the env's state keys now
    and next (observation, storage, record index, day, step quantities, failure flags, reward components),
    the action, the Q-values the policy writes, the reward and the done / terminated / truncated flags."""
    state = (FLOAT_BYTES * (observation_size(config) + 1 + len(STEP_QUANTITIES) + len(COMPONENTS))
             + 2 * INDEX_BYTES + FLAG_BYTES * len(FAILURE_FLAGS))
    flags = 3 * FLAG_BYTES
    return 2 * (state + flags) + INDEX_BYTES + FLOAT_BYTES * (config.env.n_release_levels + 1)


def transition_bytes(config: Config) -> int:
    """Bytes of one stored transition (`TRANSITION_KEYS`: observation, action, next observation, reward,
    done, terminated, and the n-step distance)."""
    observations = sum(1 for key in TRANSITION_KEYS if key in ("observation", ("next", "observation")))
    return observations * FLOAT_BYTES * observation_size(config) + INDEX_BYTES + FLOAT_BYTES + 2 * FLAG_BYTES + INDEX_BYTES


def training_bytes(config: Config) -> dict[str, tuple[str, int]]:
    """What training allocates, by part: part → (the config values that size it, bytes). The replay buffer,
    a collected batch (with its n-step transitions), the in-training evaluation's trajectories."""
    train = config.train
    per_slot = transition_bytes(config) + (SAMPLER_BYTES_PER_SLOT if train.prioritized_replay else 0)
    return {
        "the replay buffer": (f"train.buffer_size = {train.buffer_size:,}", train.buffer_size * per_slot),
        "a collected batch": (f"train.frames_per_batch = {train.frames_per_batch:,} (train.n_envs = {train.n_envs:,})",
                              train.frames_per_batch * (step_bytes(config) + transition_bytes(config))),
        "the in-training evaluation": (f"train.eval_episodes = {train.eval_episodes:,}",
                                       train.eval_episodes * config.env.horizon_days * step_bytes(config)),
    }


def evaluation_bytes(config: Config, episodes: int, policies: int) -> int:
    """What `evaluate` allocates: every policy's trajectory over ``episodes`` × ``env.horizon_days`` steps
    (kept for the paired statistics), one more while a rollout stacks its steps, and the float64 daily
    values the metrics add up for one policy."""
    steps = episodes * config.env.horizon_days
    return steps * ((policies + 1) * step_bytes(config) + 8 * (len(STEP_QUANTITIES) + len(COMPONENTS)))


def available_memory_bytes() -> Optional[int]:
    """Memory the system can give this process without swapping (``MemAvailable`` of /proc/meminfo, else the
    free physical pages), or None when it cannot tell."""
    try:
        with open("/proc/meminfo", encoding="ascii") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, AttributeError):
        return None


def format_bytes(count: float) -> str:
    """``1.5 GB``, ``320 MB``, ``12 kB`` (powers of 1000)."""
    for unit, size in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if count >= size:
            return f"{count / size:,.1f} {unit}"
    return f"{count:,.0f} bytes"


def check_memory(need: int, what: str, advice: str, available: Optional[int] = None) -> None:
    """A one-line `UserError` when ``need`` bytes exceed the memory available: "``what`` needs about N of
    memory; M is available: ``advice``". Nothing is checked when the available memory is unknown."""
    available = available_memory_bytes() if available is None else available
    if available is not None and need > available:
        raise UserError(f"{what} needs about {format_bytes(need)} of memory; {format_bytes(available)} is "
                        f"available: {advice}")


def check_training_memory(config: Config, available: Optional[int] = None) -> None:
    """Refuse a training config whose tensors would not fit in memory, naming the value of the largest part."""
    parts = training_bytes(config)
    largest = max(parts, key=lambda part: parts[part][1])
    values, size = parts[largest]
    total = sum(part_size for _, part_size in parts.values())
    check_memory(total, f"{values}: training ({largest}: {format_bytes(size)})", "lower it", available)
