"""Small shared fixtures: inflow records are built once per session (the bundled one takes ~0.5 s)."""

from __future__ import annotations

import pytest

from reservoir_rl.env.inflow import InflowRecord, load_bundled, synthetic


@pytest.fixture(scope="session")
def bundled_record() -> InflowRecord:
    """The bundled Montague record (the env's default inflow)."""
    return load_bundled("montague")


@pytest.fixture(scope="session")
def synthetic_record() -> InflowRecord:
    """12 synthetic water years (1991 … 2002), mean 169 m³/s: fast and strictly positive."""
    return synthetic(n_years=12, seed=1)


# A finished run small enough to train in a few seconds, shared by the evaluate / plot / inspect tests:
# synthetic inflow (4 training + 2 held-out water years), 60-day episodes, a water-supply demand (so the
# Hashimoto supply metrics are defined), evaluations and checkpoints every 256 frames.
EVAL_RUN_CONFIG = {
    "inflow": {"source": "synthetic", "heldout_water_years": 2, "synthetic": {"n_years": 6, "seed": 3}},
    "env": {"horizon_days": 60, "reservoir": {"supply_demand_cms": 60.0, "supply_amplitude": 0.3}},
    "baselines": {"dp_storage_levels": 200, "sdp": {"storage_levels": 50}},
    "agent": {"hidden_sizes": [32, 32]},
    "train": {
        "total_frames": 1024, "n_envs": 8, "frames_per_batch": 64, "init_random_frames": 256, "buffer_size": 4096,
        "batch_size": 32, "eps_decay_frames": 800, "eval_every_frames": 256, "eval_episodes": 4,
        "checkpoint_every_frames": 256, "keep_checkpoints": 5, "seed": 11,
    },
    "logging": {"log_every_frames": 128, "histogram_every_frames": 512, "figure_every_frames": 100_000},
}


@pytest.fixture(scope="session")
def eval_run(tmp_path_factory):
    """``(runs_dir, run_dir)`` of a finished `EVAL_RUN_CONFIG` run named "tiny", trained once per session.

    Tests must not modify it (copy it first).
    """
    import yaml

    from reservoir_rl.monitor.live import make_view
    from reservoir_rl.commands.train import train

    root = tmp_path_factory.mktemp("eval_run")
    config_path = root / "tiny.yaml"
    config_path.write_text(yaml.safe_dump(EVAL_RUN_CONFIG))
    summary = train(config_path, [], make_view("quiet"), root / "runs", "tiny", command=["reservoir-rl", "train"])
    assert summary.stopped_by == "done"
    return root / "runs", summary.run_dir
