"""Normalised reward components and their weighted sum.

Each component is dimensionless and signed (benefits positive, penalties negative), so users can see the
trade-off; ``reward = Σ weight_k × component_k`` with the weights of ``env.reward``.
"""

from __future__ import annotations

import torch

from reservoir_rl.config import RewardConfig
from reservoir_rl.env.physics import ReservoirPhysics, StepOutcome

COMPONENTS = ("hydropower", "flood", "env_flow", "supply", "spill", "failure")
# What each component measures, in physical terms (figure captions); the sign is the component's own.
COMPONENT_MEANINGS = {
    "hydropower": "energy ÷ the maximum daily energy (1 for a day at full power)",
    "flood": "storage above the flood-control zone, as a fraction of its depth",
    "env_flow": "the environmental-flow deficit, as a fraction of env_flow_cms",
    "supply": "(supply deficit ÷ demand)²",
    "spill": "spill ÷ one day of release capacity",
    "failure": "1 on a catastrophic-flood or critical-drought day",
}


def reward_components(physics: ReservoirPhysics, outcome: StepOutcome) -> dict[str, torch.Tensor]:
    """Components of one step, each with the batch shape of ``outcome``.

    hydropower: energy / maximum daily energy, in [0, 1].
    flood:     −(storage above the flood zone) / (depth of the flood zone), in [−1, 0]; both taken on the
               day's flood-control zone (seasonal when ``flood_zone_hm3`` is a curve).
    env_flow:  −(environmental-flow deficit) / env_flow_cms, in [−1, 0].
    supply:    −(supply deficit / demand)², in [−1, 0] (0 when there is no demand).
    spill:     −spill / (release capacity × 1 day), ≤ 0.
    failure:   −1 on a catastrophic flood or critical drought step, else 0.
    """
    cfg = physics.config
    storage = outcome.next_storage_hm3
    flood_zone_hm3 = outcome.flood_zone_hm3
    flood = -((storage - flood_zone_hm3) / (cfg.capacity_hm3 - flood_zone_hm3)).clamp(0.0, 1.0)
    if cfg.env_flow_cms > 0:
        env_flow = -((cfg.env_flow_cms - outcome.downstream_cms) / cfg.env_flow_cms).clamp(min=0.0)
    else:
        env_flow = torch.zeros_like(storage)
    demand = outcome.supply_demand_hm3
    supply = -torch.where(demand > 0, outcome.supply_deficit_hm3 / demand.clamp(min=1e-12), 0.0).square()
    return {
        "hydropower": outcome.energy_mwh / physics.max_daily_energy_mwh,
        "flood": flood,
        "env_flow": env_flow,
        "supply": supply,
        "spill": -outcome.spill_hm3 / physics.release_capacity_hm3,
        "failure": -(outcome.flood_failure | outcome.drought_failure).to(storage.dtype),
    }


def weighted_reward(weights: RewardConfig, components: dict[str, torch.Tensor]) -> torch.Tensor:
    """``Σ weight × component`` with the weights of ``weights``; shape of the components."""
    total = None
    for name in COMPONENTS:
        term = getattr(weights, name) * components[name]
        total = term if total is None else total + term
    return total
