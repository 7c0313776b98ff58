"""Use case `evaluate`: the greedy agent of every seed of a run (one seed for a plain run or a checkpoint
file) against the field's operating rules, paired by episode.

Every policy runs on the same env (``n_envs = episodes``) reset with the same seed, so episode i has the
same start day, inflow trace and initial storage for every policy and every seed (a paired comparison).
Statistics: `reservoir_rl.evaluation.report`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

import torch

from reservoir_rl.baselines.rules import target_warning
from reservoir_rl.catalog import AGENT, BASELINE_NAMES, IMPLEMENTABLE_BASELINES, make_baseline, parse_baselines
from reservoir_rl.config import Config, check_seed, config_to_dict
from reservoir_rl.design.plausibility import plausibility_warnings, raise_if_strict
from reservoir_rl.baselines.features import build_env
from reservoir_rl.env.safety import guarded
from reservoir_rl.env.sources import load_inflow
from reservoir_rl.errors import UserError
from reservoir_rl.evaluation.end_storage import value_end_storage
from reservoir_rl.evaluation.failures import window_failures
from reservoir_rl.evaluation.paired import episode_info_lists, per_episode_values, run_paired
from reservoir_rl.evaluation.report import EvaluationReport, SeedResult, compare
from reservoir_rl.evaluation.rollout import greedy_actor
from reservoir_rl.evaluation.statistics import DEFAULT_RESAMPLES
from reservoir_rl.evaluation.traces import TRACE_FILE, parse_start_dates, select_episodes, trace_csv, trace_rows
from reservoir_rl.evaluation.validation import best_implementable, validation_returns
from reservoir_rl.runs.folders import check_writable_folder, write_run_file
from reservoir_rl.runs.groups import SeedGroup, find_group
from reservoir_rl.runs.resources import check_memory, evaluation_bytes
from reservoir_rl.runs.inflow_data import check_inflow_unchanged
from reservoir_rl.runs.locate import CheckpointSource, locate_checkpoint, read_checkpoint, require_finite_weights
from reservoir_rl.training.build import seed_everything

YEAR_CHOICES = ("heldout", "validation", "train", "all")
GUARDABLE_BASELINES = IMPLEMENTABLE_BASELINES  # --guard-baselines: the rules, SDP and MPC; never DP (it knows the future)
# Sections that decide the episodes, the baselines and the network: the same for every seed (train may
# differ: train.seed, and train.total_frames in a best.pt saved before a resume extended the run).
SHARED_SECTIONS = ("env", "inflow", "baselines", "agent")


@dataclass
class AgentCheckpoint:
    """One seed's checkpoint: where it is, its payload and its config."""

    seed: int
    source: CheckpointSource
    payload: dict[str, Any]
    config: Config

    @property
    def frames(self) -> int:
        return int(self.payload["counters"].get("frames", 0))


def check_output_file(path: Optional[str | Path], force: bool, option: str) -> Optional[Path]:
    """Refuse to overwrite a user's file unless ``force``; a folder is never a valid output file."""
    if path is None:
        return None
    path = Path(path)
    if path.is_dir():
        raise UserError(f"{option} {path}: is a folder, not a file")
    if path.exists() and not force:
        raise UserError(f"{option} {path}: file exists; choose another name or add --force to overwrite it")
    check_writable_folder(path.parent, f"{option} {path}: folder")
    return path


def larger_run_evaluation(path: Path, episodes: int, policies: list[str], force: bool) -> Optional[str]:
    """Why the run's evaluation.json must be kept (a larger evaluation: more episodes, or a policy this one
    lacks), or None when this evaluation may replace it (or ``force``): a quick look never erases a long one."""
    if force or not path.is_file():
        return None
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
        held_episodes, held = int(document["episodes"]), set(document["policies"])
    except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError):
        return None  # not a document of this program's (or unreadable): nothing to protect
    missing = sorted(held - set(policies))
    if held_episodes <= episodes and not missing:
        return None
    what = f"{held_episodes:,} episodes" + (f" with {', '.join(missing)}" if missing else "")
    return f"kept {path} (an evaluation on {what}); add --force to replace it with this one"


def check_arguments(
    episodes: int, years: str, baselines: str | Sequence[str], out: Optional[str | Path],
    csv_path: Optional[str | Path], force: bool, seed: Optional[int] = None,
) -> tuple[list[str], Optional[Path], Optional[Path]]:
    """Validate the options of `evaluate`: (baseline names, --out path, --csv path)."""
    if episodes < 1:
        raise UserError(f"--episodes {episodes}: must be at least 1")
    if seed is not None:
        check_seed(seed)
    if years not in YEAR_CHOICES:
        raise UserError(f"--years {years!r}: choose heldout, validation, train or all")
    names = parse_baselines(baselines)
    out = check_output_file(out, force, "--out")
    csv_path = check_output_file(csv_path, force, "--csv")
    if out is not None and csv_path is not None and out.resolve() == csv_path.resolve():
        raise UserError(f"--out and --csv name the same file {out}")
    return names, out, csv_path


def _seed_checkpoints(group: SeedGroup) -> list[AgentCheckpoint]:
    """Every seed's best.pt (last.pt before its first evaluation); the shared sections must agree."""
    agents = []
    for s in group.seeds:
        run = group.run(s)
        if not run.path.is_dir():
            raise UserError(f"{run.path}: seed {s} has not started; `reservoir-rl resume {group.path}` trains it")
        source = locate_checkpoint(str(run.path), group.path)
        agents.append(AgentCheckpoint(s, source, *read_checkpoint(source.path)))
    reference = config_to_dict(agents[0].config)
    for agent in agents[1:]:
        raw = config_to_dict(agent.config)
        for section in SHARED_SECTIONS:
            if raw[section] != reference[section]:
                raise UserError(f"{group.path}: seed-{agent.seed} was trained with another {section!r} section than "
                                f"seed-{agents[0].seed}; evaluate the seeds one by one")
    return agents


def agent_checkpoints(ckpt: str | Path, runs_dir: str | Path = "runs") -> tuple[list[AgentCheckpoint], Optional[Path]]:
    """The agents ``ckpt`` names and the run folder they belong to: every seed of a multi-seed run, or the
    one checkpoint of a run (its best.pt) or of a file (then no run folder)."""
    group = find_group(ckpt, runs_dir)
    if group is not None:
        return _seed_checkpoints(group), group.path
    source = locate_checkpoint(ckpt, runs_dir)
    payload, config = read_checkpoint(source.path)
    return [AgentCheckpoint(config.train.seed, source, payload, config)], (source.run.path if source.run else None)


def evaluate(
    ckpt: str | Path,
    episodes: int = 50,
    years: str = "heldout",
    baselines: str | Sequence[str] = BASELINE_NAMES,
    seed: Optional[int] = None,
    out: Optional[str | Path] = None,
    csv_path: Optional[str | Path] = None,
    force: bool = False,
    runs_dir: str | Path = "runs",
    resamples: int = DEFAULT_RESAMPLES,
    on_policy: Optional[Callable[[str], None]] = None,
    allow_changed_inflow: bool = False,
    strict: bool = False,
    on_warning: Optional[Callable[[str], None]] = None,
    guard_baselines: bool = False,
    trace: Optional[str | Path] = None,
    start_dates: Sequence[str] = (),
) -> EvaluationReport:
    """Evaluate the greedy agent of ``ckpt`` (every seed of a multi-seed run) and the ``baselines`` on the
    same ``episodes`` traces.

    Args:
        ckpt: a checkpoint file, or a run (name under ``runs_dir`` or folder) → its ``checkpoints/best.pt``
            (``last.pt`` before its first evaluation); a multi-seed run → every seed's.
        episodes: number of paired episodes (≥ 1), all simulated at once.
        years: water years the episodes start in: ``heldout`` (never trained on), ``validation`` (the
            in-training evaluation's years), ``train`` or ``all``.
        baselines: comma-separated subset of the catalog's baselines ("none" for the agent alone).
        seed: env seed (start days, initial storages, forecast errors); default: the seed of the (first
            seed's) in-training evaluations (``train.validation_env_seed``), so ``years="validation"``
            with ``train.eval_episodes`` episodes reproduces them.
        out / csv_path: JSON / CSV files to write; existing files are refused unless ``force``.
        on_policy: called with each policy's label before it runs (progress display).
        guard_baselines: run every baseline but ``dp`` under the release guard the agent runs with (its
            config's ``env.safety``; nothing changes when that is off). DP (dp, dp_end) is never guarded.
        trace: a folder to write ``trace.csv`` into: the day-by-day rows of the traced episodes for every
            policy (and every seed's agent), columns of `reservoir_rl.evaluation.traces`; an existing
            ``trace.csv`` there is refused unless ``force``.
        start_dates: the episodes to trace, by start date (YYYY-MM-DD; each must be the start of one of the
            evaluated episodes); default: every episode of an evaluation of at most 10, else the first.

    The agent runs under its release guard (``env.safety`` of its config). The report counts each policy's
    failed episodes and, with ``dp`` among the baselines, the avoidable ones (DP avoided them on the same trace).

    With ``dp`` among the baselines, the report also gives the share of the gap from the best implementable
    baseline to DP; that baseline is the one of ``baselines`` without foresight with the highest mean return
    on the ``train.eval_episodes`` validation episodes of the (first seed's) in-training evaluation, so
    held-out years never take part in choosing it.

    A run given by name or folder also gets ``evaluation.json`` (the JSON document) in its folder, unless
    that file holds a larger evaluation (more episodes, or a policy this one lacks) and not ``force``: it is
    then kept, and a note says so.

    Each seed's run must still find the record file it trained on unchanged (`check_inflow_unchanged`; a
    checkpoint file named outside its run folder is not checked) unless ``allow_changed_inflow``; the
    config's plausibility warnings go to ``on_warning`` (``strict``: the first one is an error).
    """
    names, out, csv_path = check_arguments(episodes, years, baselines, out, csv_path, force, seed)
    trace_path, dates = check_trace(trace, start_dates, force, [p for p in (out, csv_path) if p is not None])
    agents, run_dir = agent_checkpoints(ckpt, runs_dir)
    for agent in agents:
        require_finite_weights(agent.payload, agent.source.path)
    if run_dir is not None:  # its evaluation.json: a read-only run folder is reported before the work
        check_writable_folder(run_dir, "run folder")
    keep = larger_run_evaluation(run_dir / "evaluation.json", episodes, [AGENT, *names], force) if run_dir else None
    n_policies = len(agents) + len(names)
    check_memory(evaluation_bytes(agents[0].config, episodes, n_policies),
                 f"--episodes {episodes}: {n_policies} policies × {episodes:,} episodes × {agents[0].config.env.horizon_days} days",
                 "evaluate fewer episodes or fewer baselines")
    config = agents[0].config
    for agent in agents:
        if agent.source.run is not None:
            check_inflow_unchanged(agent.source.run, agent.config.inflow, allow_changed_inflow)
    record = load_inflow(config.inflow)
    raise_if_strict(plausibility_warnings(config, record), strict, on_warning)
    if seed is None:
        seed = config.train.validation_env_seed
    seed_everything(seed)
    env = build_env(config, years, n_envs=episodes, seed=seed, inflow=record)
    traced = select_episodes(env, seed, dates, years) if trace_path is not None else []
    policies: dict[str, Any] = {f"{AGENT}:{a.seed}": guarded(greedy_actor(a.payload, a.config, env, a.source.path), env)
                                for a in agents}
    guard_on = {AGENT: config.env.safety.enabled}
    for name in names:
        guard_on[name] = guard_baselines and config.env.safety.enabled and name in GUARDABLE_BASELINES
        baseline = make_baseline(name, env, config)
        policies[name] = guarded(baseline, env) if guard_on[name] else baseline
    several = len(agents) > 1
    label = lambda key: (f"{AGENT} (seed {key.split(':')[1]})" if several else AGENT) if key.startswith(f"{AGENT}:") else key  # noqa: E731
    results, info = run_paired(env, policies, seed, None if on_policy is None else lambda key: on_policy(label(key)))
    end_value_note = value_end_storage(env, config, results.values())

    rows = [per_episode_values(results[f"{AGENT}:{a.seed}"]) for a in agents]
    per_episode = {AGENT: {k: torch.stack([row[k] for row in rows]) for k in rows[0]}}
    per_episode.update({name: per_episode_values(results[name]) for name in names})
    seeds = [a.seed for a in agents]
    returns = {}
    if "dp" in names:  # the best implementable baseline, chosen on the validation episodes, never held-out
        candidates = [n for n in names if n in IMPLEMENTABLE_BASELINES]
        returns = validation_returns(config, env.inflow, candidates) if candidates else {}
    best = best_implementable(returns)
    stats = compare(per_episode, seeds, resamples, best)
    per_seed = [SeedResult(seed=a.seed, checkpoint=a.source.path, frames=a.frames, **stats["per_seed"][a.seed])
                for a in agents]
    report = EvaluationReport(
        run_name=run_dir.name if run_dir is not None else agents[0].payload.get("run_name"),
        run_dir=run_dir, seeds=seeds, years=years, water_years=list(env.water_years), episodes=episodes,
        seed=seed, horizon_days=config.env.horizon_days, episode_info=episode_info_lists(env, info),
        per_episode=per_episode, summary=stats["summary"], iqm=stats["iqm"], per_seed=per_seed,
        differences=stats["differences"], gap_share=stats["gap_share"], agent_better=stats["agent_better"],
        bootstrap=stats["bootstrap"], best_baseline=best, gap_share_best=stats["gap_share_best"],
        gap_share_end=stats["gap_share_end"], gap_share_best_end=stats["gap_share_best_end"],
        validation_returns=returns, validation_episodes=config.train.eval_episodes if returns else 0,
        agent_results={a.seed: results[f"{AGENT}:{a.seed}"] for a in agents},
        results={name: results[name] for name in names},
        notes=_notes(env, config, names) + [note for note in (end_value_note, keep) if note], guarded=guard_on,
        in_window=_in_window(env, results, agents, config.baselines.dp_storage_levels),
    )
    _write_outputs(report, out, csv_path, run_file=keep is None)
    if trace_path is not None:
        rows = [row for a in agents for row in trace_rows(AGENT, a.seed, results[f"{AGENT}:{a.seed}"], env, traced)]
        rows += [row for name in names for row in trace_rows(name, None, results[name], env, traced)]
        write_run_file(trace_path, trace_csv(rows))
        report.files.append(trace_path)
        report.traced_episodes = traced
    return report


def check_trace(trace: Optional[str | Path], start_dates: Sequence[str], force: bool,
                other_outputs: Sequence[Path]) -> tuple[Optional[Path], list]:
    """(``trace.csv`` in the --trace folder, the --start-date dates) checked before any work: the folder is
    writable, its trace.csv is not replaced without ``force``, dates are dates and come with --trace."""
    dates = parse_start_dates(start_dates)
    if trace is None:
        if dates:
            raise UserError("--start-date picks the episodes --trace writes: add --trace DIR")
        return None, []
    folder = Path(trace)
    if folder.exists() and not folder.is_dir():
        raise UserError(f"--trace {folder}: is a file, not a folder")
    check_writable_folder(folder, "--trace")
    path = folder / TRACE_FILE
    if path.exists() and not force:
        raise UserError(f"--trace {folder}: {TRACE_FILE} exists; choose another folder or add --force to overwrite it")
    if any(path.resolve() == other.resolve() for other in other_outputs):
        raise UserError(f"--trace {folder}: {path} is also named by --out or --csv")
    return path, dates


def _in_window(env, results: dict[str, Any], agents: list, n_storage: int) -> dict[str, torch.Tensor]:
    """`window_failures` of the evaluation, keyed as the report keys policies (the agent's seeds stacked,
    (seeds, E)); empty without DP."""
    found = window_failures(env, {name: result.trajectory for name, result in results.items()}, n_storage)
    if not found:
        return {}
    agent = torch.stack([found.pop(f"{AGENT}:{a.seed}") for a in agents])
    return {AGENT: agent, **found}


def _notes(env, config: Config, names: list[str]) -> list[str]:
    """One line each about how the baselines that ran were set up (a SOP / hedging target below the first level)."""
    warning = target_warning(env, config.baselines) if {"sop", "hedging"} & set(names) else None
    return [warning] if warning else []


def _write_outputs(report: EvaluationReport, out: Optional[Path], csv_path: Optional[Path], run_file: bool) -> None:
    document = json.dumps(report.to_json(), indent=1, allow_nan=False) + "\n"
    targets = [(out, document), (csv_path, report.to_csv() if csv_path is not None else "")]
    if report.run_dir is not None and run_file:  # the program's own file in the run folder (unless a larger one)
        targets.append((report.run_dir / "evaluation.json", document))
    for path, text in targets:
        if path is None:
            continue
        write_run_file(path, text)
        report.files.append(path)
