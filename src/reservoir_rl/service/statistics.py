"""Percentile bootstrap confidence intervals for paired evaluations (vectorised in torch).

Every statistic of one evaluation is computed on the *same* resamples of episode indices, so statistics
of different policies stay paired: resampling an episode resamples its inflow trace for every policy at
once (a paired bootstrap). A percentile interval at confidence c takes the (1 − c)/2 and (1 + c)/2
quantiles of the statistic over the resamples (Efron & Tibshirani 1993, ch. 13).

Missing values (NaN, e.g. resilience of an episode without demand) are left out of a mean; a resample
whose values are all missing yields no estimate and is left out of the quantiles.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

DEFAULT_RESAMPLES = 2000
DEFAULT_CONFIDENCE = 0.95
DEFAULT_SEED = 0
_DTYPE = torch.float64


@dataclass(frozen=True)
class Estimate:
    """A point estimate on the full sample and its percentile bootstrap interval (NaN when undefined)."""

    value: float
    ci_low: float
    ci_high: float
    n: int  # episodes with a defined value

    def as_dict(self) -> dict[str, float | int | None]:
        """JSON-ready form; NaN becomes ``None``."""
        clean = lambda x: None if not math.isfinite(x) else float(x)  # noqa: E731
        return {"mean": clean(self.value), "ci_low": clean(self.ci_low), "ci_high": clean(self.ci_high), "n": self.n}


def _nanmean(values: torch.Tensor, dim: int = -1) -> torch.Tensor:
    defined = ~torch.isnan(values)
    total = torch.where(defined, values, torch.zeros_like(values)).sum(dim=dim)
    count = defined.sum(dim=dim)
    return torch.where(count > 0, total / count.clamp(min=1), torch.full_like(total, float("nan")))


class PairedBootstrap:
    """Bootstrap over ``n_episodes`` paired episodes: one fixed set of resampled indices for every statistic.

    Args:
        n_episodes: sample size (episodes), ≥ 1.
        resamples: number of bootstrap resamples R.
        confidence: coverage of the percentile interval, in (0, 1).
        seed: seed of the resampling generator (the intervals are reproducible).
    """

    def __init__(
        self,
        n_episodes: int,
        resamples: int = DEFAULT_RESAMPLES,
        confidence: float = DEFAULT_CONFIDENCE,
        seed: int = DEFAULT_SEED,
    ) -> None:
        if n_episodes < 1:
            raise ValueError(f"n_episodes must be >= 1, got {n_episodes}")
        if resamples < 1:
            raise ValueError(f"resamples must be >= 1, got {resamples}")
        if not 0.0 < confidence < 1.0:
            raise ValueError(f"confidence must lie in (0, 1), got {confidence}")
        self.n_episodes = n_episodes
        self.resamples = resamples
        self.confidence = confidence
        self.seed = seed
        generator = torch.Generator().manual_seed(seed)
        self.indices = torch.randint(n_episodes, (resamples, n_episodes), generator=generator)  # (R, n)

    def _check(self, values: torch.Tensor) -> torch.Tensor:
        values = torch.as_tensor(values).detach().to("cpu", _DTYPE).reshape(-1)
        if values.shape[0] != self.n_episodes:
            raise ValueError(f"expected {self.n_episodes} values, got {values.shape[0]}")
        return values

    def _interval(self, statistics: torch.Tensor) -> tuple[float, float]:
        """Percentile interval of the (R,) resampled statistic, ignoring undefined resamples."""
        finite = statistics[torch.isfinite(statistics)]
        if finite.numel() == 0:
            return math.nan, math.nan
        tail = (1.0 - self.confidence) / 2.0
        low, high = torch.quantile(finite, torch.tensor([tail, 1.0 - tail], dtype=_DTYPE))
        return float(low), float(high)

    def mean(self, values: torch.Tensor) -> Estimate:
        """Mean of per-episode ``values`` (n,) with its interval; NaN values are left out."""
        values = self._check(values)
        point = float(_nanmean(values, dim=0))
        low, high = self._interval(_nanmean(values[self.indices], dim=1))
        return Estimate(point, low, high, int((~torch.isnan(values)).sum()))

    def means(self, values: dict[str, torch.Tensor]) -> dict[str, Estimate]:
        """`mean` of several per-episode series at once (one gather for all of them)."""
        if not values:
            return {}
        names = list(values)
        table = torch.stack([self._check(values[k]) for k in names], dim=1)  # (n, M)
        points = _nanmean(table, dim=0)  # (M,)
        resampled = _nanmean(table[self.indices], dim=1)  # (R, M)
        counts = (~torch.isnan(table)).sum(dim=0)
        out = {}
        for j, name in enumerate(names):
            low, high = self._interval(resampled[:, j])
            out[name] = Estimate(float(points[j]), low, high, int(counts[j]))
        return out

    def difference(self, a: torch.Tensor, b: torch.Tensor) -> Estimate:
        """Mean paired difference ``a − b`` (episode by episode) with its interval."""
        return self.mean(self._check(a) - self._check(b))

    def gap_share(self, agent: torch.Tensor, low: torch.Tensor, high: torch.Tensor) -> Estimate:
        """Share of the gap closed, (mean agent − mean low) / (mean high − mean low), e.g. low = SOP, high = DP.

        Each resample draws the same episodes for the three policies. The ratio is undefined (NaN) when
        the two references score the same mean (|mean high − mean low| ≤ 1e-9 · scale).
        """
        agent, low, high = self._check(agent), self._check(low), self._check(high)

        def ratio(a: torch.Tensor, lo: torch.Tensor, hi: torch.Tensor) -> torch.Tensor:
            gap = hi - lo
            scale = torch.maximum(hi.abs(), lo.abs()).clamp(min=1.0)
            defined = gap.abs() > 1e-9 * scale
            return torch.where(defined, (a - lo) / torch.where(defined, gap, torch.ones_like(gap)), torch.nan)

        point = float(ratio(agent.mean(), low.mean(), high.mean()))
        idx = self.indices
        resampled = ratio(agent[idx].mean(dim=1), low[idx].mean(dim=1), high[idx].mean(dim=1))
        ci_low, ci_high = self._interval(resampled)
        return Estimate(point, ci_low, ci_high, self.n_episodes)

    def settings(self) -> dict[str, float | int | str]:
        return {"method": "percentile", "resamples": self.resamples, "confidence": self.confidence, "seed": self.seed}
