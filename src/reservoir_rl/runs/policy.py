"""A checkpoint's greedy policy as plain parts: its Q-network (rebuilt from the checkpoint's config and
weights, loaded safely), the observation layout it reads, the release levels it chooses among (m³/s) and
the fingerprint of its weights. What the public `Policy` and `export` start from."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import torch

from reservoir_rl.agent.qnet import QNetwork
from reservoir_rl.config import Config
from reservoir_rl.baselines.features import build_env
from reservoir_rl.env.reservoir_env import observation_names, release_levels_cms
from reservoir_rl.env.sources import load_inflow
from reservoir_rl.errors import CheckpointError
from reservoir_rl.runs.checkpoint import REFERENCE_INFLOW_KEY, params_sha256
from reservoir_rl.runs.groups import find_group
from reservoir_rl.runs.locate import CheckpointSource, locate_checkpoint, read_checkpoint, require_finite_weights


@dataclass
class CheckpointPolicy:
    """The greedy policy of one checkpoint.

    ``q_network`` maps float32 observations (..., obs_dim) to Q-values (..., n_release_levels), in eval
    mode on the CPU; ``observation_layout`` names the obs_dim entries in order; ``release_levels_cms`` is
    float64 (n_release_levels,), the target release of each level in m³/s."""

    q_network: QNetwork
    config: Config
    source: CheckpointSource
    payload: dict[str, Any]
    observation_layout: list[str]
    release_levels_cms: torch.Tensor
    params_sha256: str

    @property
    def path(self) -> Path:
        return self.source.path

    @property
    def obs_dim(self) -> int:
        return len(self.observation_layout)

    @property
    def n_release_levels(self) -> int:
        return int(self.release_levels_cms.numel())

    @property
    def frames(self) -> int:
        return int((self.payload.get("counters") or {}).get("frames", 0))

    @property
    def reference_inflow_cms(self) -> float:
        """The inflow (m³/s) the observation's forecast features are divided by, as the checkpoint was trained:
        the number it stored (`REFERENCE_INFLOW_KEY`), else its config's ``env.forecast.reference_inflow_cms``
        — the whole record's mean inflow, read from the record, for a checkpoint written before either
        existed (`reservoir_rl.runs.checkpoint.stored_config`)."""
        stored = self.payload.get(REFERENCE_INFLOW_KEY)
        if stored is not None:
            return float(stored)
        reference = self.config.env.forecast.reference_inflow_cms
        if reference == "whole_record":
            return load_inflow(self.config.inflow).mean_inflow_cms
        if reference is None:  # (a hand-made payload: the training years' mean of its config)
            return build_env(self.config, "train").reference_inflow_cms
        return float(reference)

    @property
    def run_name(self) -> Optional[str]:
        return self.source.run.name if self.source.run is not None else self.payload.get("run_name")


def load_policy(ckpt: str | Path, runs_dir: str | Path = "runs") -> CheckpointPolicy:
    """The greedy policy of a checkpoint file, or of a run (name under ``runs_dir`` or folder: its
    ``checkpoints/best.pt``, ``last.pt`` before the first evaluation); a multi-seed run is refused (one
    policy per seed: name the seed's run, ``RUN/seed-K``).

    Loading executes nothing from the file (`reservoir_rl.runs.checkpoint.load_checkpoint`); a file that is
    not a usable checkpoint, a Q-network that does not fit its config, or non-finite weights (a diverged
    training) is a one-line `CheckpointError`."""
    group = find_group(ckpt, runs_dir)
    if group is not None:
        raise CheckpointError(f"{group.path}: a multi-seed run (seeds {', '.join(map(str, group.seeds))}); name one "
                              f"seed's run, e.g. {group.run(group.seeds[0]).path}")
    source = locate_checkpoint(ckpt, runs_dir)
    payload, config = read_checkpoint(source.path)
    require_finite_weights(payload, source.path)
    layout = observation_names(config.env)
    agent = config.agent
    network = QNetwork(len(layout), config.env.n_release_levels, agent.hidden_sizes, agent.activation, agent.dueling,
                       quantiles=agent.distributional_quantiles)
    try:
        network.load_state_dict(payload["q_network"])
    except (RuntimeError, KeyError) as error:
        first = str(error).strip().splitlines()[0] if str(error).strip() else error.__class__.__name__
        raise CheckpointError(f"{source.path}: Q-network weights do not fit the checkpoint's config "
                              f"({first[:160]})") from None
    network.eval()
    for parameter in network.parameters():
        parameter.requires_grad_(False)
    return CheckpointPolicy(network, config, source, payload, layout, release_levels_cms(config.env),
                            params_sha256(payload["q_network"]))
