"""Training-time changes to the inflow an episode sees: a whole-trace factor and grown floods.

Pure functions on tensors; `DiscreteReservoirEnv` draws one factor of each kind per episode at reset and
applies them to the day's inflow and to the forecast window alike. The ranges the factors are drawn in
follow the rule of `reservoir_rl.config.check_scale_range`.
"""

from __future__ import annotations

import math

import torch


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
