"""Training-time changes to the inflow an episode sees: a whole-trace factor and grown floods.

Pure functions on tensors; `DiscreteReservoirEnv` draws one factor of each kind per episode at reset and
applies them to the day's inflow and to the forecast window alike.
"""

from __future__ import annotations

import math
from typing import Sequence

import torch

from reservoir_rl.errors import ConfigError


def factor_range(bounds: Sequence[float], name: str, at_least_one: bool) -> tuple[float, float]:
    """``bounds`` as a (low, high) float pair, refused unless low ≤ high and low > 0 (``at_least_one``: low ≥ 1)."""
    low, high = (float(x) for x in bounds)
    if not ((low >= 1.0 if at_least_one else low > 0.0) and low <= high):
        relation = "1 <= low <= high" if at_least_one else "0 < low <= high"
        raise ConfigError(f"{name} range must satisfy {relation}, got {tuple(bounds)}")
    return low, high


def draw_log_uniform(bounds: tuple[float, float], n: int, generator: torch.Generator, device) -> torch.Tensor:
    """``n`` factors log-uniform in ``bounds``, float32 (n,), from ``generator``."""
    log_low, log_high = (math.log(x) for x in bounds)
    v = torch.rand(n, generator=generator, device=device)
    return torch.exp(log_low + (log_high - log_low) * v)


def grow_floods(inflow_hm3: torch.Tensor, threshold_hm3: float, factor: torch.Tensor) -> torch.Tensor:
    """``I + (k − 1)·max(0, I − threshold)`` in hm³/day: the part above the threshold times ``k``;
    ``factor`` broadcasts against ``inflow_hm3``."""
    excess_hm3 = (inflow_hm3 - threshold_hm3).clamp_(min=0.0)
    return inflow_hm3 + excess_hm3.mul_(factor - 1.0)
