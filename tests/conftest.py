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
