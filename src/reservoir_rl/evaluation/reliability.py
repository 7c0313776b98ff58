"""Reliability, resilience and vulnerability of water supply (Hashimoto, Stedinger & Loucks 1982).

A day is a *failure* when the supply deficit is positive (the release fell short of the demand). Per
episode, over its valid days (up to and including its first done):

* reliability   = share of days without a supply deficit, in [0, 1];
* resilience    = probability that a failure day is followed by a non-failure day: the number of
                  failure → non-failure transitions divided by the number of failure days (a failure on
                  the episode's last day counts as not recovered), in [0, 1];
* vulnerability = mean over failure events (maximal runs of consecutive failure days) of the worst
                  daily deficit of the event, hm³/day.

An episode with a demand but no failure day has reliability 1, resilience 1 and vulnerability 0. Without
any demand the supply cannot fail: reliability is 1 and resilience / vulnerability are not applicable
(NaN). Pure tensor functions, batched over episodes.
"""

from __future__ import annotations

import torch

HASHIMOTO_METRICS = ("supply_reliability", "supply_resilience", "supply_vulnerability_hm3")


def hashimoto_metrics(
    deficit_hm3: torch.Tensor, valid: torch.Tensor, has_demand: bool, tolerance_hm3: float = 1e-9
) -> dict[str, torch.Tensor]:
    """Reliability, resilience and vulnerability of each episode.

    Args:
        deficit_hm3: daily supply deficit, float (n_episodes, T), hm³/day.
        valid: bool (n_episodes, T), True on the days that belong to the episode (a prefix of each row).
        has_demand: whether the reservoir serves a water-supply demand at all.
        tolerance_hm3: deficits at or below this count as satisfied days.

    Returns:
        ``supply_reliability``, ``supply_resilience``, ``supply_vulnerability_hm3``: float32 (n_episodes,).
    """
    if deficit_hm3.ndim != 2 or valid.shape != deficit_hm3.shape:
        raise ValueError(f"deficit_hm3 and valid must both be (n, T), got {tuple(deficit_hm3.shape)} and {tuple(valid.shape)}")
    n_episodes, n_days = deficit_hm3.shape
    deficit = deficit_hm3.to(torch.float32)
    valid = valid.to(torch.bool)
    days = valid.sum(dim=1).to(torch.float32)
    if not has_demand:
        nan = torch.full((n_episodes,), float("nan"), device=deficit.device)
        return {
            "supply_reliability": torch.ones(n_episodes, device=deficit.device),
            "supply_resilience": nan,
            "supply_vulnerability_hm3": nan.clone(),
        }
    failure = (deficit > tolerance_hm3) & valid
    failure_days = failure.sum(dim=1).to(torch.float32)
    reliability = 1.0 - failure_days / days.clamp(min=1.0)

    # Recovery: failure today, valid non-failure tomorrow.
    recovered = failure[:, :-1] & valid[:, 1:] & ~failure[:, 1:]
    recoveries = recovered.sum(dim=1).to(torch.float32)
    resilience = torch.where(failure_days > 0, recoveries / failure_days.clamp(min=1.0), torch.ones_like(failure_days))

    # Events: a failure day whose previous day is not a failure starts a new event.
    previous = torch.cat([torch.zeros(n_episodes, 1, dtype=torch.bool, device=failure.device), failure[:, :-1]], dim=1)
    starts = failure & ~previous
    n_events = starts.sum(dim=1)
    event_id = torch.cumsum(starts.to(torch.int64), dim=1) - 1  # (n, T), −1 before the first event
    row = torch.arange(n_episodes, device=failure.device).unsqueeze(1).expand(n_episodes, n_days)
    slot = torch.where(failure, row * n_days + event_id.clamp(min=0), torch.full_like(event_id, n_episodes * n_days))
    worst = torch.zeros(n_episodes * n_days + 1, dtype=torch.float32, device=failure.device)
    worst = worst.scatter_reduce(0, slot.reshape(-1), torch.where(failure, deficit, 0.0).reshape(-1), reduce="amax")
    worst_per_event = worst[:-1].reshape(n_episodes, n_days)  # zero for unused slots
    vulnerability = worst_per_event.sum(dim=1) / n_events.clamp(min=1).to(torch.float32)
    return {
        "supply_reliability": reliability,
        "supply_resilience": resilience,
        "supply_vulnerability_hm3": vulnerability,
    }
