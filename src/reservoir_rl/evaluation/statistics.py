"""Percentile bootstrap confidence intervals for paired evaluations, one seed or several (vectorised in torch).

Every statistic of one evaluation is computed on the *same* resamples of episode indices, so statistics
of different policies stay paired: resampling an episode resamples its inflow trace for every policy at
once (a paired bootstrap). A percentile interval at confidence c takes the (1 − c)/2 and (1 + c)/2
quantiles of the statistic over the resamples (Efron & Tibshirani 1993, ch. 13).

Missing values (NaN, e.g. resilience of an episode without demand) are left out of a mean; a resample
whose values are all missing yields no estimate and is left out of the quantiles.

Several seeds (`StratifiedBootstrap`): scores of shape (seeds, episodes), episodes resampled within each
seed; the mean over seeds and the interquartile mean (IQM, the mean of the middle 50 % of all scores) with
percentile intervals, as rliable reports them (Agarwal et al. 2021, "Deep RL at the edge of the
statistical precipice").
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


def percentile_interval(statistics: torch.Tensor, confidence: float) -> tuple[float, float]:
    """Percentile interval at ``confidence`` of the (R,) resampled statistic, ignoring undefined resamples
    (NaN, ±inf); (NaN, NaN) when none is defined."""
    finite = statistics[torch.isfinite(statistics)]
    if finite.numel() == 0:
        return math.nan, math.nan
    tail = (1.0 - confidence) / 2.0
    low, high = torch.quantile(finite, torch.tensor([tail, 1.0 - tail], dtype=_DTYPE))
    return float(low), float(high)


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
        return percentile_interval(statistics, self.confidence)

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


# ------------------------------------------------------------------------------ several seeds


def trimmed_mean(values: torch.Tensor, proportion: float = 0.25) -> torch.Tensor:
    """Mean along the last dimension after dropping the ⌊proportion · n⌋ smallest and largest of the n
    defined (non-NaN) values, as ``scipy.stats.trim_mean``; shape (..., n) → (...). NaN when nothing is
    left. With ``proportion = 0.25`` this is the interquartile mean (IQM) of Agarwal et al. (2021)."""
    if not 0.0 <= proportion < 0.5:
        raise ValueError(f"proportion must lie in [0, 0.5), got {proportion}")
    values = torch.as_tensor(values).detach().to("cpu", _DTYPE)
    ordered, _ = torch.sort(values, dim=-1)  # NaN sorts last
    defined = (~torch.isnan(values)).sum(dim=-1, keepdim=True)
    cut = torch.floor(defined * proportion)
    position = torch.arange(values.shape[-1], dtype=_DTYPE)
    keep = (position >= cut) & (position < defined - cut)
    total = torch.where(keep, ordered, torch.zeros_like(ordered)).sum(dim=-1)
    count = keep.sum(dim=-1)
    return torch.where(count > 0, total / count.clamp(min=1), torch.full_like(total, float("nan")))


def iqm(values: torch.Tensor) -> float:
    """Interquartile mean of all defined values of ``values`` (any shape): the mean of the middle 50 %."""
    return float(trimmed_mean(torch.as_tensor(values).reshape(-1), 0.25))


class StratifiedBootstrap:
    """Bootstrap of scores of shape (n_seeds, n_episodes): episodes resampled within each seed (stratum).

    Each of the ``resamples`` draws takes ``n_episodes`` episode indices with replacement for every seed,
    so every seed keeps its weight; a statistic of the whole (seeds × episodes) table is computed on each
    draw and its percentile interval reported (rliable's stratified bootstrap, Agarwal et al. 2021, with
    the seeds as strata).

    ``shared_episodes=True`` draws the same indices for every seed. That is the right draw when every
    seed was evaluated on the same episodes (the same inflow traces): the episode is then the unit that
    varies, and independent draws per seed would count the seeds' scores of one episode as independent
    samples, narrowing the interval by up to √n_seeds. ``False`` draws each seed's indices independently
    (seeds evaluated on different episodes).

    A tensor of shape (n_episodes,) (e.g. a deterministic baseline, the same for every seed) is treated
    as one stratum and resampled with the indices drawn for the first seed, so it stays paired with the
    seeds' scores under ``shared_episodes``.
    """

    def __init__(
        self,
        n_seeds: int,
        n_episodes: int,
        resamples: int = DEFAULT_RESAMPLES,
        confidence: float = DEFAULT_CONFIDENCE,
        seed: int = DEFAULT_SEED,
        shared_episodes: bool = True,
    ) -> None:
        if n_seeds < 1 or n_episodes < 1:
            raise ValueError(f"need at least one seed and one episode, got {n_seeds} × {n_episodes}")
        if resamples < 1:
            raise ValueError(f"resamples must be >= 1, got {resamples}")
        if not 0.0 < confidence < 1.0:
            raise ValueError(f"confidence must lie in (0, 1), got {confidence}")
        self.n_seeds, self.n_episodes = n_seeds, n_episodes
        self.resamples, self.confidence, self.seed = resamples, confidence, seed
        self.shared_episodes = shared_episodes
        generator = torch.Generator().manual_seed(seed)
        if shared_episodes:  # the same stream as PairedBootstrap(n_episodes, resamples, seed=seed)
            self.indices = torch.randint(n_episodes, (resamples, 1, n_episodes), generator=generator)
            self.indices = self.indices.expand(resamples, n_seeds, n_episodes)
        else:
            self.indices = torch.randint(n_episodes, (resamples, n_seeds, n_episodes), generator=generator)

    def _table(self, values: torch.Tensor) -> torch.Tensor:
        """``values`` as float64 (strata, n_episodes): (n_seeds, E) or (E,) → (1, E)."""
        values = torch.as_tensor(values).detach().to("cpu", _DTYPE)
        if values.dim() == 1:
            values = values.unsqueeze(0)
        if values.dim() != 2 or values.shape[1] != self.n_episodes or values.shape[0] not in (1, self.n_seeds):
            raise ValueError(f"expected ({self.n_seeds}, {self.n_episodes}) or ({self.n_episodes},) values, "
                             f"got {tuple(values.shape)}")
        return values

    def _resampled(self, table: torch.Tensor) -> torch.Tensor:
        """(R, strata, E): every stratum's values at its drawn indices."""
        strata = table.shape[0]
        indices = self.indices[:, :strata, :]
        return table.unsqueeze(0).expand(self.resamples, -1, -1).gather(2, indices)

    def _interval(self, statistics: torch.Tensor) -> tuple[float, float]:
        return percentile_interval(statistics, self.confidence)

    @staticmethod
    def _mean_of_strata(table: torch.Tensor) -> torch.Tensor:
        """(..., strata, E) → (...): mean over strata of each stratum's mean over its defined episodes."""
        return _nanmean(_nanmean(table, dim=-1), dim=-1)

    def mean(self, values: torch.Tensor) -> Estimate:
        """Mean over seeds of each seed's mean over episodes (NaN values left out), with its interval."""
        table = self._table(values)
        low, high = self._interval(self._mean_of_strata(self._resampled(table)))
        return Estimate(float(self._mean_of_strata(table)), low, high, int((~torch.isnan(table)).sum()))

    def iqm(self, values: torch.Tensor) -> Estimate:
        """Interquartile mean of all (seed, episode) scores, with its interval."""
        table = self._table(values)
        resampled = trimmed_mean(self._resampled(table).reshape(self.resamples, -1), 0.25)
        low, high = self._interval(resampled)
        return Estimate(iqm(table), low, high, int((~torch.isnan(table)).sum()))

    def gap_share(self, agent: torch.Tensor, low: torch.Tensor, high: torch.Tensor) -> Estimate:
        """(mean agent − mean low) / (mean high − mean low) over all seeds' episodes (e.g. low = SOP,
        high = DP, both (n_episodes,) or (n_seeds, n_episodes)); every resample draws the same episodes
        for the three. NaN when the references score the same mean."""
        agent_t = self._table(agent)
        shape = (self.n_seeds, self.n_episodes)
        low_t, high_t = self._table(low).expand(shape), self._table(high).expand(shape)
        if agent_t.shape[0] != self.n_seeds:
            agent_t = agent_t.expand(shape)

        def ratio(a: torch.Tensor, lo: torch.Tensor, hi: torch.Tensor) -> torch.Tensor:
            gap = hi - lo
            scale = torch.maximum(hi.abs(), lo.abs()).clamp(min=1.0)
            defined = gap.abs() > 1e-9 * scale
            return torch.where(defined, (a - lo) / torch.where(defined, gap, torch.ones_like(gap)), torch.nan)

        means = [self._mean_of_strata(t) for t in (agent_t, low_t, high_t)]
        resampled = [self._mean_of_strata(self._resampled(t)) for t in (agent_t, low_t, high_t)]
        ci_low, ci_high = self._interval(ratio(*resampled))
        return Estimate(float(ratio(*means)), ci_low, ci_high, self.n_seeds * self.n_episodes)

    def settings(self) -> dict[str, float | int | str | bool]:
        return {"method": "percentile, stratified by seed", "resamples": self.resamples,
                "confidence": self.confidence, "seed": self.seed, "shared_episodes": self.shared_episodes}
