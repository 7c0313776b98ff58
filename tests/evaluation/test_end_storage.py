"""evaluation.end_storage: evaluate's end-storage metrics, and the note when the SDP that values them cannot be
solved (the metrics are then NaN, never a made-up number)."""

from __future__ import annotations

import math

import torch

from reservoir_rl.catalog import make_baseline
from reservoir_rl.config import Config
from reservoir_rl.env.reservoir_env import make_env
from reservoir_rl.evaluation.end_storage import END_VALUE_METRICS, value_end_storage
from reservoir_rl.evaluation.rollout import evaluate_policy


def _sop_result(config: Config, record):
    env = make_env(config, "heldout", n_envs=4, seed=2, inflow=record)
    return env, evaluate_policy(env, make_baseline("sop", env, config), seed=2)


def test_metrics_added_to_every_result(synthetic_record):
    config = Config(inflow={"source": "synthetic", "heldout_water_years": 2}, env={"horizon_days": 40},
                    baselines={"sdp": {"storage_levels": 40}})
    env, result = _sop_result(config, synthetic_record)
    assert value_end_storage(env, config, [result]) is None
    for name in END_VALUE_METRICS:
        assert result.metrics[name].shape == (4,) and bool(torch.isfinite(result.metrics[name]).all())


def test_an_sdp_that_cannot_be_solved_leaves_nan_and_a_note(synthetic_record):
    config = Config(inflow={"source": "synthetic", "heldout_water_years": 2}, env={"horizon_days": 40},
                    agent={"gamma": 1.0}, baselines={"sdp": {"storage_levels": 40}})
    env, result = _sop_result(config, synthetic_record)
    note = value_end_storage(env, config, [result])
    assert note is not None and note.startswith("end-storage value not computed") and "discount" in note
    assert all(math.isnan(float(v)) for name in END_VALUE_METRICS for v in result.metrics[name])
