"""Use case `inspect-checkpoint`: what a checkpoint holds, without running anything from it.

The file is read with ``torch.load(weights_only=True)`` (plain data and tensors only, see
`reservoir_rl.runs.checkpoint`). ``params_sha256`` fingerprints the online Q-network's parameters so
two checkpoints can be compared: SHA-256 over the tensors in sorted name order, each contributing its
name, dtype, shape and raw bytes (contiguous, CPU, native byte order).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

import torch

from reservoir_rl.agent.qnet import QNetwork, parameter_count
from reservoir_rl.config import Config
from reservoir_rl.errors import CheckpointError
from reservoir_rl.runs.checkpoint import params_sha256
from reservoir_rl.runs.locate import locate_checkpoint, non_finite_tensors, read_checkpoint


def _network(state: Mapping[str, torch.Tensor], config: Config, path: Path) -> tuple[QNetwork, str]:
    """Rebuild the Q-network from the checkpoint's config and weights; its one-line architecture."""
    agent = config.agent
    first = state.get("body.0.weight")
    if first is None or first.ndim != 2:
        raise CheckpointError(f"{path}: 'q_network' has no first layer 'body.0.weight'")
    obs_size, n_actions = int(first.shape[1]), config.env.n_release_levels
    network = QNetwork(obs_size, n_actions, agent.hidden_sizes, agent.activation, agent.dueling,
                       quantiles=agent.distributional_quantiles)
    try:
        network.load_state_dict(dict(state))
    except RuntimeError as error:
        line = str(error).strip().splitlines()[0]
        raise CheckpointError(f"{path}: Q-network weights do not fit the checkpoint's config ({line[:160]})") from None
    sizes = " → ".join(str(n) for n in (obs_size, *agent.hidden_sizes))
    quantiles = agent.distributional_quantiles
    per_level = f" × {quantiles} quantiles" if quantiles else ""  # QR-DQN: N quantiles of the return per level
    head = f"V({max(quantiles, 1)}) + A({n_actions}{per_level})" if agent.dueling else f"{n_actions}{per_level}"
    return network, f"{sizes} → {head} ({agent.activation} MLP{', dueling' if agent.dueling else ''})"


def _flood_zone_text(flood_zone_hm3: float | list) -> float | str:
    """A constant flood zone as it is; a seasonal curve as its range and number of points."""
    if not isinstance(flood_zone_hm3, list):
        return flood_zone_hm3
    storages = [storage for _, storage in flood_zone_hm3]
    return f"seasonal {min(storages):,.0f}–{max(storages):,.0f} ({len(storages)} points)"


def config_summary(config: Config) -> dict[str, Any]:
    """The settings a reader looks for first: reservoir, inflow, network and training."""
    env, reservoir, inflow, agent, train = config.env, config.env.reservoir, config.inflow, config.agent, config.train
    source = {"bundled": f"bundled gauge {inflow.gauge}", "csv": f"csv {inflow.path} ({inflow.units})",
              "synthetic": f"synthetic ({inflow.synthetic.n_years} years, seed {inflow.synthetic.seed})"}[inflow.source]
    return {
        "env": {
            "capacity_hm3": reservoir.capacity_hm3,
            "flood_zone_hm3": _flood_zone_text(reservoir.flood_zone_hm3),
            "dead_storage_hm3": reservoir.dead_storage_hm3,
            "release_capacity_cms": reservoir.release_capacity_cms,
            "n_release_levels": env.n_release_levels,
            "horizon_days": env.horizon_days,
            "forecast_lead_days": env.forecast.lead_days,
            "forecast_scale": env.forecast.scale,
            "extra_features": list(env.extra_features),
            "supply_demand_cms": reservoir.supply_demand_cms,
            "terminate_on_failure": env.terminate_on_failure,
        },
        "inflow": {"source": source, "heldout_water_years": inflow.heldout_water_years,
                   "validation_water_years": inflow.validation_water_years,
                   "train_inflow_scale": list(inflow.train_inflow_scale),
                   "train_flood_scale": list(inflow.train_flood_scale)},
        "agent": {"hidden_sizes": list(agent.hidden_sizes), "activation": agent.activation, "dueling": agent.dueling,
                  "double_dqn": agent.double_dqn, "loss": agent.loss, "gamma": agent.gamma, "n_step": agent.n_step},
        "train": {"total_frames": train.total_frames, "n_envs": train.n_envs, "lr": train.lr if train.lr_end is None else f"{train.lr} → {train.lr_end} over {train.lr_decay_frames:,} frames",
                  "batch_size": train.batch_size, "buffer_size": train.buffer_size,
                  "updates_per_frame": train.updates_per_frame,
                  "epsilon": f"{train.eps_start} → {train.eps_end} over {train.eps_decay_frames:,} frames",
                  "target_update": train.target_update if train.target_update == "soft" else
                  f"hard every {train.target_update_period} updates",
                  "seed": train.seed, "device": train.device},
    }


def inspect_checkpoint(ckpt: str | Path, runs_dir: str | Path = "runs") -> dict[str, Any]:
    """Plain-data description of a checkpoint (a file, or a run → its best.pt); JSON-ready."""
    source = locate_checkpoint(ckpt, runs_dir)
    path = source.path
    payload, config = read_checkpoint(path)
    state = payload["q_network"]
    network, architecture = _network(state, config, path)
    counters = payload.get("counters") or {}
    last_eval = payload.get("last_eval") or None
    return {
        "file": str(path),
        "file_size_bytes": path.stat().st_size,
        "format": f"{payload.get('format')} v{payload.get('format_version')}",
        "created": payload.get("created"),
        "run_name": payload.get("run_name"),
        "frames": int(counters.get("frames", 0)),
        "updates": int(counters.get("updates", 0)),
        "episodes": int(counters.get("episodes", 0)),
        "epsilon": payload.get("epsilon"),
        "best_eval_return": payload.get("best_eval_return"),
        "last_eval_return": None if last_eval is None else last_eval.get("return"),
        "network": {
            "architecture": architecture,
            "parameter_count": parameter_count(network),
            "tensors": {name: "×".join(str(n) for n in t.shape) for name, t in sorted(state.items())},
        },
        "params_sha256": params_sha256(state),
        "non_finite_tensors": non_finite_tensors(state),  # [] unless the training diverged
        "config": config_summary(config),
        "package_versions": dict(payload.get("package_versions") or {}),
    }
