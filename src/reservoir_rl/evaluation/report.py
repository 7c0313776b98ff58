"""The report of a paired evaluation of K ≥ 1 seeds' agents against the baselines: statistics, JSON, CSV.

Per-episode scores: the agent's are (seeds, episodes), a baseline's (episodes,) (baselines do not depend on
the agent's seed). Per policy and metric: the mean over seeds of each seed's mean over episodes and the
interquartile mean (IQM) of all seed × episode scores, each with a stratified bootstrap interval (episodes
resampled within each seed, one shared draw since the seeds share the episodes); the paired difference
agent − baseline, the share of episodes the agent wins, and the share of the SOP → DP gap the agent closes,
(R_agent − R_sop) / (R_dp − R_sop), over seeds and for each seed (`reservoir_rl.evaluation.statistics`).
With one seed the stratified bootstrap is the paired bootstrap over episodes.

Gap shares come on two bases: the raw return (high end: ``dp``) and the return + end-storage value
(`reservoir_rl.baselines.end_value`; high end: ``dp_end``, the DP that values the storage it leaves), which
does not reward drawing the reservoir down before the episode stops.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import torch

from reservoir_rl.catalog import AGENT, END_VALUED_BOUND, HEADLINE_METRICS, METRICS, RAW_RETURN_BOUND, policy_label
from reservoir_rl.env.inflow import water_years_of
from reservoir_rl.evaluation.failures import FAILURE_KINDS, avoidable, first_failures
from reservoir_rl.evaluation.paired import EPISODE_FIELDS
from reservoir_rl.evaluation.rollout import EvaluationResult
from reservoir_rl.evaluation.statistics import DEFAULT_RESAMPLES, Estimate, PairedBootstrap, StratifiedBootstrap
from reservoir_rl.files import json_ready

RESULTS_FORMAT = "reservoir-rl-evaluation"
RESULTS_VERSION = 2
FAILURE_COLUMNS = ("failure_kind", "failure_day", "failure_avoidable", "failure_avoidable_in_window")  # the CSV's last


@dataclass
class SeedResult:
    """One seed's agent: its checkpoint, and its numbers with paired bootstrap intervals over episodes."""

    seed: int
    checkpoint: Path
    frames: int
    summary: dict[str, Estimate]  # metric -> the agent's mean over episodes
    differences: dict[str, dict[str, Estimate]]  # baseline -> metric -> agent − baseline
    gap_share: Optional[Estimate]
    agent_better: dict[str, float]  # baseline -> share of episodes where the agent's return is higher
    gap_share_best: Optional[Estimate] = None  # from the best implementable baseline to DP
    gap_share_end: Optional[Estimate] = None  # SOP → DP+end on return + end-storage value
    gap_share_best_end: Optional[Estimate] = None  # best implementable → DP+end on that basis


@dataclass
class EvaluationReport:
    """Everything `evaluate` measured (see the module docstring for shapes)."""

    run_name: Optional[str]
    run_dir: Optional[Path]  # the run folder (evaluation.json goes there); None for a checkpoint file
    seeds: list[int]
    years: str
    water_years: list[int]
    episodes: int
    seed: int  # the env seed of the episodes
    horizon_days: int
    episode_info: dict[str, list[Any]]
    per_episode: dict[str, dict[str, torch.Tensor]]  # policy -> metric -> (seeds, E) agent, (E,) baseline
    summary: dict[str, dict[str, Estimate]]  # policy -> metric -> mean over seeds of the episode means
    iqm: dict[str, dict[str, Estimate]]  # policy -> metric -> IQM of all seed × episode scores
    per_seed: list[SeedResult]
    differences: dict[str, dict[str, Estimate]]  # baseline -> metric -> agent − baseline, over seeds
    gap_share: Optional[Estimate]  # None unless both sop and dp ran
    agent_better: dict[str, float]  # baseline -> share of seed × episode pairs the agent's return is higher
    bootstrap: dict[str, Any]
    best_baseline: Optional[str] = None  # the implementable baseline with the best validation return
    gap_share_best: Optional[Estimate] = None  # (R_agent − R_best) / (R_dp − R_best); None without it or dp
    gap_share_end: Optional[Estimate] = None  # SOP → DP+end share on return + end-storage value
    gap_share_best_end: Optional[Estimate] = None  # best implementable → DP+end share on that basis
    validation_returns: dict[str, float] = field(default_factory=dict)  # baseline -> mean validation return
    validation_episodes: int = 0
    agent_results: dict[int, EvaluationResult] = field(repr=False, default_factory=dict)  # seed -> trajectories
    results: dict[str, EvaluationResult] = field(repr=False, default_factory=dict)  # baseline -> trajectories
    files: list[Path] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # one line each about how the baselines were set up
    guarded: dict[str, bool] = field(default_factory=dict)  # policy -> ran under the release guard (env.safety)
    traced_episodes: list[int] = field(default_factory=list)  # episodes written to --trace's trace.csv
    # policy -> (seeds, E) agent / (E,) baseline: avoidable failures still avoidable within the forecast window
    # (`reservoir_rl.evaluation.failures.avoidable_in_window`); empty without DP
    in_window: dict[str, torch.Tensor] = field(repr=False, default_factory=dict)

    @property
    def policies(self) -> list[str]:
        return list(self.per_episode)

    @property
    def baselines(self) -> list[str]:
        return [p for p in self.per_episode if p != AGENT]

    def to_json(self) -> dict[str, Any]:
        """The JSON document: settings, per-policy summaries, paired comparisons, per-seed and per-episode values."""
        as_dicts = lambda estimates: {k: e.as_dict() for k, e in estimates.items()}  # noqa: E731
        return json_ready({
            "format": RESULTS_FORMAT,
            "format_version": RESULTS_VERSION,
            "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            "run_name": self.run_name,
            "seeds": self.seeds,
            "years": self.years,
            "water_years": self.water_years,
            "episodes": self.episodes,
            "seed": self.seed,
            "horizon_days": self.horizon_days,
            "bootstrap": self.bootstrap,
            "metric_labels": {k: METRICS[k].label for k in HEADLINE_METRICS},
            "episode_info": self.episode_info,
            "policies": {
                name: {
                    "label": policy_label(name),
                    "summary": as_dicts(self.summary[name]),
                    "iqm": as_dicts(self.iqm[name]),
                    "episodes": {k: v.tolist() for k, v in values.items()},
                    **self._failure_summary(name),
                }
                for name, values in self.per_episode.items()
            },
            "per_seed": {
                str(r.seed): {
                    "checkpoint": str(r.checkpoint), "frames": r.frames, "summary": as_dicts(r.summary),
                    "paired_difference": {b: as_dicts(d) for b, d in r.differences.items()},
                    "gap_share": r.gap_share.as_dict() if r.gap_share is not None else None,
                    "agent_better_share": r.agent_better,
                    "gap_share_best_baseline": self._best(r.gap_share_best),
                    "end_valued": self._end_valued(r.gap_share_end, r.gap_share_best_end),
                }
                for r in self.per_seed
            },
            "paired_difference": {b: as_dicts(d) for b, d in self.differences.items()},
            "gap_share": self.gap_share.as_dict() if self.gap_share is not None else None,
            "agent_better_share": self.agent_better,
            "notes": self.notes,
            "gap_share_best_baseline": self._best(self.gap_share_best),
            "end_valued": self._end_valued(self.gap_share_end, self.gap_share_best_end),
            "best_baseline_choice": {
                "baseline": self.best_baseline, "years": "validation", "episodes": self.validation_episodes,
                "mean_return": self.validation_returns,
            } if self.best_baseline is not None else None,
        })

    def _best(self, estimate: Optional[Estimate]) -> Optional[dict[str, Any]]:
        """``{"baseline": name, mean, ci_low, ci_high, n}`` of a gap share from the best baseline, or None."""
        if estimate is None or self.best_baseline is None:
            return None
        return {"baseline": self.best_baseline, **estimate.as_dict()}

    def _end_valued(self, gap: Optional[Estimate], best: Optional[Estimate]) -> dict[str, Any]:
        """The gap shares on return + end-storage value (high end: DP+end)."""
        return {"metric": "return_end_valued", "upper_bound": END_VALUED_BOUND,
                "gap_share": gap.as_dict() if gap is not None else None, "gap_share_best_baseline": self._best(best)}

    def failure_records(self, name: str) -> Optional[dict[str, torch.Tensor]]:
        """Policy ``name``'s first failures from its trajectories: ``kind`` and ``day`` (`first_failures`)
        and, when DP ran, ``avoidable``, each (seeds, E) (a baseline's row repeated for every seed); None
        when its trajectories are not held."""
        if name == AGENT:
            if set(self.agent_results) != set(self.seeds):
                return None
            found = [first_failures(self.agent_results[s].trajectory) for s in self.seeds]
            kind, day = torch.stack([k for k, _ in found]), torch.stack([d for _, d in found])
        elif name in self.results:
            kind, day = (x.expand(len(self.seeds), -1) for x in first_failures(self.results[name].trajectory))
        else:
            return None
        records = {"kind": kind.cpu(), "day": day.cpu()}
        dp_kind = first_failures(self.results["dp"].trajectory)[0].cpu() if "dp" in self.results else None
        if dp_kind is not None:
            records["avoidable"] = avoidable(records["kind"], dp_kind)
            if name in self.in_window:
                records["in_window"] = self.in_window[name].cpu().reshape(-1, kind.shape[-1]).expand(len(self.seeds), -1)
        return records

    def _failure_summary(self, name: str) -> dict[str, Any]:
        """The JSON's failure counts of one policy over its seed × episode pairs: ``failed_episodes`` (None
        without trajectories), ``failures_avoidable`` (failed where DP did not; None without DP),
        ``failures_avoidable_in_window`` (of those, the ones still avoidable from the policy's storage on the
        first day its forecast reached the failure's day; None without DP), and ``guarded`` (ran under the
        release guard)."""
        records = self.failure_records(name)
        failed = None if records is None else int((records["kind"] > 0).sum())
        avoided = None if records is None or "avoidable" not in records else int(records["avoidable"].sum())
        in_window = None if records is None or "in_window" not in records else int(records["in_window"].sum())
        return {"guarded": bool(self.guarded.get(name, False)), "failed_episodes": failed,
                "failures_avoidable": avoided, "failures_avoidable_in_window": in_window}

    def to_csv(self) -> str:
        """One row per policy, seed and episode: the trace (water year and date of its start, storage, inflow)
        and every metric. A baseline does not depend on the agent's seed: its rows repeat for every seed (each
        seed's rows are a complete paired comparison). Counts (days, failures, success, length) are written
        as integers, other values rounded to the catalog's decimals (`MetricEntry.decimals`; 3 for hm³,
        GWh and return: no float32 noise such as 1130.982421875); an undefined value is an empty cell.
        The last columns name each episode's first failure: ``failure_kind`` (flood / drought / none),
        ``failure_day`` (an integer, day of the episode, 1 = its first; empty without a failure) and
        ``failure_avoidable`` (true when DP avoided it on that trace; empty without a failure or DP) and
        ``failure_avoidable_in_window`` (for an avoidable one: true when it was still avoidable from the policy's
        storage on the first day its forecast reached the failure's day; empty otherwise)."""
        metrics = list(self.per_episode[AGENT])
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(["policy", "seed", "episode", "water_year", *EPISODE_FIELDS, *metrics, *FAILURE_COLUMNS])
        water_years = water_years_of(self.episode_info["start_date"]).tolist()
        for name, values in self.per_episode.items():
            failures = self.failure_records(name)
            for i, s in enumerate(self.seeds):
                for e in range(self.episodes):
                    trace = [_cell(self.episode_info[k][e], TRACE_DECIMALS.get(k)) for k in EPISODE_FIELDS]
                    row = [_cell(float(values[k][i, e] if values[k].dim() == 2 else values[k][e]),
                                 METRICS[k].decimals if k in METRICS else None) for k in metrics]
                    writer.writerow([name, s, e, water_years[e], *trace, *row, *_failure_cells(failures, i, e)])
        return buffer.getvalue()


# decimals of the numeric trace columns of the CSV (hm³: to 1,000 m³)
TRACE_DECIMALS = {"initial_storage_hm3": 3, "trace_inflow_hm3": 3}


def _cell(value: Any, decimals: Optional[int]) -> Any:
    """A CSV cell: ``decimals`` 0 → an integer, N → rounded to N decimals (shortest form), None → as it is;
    NaN → empty."""
    if decimals is None or isinstance(value, str):
        return value
    value = float(value)
    if math.isnan(value):
        return ""
    return int(round(value)) if decimals == 0 else repr(round(value, decimals) + 0.0)  # (+ 0.0: no "-0.0")


def _failure_cells(failures: Optional[dict[str, torch.Tensor]], seed_row: int, episode: int) -> list[str]:
    """The CSV's failure columns of one row (empty cells where nothing is known)."""
    if failures is None:
        return ["", "", "", ""]
    kind = int(failures["kind"][seed_row, episode])
    if kind == 0:
        return [FAILURE_KINDS[0], "", "", ""]
    avoidable_by_dp = failures.get("avoidable")
    in_window = failures.get("in_window")
    avoided = avoidable_by_dp is not None and bool(avoidable_by_dp[seed_row, episode])
    return [FAILURE_KINDS[kind], str(int(failures["day"][seed_row, episode])),
            "" if avoidable_by_dp is None else str(avoided).lower(),
            str(bool(in_window[seed_row, episode])).lower() if in_window is not None and avoided else ""]


def _wins(agent: torch.Tensor, baseline: torch.Tensor) -> float:
    """Share of the (seed, episode) pairs where the agent's score is higher than the baseline's."""
    return float((agent > baseline).to(torch.float64).mean())


def compare(
    per_episode: dict[str, dict[str, torch.Tensor]], seeds: list[int], resamples: int = DEFAULT_RESAMPLES,
    best_baseline: Optional[str] = None,
) -> dict[str, Any]:
    """The statistics of `EvaluationReport` from the per-episode scores (agent (seeds, E), baselines (E,)):
    keys summary, iqm, differences, gap_share, gap_share_best, gap_share_end, gap_share_best_end,
    agent_better, bootstrap, and ``per_seed`` (seed -> its summary, differences, the four gap shares,
    agent_better); the ``_end`` shares are on return + end-storage value with DP+end as high end. ``best_baseline``: the
    low end of the second gap share (with dp as its high end)."""
    agent = per_episode[AGENT]
    n_seeds, episodes = agent["return"].shape
    baselines = [p for p in per_episode if p != AGENT]
    strata = StratifiedBootstrap(n_seeds, episodes, resamples=resamples)

    def gap(boot, mine: dict[str, torch.Tensor], low: Optional[str] = "sop", end_valued: bool = False) -> Optional[Estimate]:
        """Share of the gap low → upper bound closed, on the raw return or on return + end-storage value."""
        metric, high = ("return_end_valued", END_VALUED_BOUND) if end_valued else ("return", RAW_RETURN_BOUND)
        if low is None or low not in per_episode or high not in per_episode:
            return None
        return boot.gap_share(mine[metric], per_episode[low][metric], per_episode[high][metric])

    best = best_baseline if best_baseline in per_episode else None

    paired = PairedBootstrap(episodes, resamples=resamples)
    per_seed = {}
    for i, s in enumerate(seeds):
        mine = {k: v[i] for k, v in agent.items()}
        per_seed[s] = {
            "summary": paired.means(mine),
            "differences": {b: paired.means({k: mine[k] - per_episode[b][k] for k in HEADLINE_METRICS})
                            for b in baselines},
            "gap_share": gap(paired, mine),
            "gap_share_best": gap(paired, mine, best),
            "gap_share_end": gap(paired, mine, end_valued=True),
            "gap_share_best_end": gap(paired, mine, best, end_valued=True),
            "agent_better": {b: _wins(mine["return"], per_episode[b]["return"]) for b in baselines},
        }
    return {
        "summary": {p: {k: strata.mean(v) for k, v in values.items()} for p, values in per_episode.items()},
        "iqm": {p: {k: strata.iqm(v) for k, v in values.items()} for p, values in per_episode.items()},
        "differences": {b: {k: strata.mean(agent[k] - per_episode[b][k]) for k in HEADLINE_METRICS} for b in baselines},
        "gap_share": gap(strata, agent),
        "gap_share_best": gap(strata, agent, best),
        "gap_share_end": gap(strata, agent, end_valued=True),
        "gap_share_best_end": gap(strata, agent, best, end_valued=True),
        "agent_better": {b: _wins(agent["return"], per_episode[b]["return"]) for b in baselines},
        "bootstrap": {**strata.settings(), "per_seed": paired.settings()},
        "per_seed": per_seed,
    }
