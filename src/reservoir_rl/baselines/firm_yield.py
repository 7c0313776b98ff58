"""Firm yield: the largest constant daily release a reservoir's active storage sustains through a record.

Sequent-peak analysis (Thomas & Burden 1963; McMahon & Adeloye 2005, *Water Resources Yield*): for a
constant release R (hm³/day) and a daily net inflow series q_t (inflow minus evaporation, hm³/day), the
storage deficit K_t = max(0, K_{t−1} + R − q_t), K_0 = 0, is the water a reservoir must have drawn down
below full by the end of day t; the storage R needs is the largest deficit, taken over the record repeated twice (the
"cyclic" form: the record's end runs into its start, so a drought that straddles the end is counted whole
and no starting storage is assumed). The firm yield of active storage C is the largest R whose required
storage is at most C, found by bisection on R (required storage never falls as R grows). It is at most the
record's mean net inflow (a larger release needs unlimited storage in the cyclic form), equals that mean
for large enough C and the smallest daily net inflow for C = 0.

The recursion is a reflected random walk, computed without a loop over days: with D_t the cumulative
draft Σ_{s≤t} (R − q_s), K_t = D_t − min(0, min_{s≤t} D_s).

`training_firm_yield_hm3` applies it to an env: the days of the water years agents train on
(``env.training_water_years``: never validation or held-out years when the config sets them apart; the
years are joined end to end, at water-year boundaries, when they are not consecutive), active storage =
capacity − dead storage, and each day's evaporation as the physics takes it from a full lake
(area at capacity × the day's evaporation depth). The lake is smaller when drawn down, so this is the most
evaporation the physics can take on that day, and the yield is on the safe side of a behaviour simulation
with the physics' storage-dependent evaporation. On configs/base.yaml (Montague, training years 1946–2004):
82.9 m³/s; 84.7 without evaporation; 83.4 by a behaviour simulation that starts full.

Everything is numpy float64; volumes hm³, flows hm³/day.
"""

from __future__ import annotations

import hashlib
from typing import Optional

import numpy as np
import torch

from reservoir_rl.env.reservoir_env import DiscreteReservoirEnv


def required_storage_hm3(net_inflow_hm3: np.ndarray, release_hm3: float | np.ndarray) -> np.ndarray:
    """Storage (hm³) a constant release needs to be met every day of the cyclic record (sequent peak).

    Args:
        net_inflow_hm3: daily net inflow q_t (inflow − evaporation), hm³/day, shape (T,); may be negative.
        release_hm3: constant release R, hm³/day: a number or an array of shape (N,).

    Returns:
        float64 array of the shape of ``release_hm3`` (shape () for a number): max_t K_t over the record
        repeated twice.
    """
    inflow = np.asarray(net_inflow_hm3, dtype=np.float64).reshape(-1)
    release = np.asarray(release_hm3, dtype=np.float64)
    twice = np.concatenate([inflow, inflow])
    draft = np.cumsum(release.reshape(-1, 1) - twice, axis=-1)  # D_t, (N, 2T)
    deficit = draft - np.minimum(np.minimum.accumulate(draft, axis=-1), 0.0)  # K_t = D_t − min(0, min_{s≤t} D_s)
    return deficit.max(axis=-1).reshape(release.shape)


def firm_yield_hm3(
    inflow_hm3: np.ndarray,
    active_storage_hm3: float,
    evaporation_hm3: Optional[np.ndarray] = None,
    rel_tol: float = 1e-6,
) -> float:
    """Largest constant release (hm³/day) that active storage C = ``active_storage_hm3`` sustains through the
    record: the largest R in [0, mean net inflow] with `required_storage_hm3` ≤ C, by bisection.

    Args:
        inflow_hm3: daily inflow, hm³/day, shape (T,), T ≥ 1.
        active_storage_hm3: storage between dead storage and capacity, hm³, ≥ 0.
        evaporation_hm3: daily evaporation taken from the lake, hm³/day, shape (T,); default none.
        rel_tol: the bisection stops when the bracket is narrower than ``rel_tol`` × the mean net inflow.

    Returns:
        The feasible end of the final bracket (its required storage is at most C), ≥ 0; 0 when even R = 0
        needs more than C (evaporation exceeds what the storage can carry through a dry spell).
    """
    inflow = np.asarray(inflow_hm3, dtype=np.float64).reshape(-1)
    if inflow.size == 0:
        raise ValueError("firm yield needs at least one day of inflow")
    if not active_storage_hm3 >= 0:
        raise ValueError(f"active_storage_hm3 must be >= 0, got {active_storage_hm3}")
    net = inflow
    if evaporation_hm3 is not None:
        evaporation = np.asarray(evaporation_hm3, dtype=np.float64).reshape(-1)
        if evaporation.shape != inflow.shape:
            raise ValueError(f"evaporation_hm3 needs one value per day ({inflow.size}), got {evaporation.size}")
        net = inflow - evaporation
    # room for the rounding of the cumulative sums over the record repeated twice
    capacity = active_storage_hm3 + 2e-12 * float(np.abs(net).sum())
    high = float(net.mean())
    if high <= 0 or required_storage_hm3(net, 0.0) > capacity:
        return 0.0
    if required_storage_hm3(net, high) <= capacity:
        return high
    low = max(0.0, float(net.min()))  # with C ≥ 0 the smallest net inflow is always sustained
    tolerance = rel_tol * high
    while high - low > tolerance:
        middle = 0.5 * (low + high)
        if required_storage_hm3(net, middle) <= capacity:
            low = middle
        else:
            high = middle
    return low


_CACHE: dict[tuple[bytes, float], float] = {}
_CACHE_SIZE = 64


def training_inflow_evaporation_hm3(env: DiscreteReservoirEnv) -> tuple[np.ndarray, np.ndarray]:
    """(inflow, evaporation from a full lake), hm³/day, float64 (T_train,), of the days of
    ``env.training_water_years`` in the env's record, in record order."""
    record = env.inflow
    days = np.isin(record.water_years, np.asarray(env.training_water_years, dtype=np.int64))
    day_of_year = torch.as_tensor(record.day_of_year[days], dtype=torch.float64)
    physics = env.physics
    full_area_km2 = float(physics.area_km2(torch.tensor(physics.capacity_hm3, dtype=torch.float64)))
    evaporation_hm3 = (full_area_km2 * physics.evaporation_depth_mm(day_of_year) * 1e-3).numpy()
    return record.inflow_hm3()[days], evaporation_hm3


def training_firm_yield_hm3(env: DiscreteReservoirEnv) -> float:
    """Firm yield (hm³/day) of the env's reservoir through its training years, with full-lake evaporation
    (see the module docstring). Cached in the process per (training inflow and evaporation, active storage)."""
    inflow_hm3, evaporation_hm3 = training_inflow_evaporation_hm3(env)
    active_hm3 = env.physics.capacity_hm3 - env.physics.dead_storage_hm3
    digest = hashlib.blake2b(inflow_hm3.tobytes() + evaporation_hm3.tobytes(), digest_size=16).digest()
    key = (digest, float(active_hm3))
    if key not in _CACHE:
        if len(_CACHE) >= _CACHE_SIZE:
            _CACHE.clear()
        _CACHE[key] = firm_yield_hm3(inflow_hm3, active_hm3, evaporation_hm3)
    return _CACHE[key]
