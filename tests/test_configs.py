"""The bundled configs: they load; configs/trenton.yaml is configs/base.yaml scaled by the ratio of the
two records' mean inflows (storages and flows relative to the mean inflow unchanged), and each config's
seasonal flood-control zone and rule curve are the ones its own training years give
(reservoir_rl.env.flood_zone, as `reservoir-rl flood-zone CONFIG` prints them); nothing else changes."""

from __future__ import annotations

from pathlib import Path

import pytest

from reservoir_rl.config import config_to_dict, load_config
from reservoir_rl.env.flood_zone import flood_zone_curve, rule_curve_below_flood_zone
from reservoir_rl.env.inflow import load_bundled, split_water_years

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
# Storages (hm³), flows (m³/s), power (MW) and lake area (km²) that scale with the mean inflow.
SCALED = (
    "capacity_hm3", "dead_storage_hm3", "min_operating_hm3", "release_capacity_cms",
    "turbine_capacity_cms", "spillway_capacity_cms", "env_flow_cms", "installed_capacity_mw", "area_at_capacity_km2",
)
# The rule curve both configs start from before it is kept under the flood-control zone.
DESIGN_RULE_CURVE = [(0, 0.62), (59, 0.55), (105, 0.6), (150, 0.8), (243, 0.8), (304, 0.7)]


@pytest.fixture(scope="module")
def configs():
    return load_config(CONFIGS / "base.yaml"), load_config(CONFIGS / "trenton.yaml")


@pytest.fixture(scope="module")
def mean_inflows_cms():
    return load_bundled("montague").mean_inflow_cms, load_bundled("trenton").mean_inflow_cms


def test_every_bundled_config_loads() -> None:
    paths = sorted(CONFIGS.glob("*.yaml"))
    assert {p.name for p in paths} >= {"base.yaml", "trenton.yaml"}
    for path in paths:
        load_config(path)


def test_config_comments_say_where_the_in_training_evaluation_runs() -> None:
    """best.pt is chosen on the validation episodes, never on the held-out years: each config's comment on
    eval_every_frames says so (a reviewer checks this for leakage first)."""
    for path in sorted(CONFIGS.glob("*.yaml")):
        line = next(line for line in path.read_text(encoding="utf-8").splitlines()
                    if line.strip().startswith("eval_every_frames:"))
        comment = line.split("#", 1)[1]
        assert "validation" in comment and "best.pt" in comment, path.name
        assert "held-out" not in comment.replace("never the held-out", ""), path.name


def test_trenton_reads_the_trenton_record(configs, mean_inflows_cms) -> None:
    base, trenton = configs
    assert (base.inflow.source, base.inflow.gauge) == ("bundled", "montague")
    assert (trenton.inflow.source, trenton.inflow.gauge) == ("bundled", "trenton")
    montague_cms, trenton_cms = mean_inflows_cms
    assert trenton_cms / montague_cms == pytest.approx(2.06, abs=0.005)


def test_trenton_quantities_relative_to_mean_inflow_equal_base(configs, mean_inflows_cms) -> None:
    """Each scaled quantity / mean inflow is the same on both rivers, to the 0.1 the file rounds to."""
    base, trenton = configs
    montague_cms, trenton_cms = mean_inflows_cms
    ratio = trenton_cms / montague_cms
    for key in SCALED:
        b, t = getattr(base.env.reservoir, key), getattr(trenton.env.reservoir, key)
        assert t / trenton_cms == pytest.approx(b / montague_cms, abs=0.05 / trenton_cms), key
        assert t == pytest.approx(b * ratio, abs=0.05 + 1e-9), key


@pytest.mark.parametrize("name", ["base.yaml", "trenton.yaml"])
def test_flood_zone_and_rule_curve_are_those_the_training_years_give(name) -> None:
    config = load_config(CONFIGS / name)
    reservoir = config.env.reservoir
    record = load_bundled(config.inflow.gauge)
    train_years, heldout_years = split_water_years(record, config.inflow.heldout_water_years)
    zone = flood_zone_curve(record, train_years, reservoir.capacity_hm3, reservoir.release_capacity_cms,
                            min_space_hm3=0.15 * reservoir.capacity_hm3)
    assert [list(point) for point in reservoir.flood_zone_hm3] == [list(point) for point in zone]
    rule = rule_curve_below_flood_zone(DESIGN_RULE_CURVE, zone, reservoir.capacity_hm3, margin_fraction=0.05)
    assert [list(point) for point in config.baselines.rule_curve] == [list(point) for point in rule]
    assert max(train_years) < min(heldout_years)


def test_trenton_changes_nothing_else(configs) -> None:
    base, trenton = (config_to_dict(c) for c in configs)
    for key in (*SCALED, "flood_zone_hm3"):
        del base["env"]["reservoir"][key], trenton["env"]["reservoir"][key]
    del base["baselines"]["rule_curve"], trenton["baselines"]["rule_curve"]
    assert trenton["inflow"].pop("gauge") == "trenton" and base["inflow"].pop("gauge") == "montague"
    differing = sorted(k for k in set(flatten(base)) | set(flatten(trenton)) if flatten(base).get(k) != flatten(trenton).get(k))
    assert not differing, f"configs/trenton.yaml must follow configs/base.yaml apart from the scaled keys: {differing}"
    assert configs[1].env.reservoir.max_head_m == configs[0].env.reservoir.max_head_m


def flatten(tree: dict, prefix: str = "") -> dict:
    """{"a": {"b": 1}} → {"a.b": 1}."""
    out = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            out.update(flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out
