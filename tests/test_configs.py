"""The bundled configs: they load, and configs/trenton.yaml is configs/base.yaml scaled by the ratio of the
two records' mean inflows (storages and flows relative to the mean inflow unchanged, nothing else changed)."""

from __future__ import annotations

from pathlib import Path

import pytest

from reservoir_rl.config import config_to_dict, load_config
from reservoir_rl.env.inflow import load_bundled

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
# Storages (hm³), flows (m³/s), power (MW) and lake area (km²) that scale with the mean inflow.
SCALED = (
    "capacity_hm3", "dead_storage_hm3", "min_operating_hm3", "flood_zone_hm3", "release_capacity_cms",
    "turbine_capacity_cms", "spillway_capacity_cms", "env_flow_cms", "installed_capacity_mw", "area_at_capacity_km2",
)


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
    r_base, r_trenton = base.env.reservoir, trenton.env.reservoir
    assert r_trenton.flood_zone_hm3 / r_trenton.capacity_hm3 == pytest.approx(r_base.flood_zone_hm3 / r_base.capacity_hm3, abs=1e-4)


def test_trenton_changes_nothing_else(configs) -> None:
    base, trenton = (config_to_dict(c) for c in configs)
    for key in SCALED:
        del base["env"]["reservoir"][key], trenton["env"]["reservoir"][key]
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
