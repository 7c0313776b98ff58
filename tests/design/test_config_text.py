"""The config `init` writes: every section but the reservoir, the inflow record and the rule curve is
configs/base.yaml's; every reservoir value is the design's; the one-line rewrite keeps comments."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from reservoir_rl.config import config_from_dict
from reservoir_rl.design.config_text import RecordSource, config_text, replace_flow_value
from reservoir_rl.design.sizing import design_reservoir
from reservoir_rl.env.inflow import synthetic, split_water_years
from reservoir_rl.errors import ConfigError

BASE = Path(__file__).resolve().parents[2] / "configs" / "base.yaml"


@pytest.fixture(scope="module")
def written():
    record = synthetic(n_years=14, mean_inflow_cms=3.0, seed=2)
    train, _ = split_water_years(record, 3)
    design = design_reservoir(record, train)
    text = config_text(design, RecordSource("rdb", "data/x.rdb", units="cfs", name="x.rdb"), 3, "1991–2001", 1.234)
    return design, text, yaml.safe_load(text)


def test_every_other_setting_is_base_yaml(written) -> None:
    _, _, raw = written
    base = yaml.safe_load(BASE.read_text())
    for section in ("agent", "train", "logging"):
        assert raw[section] == base[section], section
    assert raw["env"]["forecast"] == base["env"]["forecast"] and raw["env"]["reward"] == base["env"]["reward"]
    same_env = {k: v for k, v in base["env"].items() if k not in ("reservoir",)}
    assert {k: raw["env"][k] for k in same_env} == same_env
    keep = {k: v for k, v in base["baselines"].items() if k != "rule_curve"}
    assert {k: raw["baselines"][k] for k in keep} == keep
    assert set(raw["env"]["reservoir"]) == set(base["env"]["reservoir"])
    assert set(raw["inflow"]) == set(base["inflow"])


def test_the_reservoir_and_the_record_are_the_design(written) -> None:
    design, text, raw = written
    reservoir = raw["env"]["reservoir"]
    for key in ("capacity_hm3", "dead_storage_hm3", "min_operating_hm3", "release_capacity_cms",
                "turbine_capacity_cms", "spillway_capacity_cms", "env_flow_cms", "installed_capacity_mw",
                "area_at_capacity_km2", "max_head_m"):
        assert reservoir[key] == pytest.approx(getattr(design, key), rel=1e-12), key
    assert [tuple(p) for p in reservoir["flood_zone_hm3"]] == design.flood_zone_hm3
    inflow = raw["inflow"]
    assert (inflow["source"], inflow["path"], inflow["units"], inflow["heldout_water_years"]) == ("rdb", "data/x.rdb", "cfs", 3)
    assert "(1.234 m³/s here)" in text
    config_from_dict(raw)  # valid as written


def test_replace_flow_value_keeps_the_comment_and_refuses_what_it_cannot_rewrite() -> None:
    text = "a:\n  flood_zone_hm3: [[0, 1], [100, 2]]   # the zone\n  rule_curve: [[0, 0.5]]\n"
    assert replace_flow_value(text, "flood_zone_hm3", "900", "c.yaml") == "a:\n  flood_zone_hm3: 900   # the zone\n  rule_curve: [[0, 0.5]]\n"
    with pytest.raises(ConfigError, match="need exactly one line 'capacity_hm3: ...' to rewrite, found 0"):
        replace_flow_value(text, "capacity_hm3", "1", "c.yaml")
    with pytest.raises(ConfigError, match="must hold its whole value on its own line"):
        replace_flow_value("rule_curve:\n  - [0, 0.5]\n", "rule_curve", "[[0, 0.4]]", "c.yaml")
