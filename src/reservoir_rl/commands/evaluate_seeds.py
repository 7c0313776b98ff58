"""Use case `evaluate` on a multi-seed run: every seed's greedy agent on the same episodes (held-out by default).

Every seed's ``best.pt`` (``last.pt`` before its first evaluation) runs on one env reset with one seed, so
episode i has the same start day, inflow trace and initial storage for every seed and every baseline. The
baselines do not depend on the agent's seed: they run once. Reported, per policy and metric: the mean over
seeds (of each seed's mean over episodes) and the interquartile mean (IQM) of all per-episode-per-seed
scores, each with a stratified bootstrap interval (episodes resampled within each seed; one shared draw,
since the seeds share the episodes: `reservoir_rl.evaluation.statistics.StratifiedBootstrap`); per seed, the
agent's means, its paired differences with each baseline and its share of the SOP → DP gap, with paired
bootstrap intervals; and the same difference and gap share aggregated over seeds.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

import torch

from reservoir_rl.baselines import make_baseline
from reservoir_rl.config import config_to_dict
from reservoir_rl.env.reservoir_env import make_env
from reservoir_rl.env.sources import load_inflow
from reservoir_rl.errors import UserError
from reservoir_rl.training.build import EVAL_SEED_OFFSET, seed_everything
from reservoir_rl.commands.evaluate import (
    AGENT,
    EPISODE_FIELDS,
    HEADLINE_METRICS,
    POLICY_LABELS,
    check_arguments,
    episode_info_lists,
    json_ready,
    per_episode_values,
    run_paired,
)
from reservoir_rl.files import write_text_atomic
from reservoir_rl.evaluation.rollout import greedy_actor
from reservoir_rl.runs.locate import locate_checkpoint, read_checkpoint
from reservoir_rl.commands.seeds import SeedGroup
from reservoir_rl.evaluation.statistics import DEFAULT_RESAMPLES, Estimate, PairedBootstrap, StratifiedBootstrap

SEEDS_RESULTS_FORMAT = "reservoir-rl-evaluation-seeds"
RESULTS_VERSION = 1


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


@dataclass
class SeedsEvaluationReport:
    """Everything `evaluate` measured on a multi-seed run. Per-episode tensors: the agent's are
    (seeds, episodes) in the order of ``seeds``, the baselines' (episodes,)."""

    run_dir: Path
    seeds: list[int]
    years: str
    water_years: list[int]
    episodes: int
    seed: int  # the env seed of the episodes
    horizon_days: int
    episode_info: dict[str, list[Any]]
    per_episode: dict[str, dict[str, torch.Tensor]]
    aggregate: dict[str, dict[str, dict[str, Estimate]]]  # policy -> metric -> {"mean", "iqm"}
    per_seed: list[SeedResult]
    differences: dict[str, dict[str, Estimate]]  # baseline -> metric -> agent − baseline, over seeds
    gap_share: Optional[Estimate]
    bootstrap: dict[str, Any]
    files: list[Path] = field(default_factory=list)

    @property
    def policies(self) -> list[str]:
        return list(self.per_episode)

    @property
    def baselines(self) -> list[str]:
        return [p for p in self.per_episode if p != AGENT]

    def to_json(self) -> dict[str, Any]:
        as_dicts = lambda estimates: {k: e.as_dict() for k, e in estimates.items()}  # noqa: E731
        policies = {}
        for name, values in self.per_episode.items():
            policies[name] = {
                "label": POLICY_LABELS[name],
                "summary": as_dicts({k: v["mean"] for k, v in self.aggregate[name].items()}),
                "iqm": as_dicts({k: v["iqm"] for k, v in self.aggregate[name].items()}),
                "episodes": {k: v.tolist() for k, v in values.items()},
            }
        return json_ready({
            "format": SEEDS_RESULTS_FORMAT,
            "format_version": RESULTS_VERSION,
            "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            "run_name": self.run_dir.name,
            "seeds": self.seeds,
            "years": self.years,
            "water_years": self.water_years,
            "episodes": self.episodes,
            "seed": self.seed,
            "horizon_days": self.horizon_days,
            "bootstrap": self.bootstrap,
            "metric_labels": HEADLINE_METRICS,
            "episode_info": self.episode_info,
            "policies": policies,
            "per_seed": {
                str(r.seed): {
                    "checkpoint": str(r.checkpoint), "frames": r.frames, "summary": as_dicts(r.summary),
                    "paired_difference": {b: as_dicts(d) for b, d in r.differences.items()},
                    "gap_share": r.gap_share.as_dict() if r.gap_share is not None else None,
                    "agent_better_share": r.agent_better,
                }
                for r in self.per_seed
            },
            "paired_difference": {b: as_dicts(d) for b, d in self.differences.items()},
            "gap_share": self.gap_share.as_dict() if self.gap_share is not None else None,
        })


# Sections that decide the episodes, the baselines and the network: the same for every seed (train may
# differ: train.seed, and train.total_frames in a best.pt saved before a resume extended the run).
SHARED_SECTIONS = ("env", "inflow", "baselines", "agent")


def _same_config(configs: dict[int, Any], group: SeedGroup) -> None:
    """Refuse seeds whose checkpoints disagree on the sections that must be shared."""
    first = group.seeds[0]
    reference = config_to_dict(configs[first])
    for seed in group.seeds[1:]:
        raw = config_to_dict(configs[seed])
        for section in SHARED_SECTIONS:
            if raw[section] != reference[section]:
                raise UserError(f"{group.path}: seed-{seed} was trained with another {section!r} section than "
                                f"seed-{first}; evaluate the seeds one by one")


def evaluate_seeds(
    group: SeedGroup,
    episodes: int = 50,
    years: str = "heldout",
    baselines: str | Sequence[str] = "sop,hedging,rule,dp",
    seed: Optional[int] = None,
    out: Optional[str | Path] = None,
    csv_path: Optional[str | Path] = None,
    force: bool = False,
    resamples: int = DEFAULT_RESAMPLES,
    on_policy: Optional[Callable[[str], None]] = None,
) -> SeedsEvaluationReport:
    """Evaluate every seed of ``group`` and the ``baselines`` on the same ``episodes`` traces.

    ``seed`` is the env seed of the episodes; default: the seed of the first seed's in-training
    evaluations (``train.seed + EVAL_SEED_OFFSET``). Also writes ``evaluation.json`` into the run folder."""
    names, out, csv_path = check_arguments(episodes, years, baselines, out, csv_path, force)
    sources, payloads, configs = {}, {}, {}
    for s in group.seeds:
        run = group.run(s)
        if not run.path.is_dir():
            raise UserError(f"{run.path}: seed {s} has not started; `reservoir-rl resume {group.path}` trains it")
        sources[s] = locate_checkpoint(str(run.path), group.path)
        payloads[s], configs[s] = read_checkpoint(sources[s].path)
    _same_config(configs, group)
    config = configs[group.seeds[0]]
    if seed is None:
        seed = config.train.seed + EVAL_SEED_OFFSET
    seed_everything(seed)
    env = make_env(config, years, n_envs=episodes, seed=seed, inflow=load_inflow(config.inflow))
    policies: dict[str, Any] = {f"{AGENT}:{s}": greedy_actor(payloads[s], configs[s], env, sources[s].path)
                                for s in group.seeds}
    policies.update({name: make_baseline(name, env, config.baselines) for name in names})
    label = lambda key: f"{AGENT} (seed {key.split(':')[1]})" if key.startswith(AGENT) else key  # noqa: E731
    results, info = run_paired(env, policies, seed, None if on_policy is None else lambda key: on_policy(label(key)))

    agent_rows = [per_episode_values(results[f"{AGENT}:{s}"]) for s in group.seeds]
    per_episode = {AGENT: {k: torch.stack([row[k] for row in agent_rows]) for k in agent_rows[0]}}
    per_episode.update({name: per_episode_values(results[name]) for name in names})

    strata = StratifiedBootstrap(len(group.seeds), episodes, resamples=resamples)
    aggregate = {
        name: {k: {"mean": strata.mean(v), "iqm": strata.iqm(v)} for k, v in values.items()}
        for name, values in per_episode.items()
    }
    agent = per_episode[AGENT]
    differences = {b: {k: strata.mean(agent[k] - per_episode[b][k]) for k in HEADLINE_METRICS} for b in names}
    has_gap = "sop" in per_episode and "dp" in per_episode
    gap = strata.gap_share(agent["return"], per_episode["sop"]["return"], per_episode["dp"]["return"]) if has_gap else None

    paired = PairedBootstrap(episodes, resamples=resamples)
    per_seed = []
    for i, s in enumerate(group.seeds):
        mine = {k: v[i] for k, v in agent.items()}
        per_seed.append(SeedResult(
            seed=s, checkpoint=sources[s].path, frames=int(payloads[s]["counters"].get("frames", 0)),
            summary=paired.means(mine),
            differences={b: paired.means({k: mine[k] - per_episode[b][k] for k in HEADLINE_METRICS}) for b in names},
            gap_share=paired.gap_share(mine["return"], per_episode["sop"]["return"], per_episode["dp"]["return"])
            if has_gap else None,
            agent_better={b: float((mine["return"] > per_episode[b]["return"]).to(torch.float64).mean()) for b in names},
        ))
    report = SeedsEvaluationReport(
        run_dir=group.path, seeds=list(group.seeds), years=years, water_years=list(env.water_years),
        episodes=episodes, seed=seed, horizon_days=config.env.horizon_days,
        episode_info=episode_info_lists(env, info), per_episode=per_episode, aggregate=aggregate,
        per_seed=per_seed, differences=differences, gap_share=gap,
        bootstrap={**strata.settings(), "per_seed": paired.settings()},
    )
    document = json.dumps(report.to_json(), indent=1, allow_nan=False) + "\n"
    if out is not None:
        write_text_atomic(out, document)
        report.files.append(out)
    if csv_path is not None:
        write_text_atomic(csv_path, seeds_csv(report))
        report.files.append(csv_path)
    target = group.path / "evaluation.json"  # the program's own file in the run folder: replaced each time
    write_text_atomic(target, document)
    report.files.append(target)
    return report


def seeds_csv(report: SeedsEvaluationReport) -> str:
    """One row per episode, policy and seed: policy, seed, episode, the trace, every metric. A baseline
    does not depend on the agent's seed: its rows repeat for every seed (each seed's rows are a complete
    paired comparison)."""
    metrics = list(report.per_episode[AGENT])
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["policy", "seed", "episode", *EPISODE_FIELDS, *metrics])
    for name, values in report.per_episode.items():
        for i, s in enumerate(report.seeds):
            for e in range(report.episodes):
                trace = [report.episode_info[k][e] for k in EPISODE_FIELDS]
                row = [float(values[k][i, e] if values[k].dim() == 2 else values[k][e]) for k in metrics]
                writer.writerow([name, s, e, *trace, *("" if math.isnan(v) else repr(v) for v in row)])
    return buffer.getvalue()
