"""A training setup small enough for tests (a synthetic record, a small network, short periods), and
readers for what a run leaves on disk."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml

# 6 synthetic water years (4 for training, 2 held out), 60-day episodes, 8 envs, a 32-unit network.
TINY_CONFIG: dict[str, Any] = {
    "inflow": {"source": "synthetic", "heldout_water_years": 2, "synthetic": {"n_years": 6, "seed": 3}},
    "env": {"horizon_days": 60},
    "agent": {"hidden_sizes": [32], "n_step": 1},  # 1-step transitions: buffer size = frames collected
    "train": {
        "total_frames": 512,
        "n_envs": 8,
        "frames_per_batch": 64,
        "buffer_size": 4096,
        "init_random_frames": 128,
        "batch_size": 32,
        "updates_per_frame": 0.25,
        "eps_decay_frames": 1024,
        "target_update_period": 20,
        "eval_episodes": 2,
        "eval_every_frames": 256,
        "checkpoint_every_frames": 128,
        "keep_checkpoints": 3,
        "seed": 7,
    },
    "logging": {"log_every_frames": 128, "histogram_every_frames": 256, "figure_every_frames": 1_000_000},
}


def tiny_config(**sections: dict[str, Any]) -> dict[str, Any]:
    """`TINY_CONFIG` with some keys replaced, e.g. ``tiny_config(train={"total_frames": 256})``."""
    config = copy.deepcopy(TINY_CONFIG)
    for section, values in sections.items():
        config.setdefault(section, {}).update(values)
    return config


def write_config(folder: Path, name: str = "tiny.yaml", **sections: dict[str, Any]) -> Path:
    path = Path(folder) / name
    path.write_text(yaml.safe_dump(tiny_config(**sections), sort_keys=False))
    return path


def read_events(tensorboard_dir: Path):
    """An `EventAccumulator` over every events file of a run folder, fully loaded (purges applied)."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    accumulator = EventAccumulator(
        str(tensorboard_dir), size_guidance={"scalars": 0, "histograms": 0, "images": 0, "tensors": 0}
    )
    accumulator.Reload()
    return accumulator


def scalar_series(tensorboard_dir: Path) -> dict[str, list[tuple[int, float]]]:
    """Every scalar tag as a list of (step, value)."""
    events = read_events(tensorboard_dir)
    return {tag: [(e.step, e.value) for e in events.Scalars(tag)] for tag in events.Tags()["scalars"]}
