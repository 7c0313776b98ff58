"""The catalog names every policy and metric once: each entry is real (built, computed) and unambiguous."""

from __future__ import annotations

import pytest
import torch

from reservoir_rl import catalog
from reservoir_rl.config import Config, EnvConfig
from reservoir_rl.env.reservoir_env import DiscreteReservoirEnv
from reservoir_rl.errors import UserError
from reservoir_rl.evaluation.end_storage import value_end_storage
from reservoir_rl.evaluation.rollout import evaluate_policy


@pytest.fixture(scope="module")
def env(synthetic_record):
    return DiscreteReservoirEnv(EnvConfig(horizon_days=30), synthetic_record, synthetic_record.complete_water_years(),
                                n_envs=3, seed=1)


def test_every_baseline_is_built_and_acts_and_every_metric_is_computed(env):
    assert catalog.BASELINE_NAMES[-2:] == ("dp", "dp_end") and {"sop", "hedging", "rule", "mpc"} <= set(catalog.BASELINE_NAMES)
    assert catalog.IMPLEMENTABLE_BASELINES == catalog.BASELINE_NAMES[:-2]  # all but the foresight DPs
    assert catalog.RAW_RETURN_BASELINES == catalog.BASELINE_NAMES[:-1]  # dp_end optimises return + end value
    # the synthetic record's last 2 water years held out; a small SDP grid keeps the test fast
    config = Config(inflow={"heldout_water_years": 2}, baselines={"dp_storage_levels": 200, "sdp": {"storage_levels": 40}})
    for name in catalog.BASELINE_NAMES:
        result = evaluate_policy(env, catalog.make_baseline(name, env, config), seed=4)
        assert value_end_storage(env, config, [result]) is None  # evaluate's end-storage metrics
        missing = set(catalog.METRICS) - set(result.metrics)
        assert not missing, (name, missing)  # a catalog metric no evaluation computes would be a dead label
        actions = result.trajectory.get("action")
        assert actions.dtype == torch.int64 and bool(((actions >= 0) & (actions < env.n_actions)).all())


def test_labels_are_unique_and_every_name_resolves():
    for entries in (catalog.POLICIES, catalog.METRICS):
        for field in ("label", "short_label"):
            labels = [getattr(e, field) for e in entries.values()]
            assert len(labels) == len(set(labels)), (field, labels)
    assert catalog.policy_label("sop", short=True) == "SOP" and catalog.metric_label("energy_gwh") == "energy (GWh)"
    assert catalog.policy_label("unknown") == "unknown"
    assert set(catalog.HEADLINE_METRICS).isdisjoint(catalog.EXTRA_METRICS)
    assert set(catalog.HEADLINE_METRICS) | set(catalog.EXTRA_METRICS) == set(catalog.METRICS)
    assert all(m.better in ("higher", "lower", "neither") for m in catalog.METRICS.values())
    assert set(catalog.COMPARISON_METRICS) <= set(catalog.METRICS)
    assert {key for key, _, _ in catalog.LIVE_EPISODE_COLUMNS} >= {"return", "energy_gwh", "spill_hm3"}


def test_baseline_names_are_parsed_strictly():
    assert catalog.parse_baselines("SOP, dp") == ["sop", "dp"]
    assert catalog.parse_baselines("none") == [] and catalog.parse_baselines("") == []
    with pytest.raises(UserError, match="unknown baseline 'agent'"):  # the agent is a policy, not a baseline
        catalog.parse_baselines("agent")
    with pytest.raises(UserError, match="listed twice"):
        catalog.parse_baselines("rule,rule")
    with pytest.raises(UserError, match="unknown baseline 'nonesuch'"):
        catalog.make_baseline("nonesuch", None, Config())
