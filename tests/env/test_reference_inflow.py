"""The observation's reference inflow and every mean the agent, the guard and the baselines use come from the
training water years only: changing the validation or held-out years' inflow changes nothing they see."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from reservoir_rl.baselines.rules import target_release_hm3
from reservoir_rl.baselines.sdp import sdp_solution
from reservoir_rl.catalog import make_baseline
from reservoir_rl.config import Config, config_from_dict
from reservoir_rl.env.inflow import InflowRecord, synthetic
from reservoir_rl.env.reservoir_env import make_env
from reservoir_rl.env.safety import ReleaseGuard
from reservoir_rl.errors import ConfigError
from reservoir_rl.units import HM3_PER_CMS_DAY

HELDOUT, VALIDATION = 2, 2


def config(**forecast) -> Config:
    return config_from_dict({
        "inflow": {"source": "synthetic", "heldout_water_years": HELDOUT, "validation_water_years": VALIDATION},
        "env": {"horizon_days": 60, "forecast": forecast,
                "reservoir": {"supply_demand_cms": 60.0, "supply_amplitude": 0.3}},
        "baselines": {"sdp": {"storage_levels": 40}},
    }, source="test")


@pytest.fixture(scope="module")
def record() -> InflowRecord:
    return synthetic(n_years=10, seed=4)


def scaled_outside_training(record: InflowRecord, years: list[int], factor: float = 10.0) -> InflowRecord:
    """``record`` with the inflow of ``years`` multiplied by ``factor`` (the other days untouched)."""
    flow = record.inflow_cms.copy()
    flow[np.isin(record.water_years, years)] *= factor
    return InflowRecord(record.name, record.dates, flow)


def split(record: InflowRecord, cfg: Config) -> tuple[list[int], list[int], list[int]]:
    return (make_env(cfg, "train", inflow=record).water_years, make_env(cfg, "validation", inflow=record).water_years,
            make_env(cfg, "heldout", inflow=record).water_years)


def training_observations(cfg: Config, record: InflowRecord, days: int = 40) -> torch.Tensor:
    """The observations of 16 training episodes over ``days`` days of a fixed release pattern, (days + 1, 16, obs)."""
    env = make_env(cfg, "train", n_envs=16, seed=5, inflow=record)
    td = env.reset()
    seen = [td["observation"].clone()]
    for day in range(days):
        td["action"] = torch.full((16,), day % env.n_actions, dtype=torch.int64)
        td = env.step(td)["next"]
        seen.append(td["observation"].clone())
    return torch.stack(seen)


def test_the_split_keeps_validation_and_heldout_years_apart(record) -> None:
    train, validation, heldout = split(record, config())
    assert len(validation) == VALIDATION and len(heldout) == HELDOUT
    assert not set(train) & set(validation) and not set(train) & set(heldout)


@pytest.mark.parametrize("which", ["heldout", "validation"])
def test_inflow_outside_the_training_years_changes_nothing_the_agent_observes(record, which) -> None:
    cfg = config()
    train, validation, heldout = split(record, cfg)
    changed = scaled_outside_training(record, heldout if which == "heldout" else validation)
    assert changed.mean_inflow_cms > 2 * record.mean_inflow_cms  # the whole record's mean moved a lot
    assert torch.equal(training_observations(cfg, changed), training_observations(cfg, record))
    env, other = make_env(cfg, "train", inflow=record), make_env(cfg, "train", inflow=changed)
    assert other.mean_inflow_hm3 == env.mean_inflow_hm3 == env.training_mean_inflow_hm3
    days = np.isin(record.water_years, train)
    assert env.reference_inflow_cms == pytest.approx(record.inflow_cms[days].mean(), rel=1e-12)
    # the guard decodes the forecast with the same reference
    assert ReleaseGuard.for_env(other).mean_inflow_hm3 == ReleaseGuard.for_env(env).mean_inflow_hm3


def test_the_whole_record_reference_is_the_leak_the_default_removes(record) -> None:
    """``whole_record`` (what old checkpoints trained with) does see the held-out years: the test above can fail."""
    cfg = config(reference_inflow_cms="whole_record")
    changed = scaled_outside_training(record, split(record, cfg)[2])
    assert make_env(cfg, "train", inflow=record).mean_inflow_hm3 == pytest.approx(
        record.mean_inflow_cms * HM3_PER_CMS_DAY, rel=1e-12)
    assert not torch.equal(training_observations(cfg, changed), training_observations(cfg, record))


def test_a_reference_inflow_in_the_config_is_used_as_given(record) -> None:
    env = make_env(config(reference_inflow_cms=100.0), "train", inflow=record)
    assert env.reference_inflow_cms == 100.0 and env.mean_inflow_hm3 == 100.0 * HM3_PER_CMS_DAY
    # the forecast features are the forecast divided by it: linear scale, no forecast error → the true inflow
    env = make_env(config(reference_inflow_cms=100.0, scale="linear", error_sigma=0.0), "train", inflow=record)
    td = env.reset()
    truth_cms = torch.tensor(np.array(record.inflow_cms), dtype=torch.float32)[td["record_index"]]
    assert torch.allclose(td["observation"][:, 3], truth_cms / 100.0, rtol=1e-5)


@pytest.mark.parametrize("value", [0.0, -5.0, "mean", True, float("nan")])
def test_a_bad_reference_inflow_is_refused(value) -> None:
    with pytest.raises(ConfigError, match="reference_inflow_cms"):
        config(reference_inflow_cms=value)


@pytest.mark.parametrize("which", ["heldout", "validation"])
def test_inflow_outside_the_training_years_changes_no_baseline_parameter(record, which) -> None:
    base = config()
    train, validation, heldout = split(record, base)
    changed = scaled_outside_training(record, heldout if which == "heldout" else validation)
    for target in ("firm_yield", "mean_inflow"):
        cfg = config_from_dict({**base.model_dump(mode="json"), "baselines": {"target_release_cms": target,
                                                                              "sdp": {"storage_levels": 40}}},
                               source="test")
        before = target_release_hm3(make_env(cfg, "heldout", inflow=record), cfg.baselines)
        after = target_release_hm3(make_env(cfg, "heldout", inflow=changed), cfg.baselines)
        assert after == before, target
        for name in ("sop", "hedging"):
            assert make_baseline(name, make_env(cfg, "heldout", inflow=changed), cfg).target_release_hm3 == before
    solved = sdp_solution(make_env(base, "heldout", inflow=record), base)
    again = sdp_solution(make_env(base, "heldout", inflow=changed), base)
    assert torch.equal(solved.values, again.values)
    assert torch.equal(solved.class_edges_hm3, again.class_edges_hm3)
