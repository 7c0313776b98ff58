"""Use case `evaluate`: the greedy agent of a checkpoint against the field's operating rules, paired.

Every policy runs on the same env (``n_envs = episodes``) reset with the same seed, so episode i has the
same start day, inflow trace and initial storage for every policy (a paired comparison). Per policy and
metric: the mean over episodes with a 95 % percentile bootstrap interval; the paired difference agent −
baseline and the share of the SOP → DP gap the agent closes, (R_agent − R_sop) / (R_dp − R_sop), with
intervals from resampling episodes jointly (`reservoir_rl.evaluation.statistics`).
"""

from __future__ import annotations

import csv
import datetime as dt
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

import torch

from reservoir_rl.baselines import BASELINE_NAMES, make_baseline
from reservoir_rl.env.reservoir_env import make_env
from reservoir_rl.env.sources import load_inflow
from reservoir_rl.errors import UserError
from reservoir_rl.files import write_text_atomic
from reservoir_rl.training.build import EVAL_SEED_OFFSET, seed_everything
from reservoir_rl.evaluation.rollout import EvaluationResult, evaluate_policy, greedy_actor
from reservoir_rl.runs.locate import locate_checkpoint, read_checkpoint
from reservoir_rl.evaluation.statistics import DEFAULT_RESAMPLES, Estimate, PairedBootstrap

RESULTS_FORMAT = "reservoir-rl-evaluation"
RESULTS_VERSION = 1
YEAR_CHOICES = ("heldout", "validation", "train", "all")
AGENT = "agent"
POLICY_LABELS = {AGENT: "agent (greedy)", "sop": "SOP", "hedging": "hedging", "rule": "rule curve", "dp": "DP (foresight)"}
# Metrics of the report, in table order: name -> label (unit).
HEADLINE_METRICS = {
    "return": "return",
    "energy_gwh": "energy (GWh)",
    "spill_hm3": "spill (hm³)",
    "flood_zone_days": "flood-zone days",
    "failures": "failures",
    "env_flow_deficit_days": "env-flow deficit days",
    "supply_reliability": "supply reliability",
    "supply_resilience": "supply resilience",
    "supply_vulnerability_hm3": "supply vulnerability (hm³/day)",
    "success": "success rate",
}
# Further per-episode values kept in the JSON and CSV.
EXTRA_METRICS = ("length", "env_flow_deficit_hm3", "supply_deficit_hm3", "supply_failure_days", "release_hm3",
                 "storage_mean_hm3", "storage_min_hm3", "storage_max_hm3")
EPISODE_FIELDS = ("start_date", "start_record_index", "initial_storage_hm3", "trace_inflow_hm3")


@dataclass
class EvaluationReport:
    """Everything `evaluate` measured; per-episode tensors are float (episodes,), in episode order."""

    checkpoint: Path
    run_name: Optional[str]
    run_dir: Optional[Path]
    frames: int
    years: str
    water_years: list[int]
    episodes: int
    seed: int
    horizon_days: int
    episode_info: dict[str, list[Any]]
    per_episode: dict[str, dict[str, torch.Tensor]]  # policy -> metric -> (episodes,)
    summary: dict[str, dict[str, Estimate]]  # policy -> metric -> mean and interval
    differences: dict[str, dict[str, Estimate]]  # baseline -> metric -> agent − baseline
    gap_share: Optional[Estimate]  # None unless both sop and dp ran
    agent_better: dict[str, float]  # baseline -> share of episodes where the agent's return is higher
    bootstrap: dict[str, Any]
    results: dict[str, EvaluationResult] = field(repr=False, default_factory=dict)  # trajectories (not saved)
    files: list[Path] = field(default_factory=list)

    @property
    def policies(self) -> list[str]:
        return list(self.per_episode)

    def to_json(self) -> dict[str, Any]:
        """The JSON document: settings, per-policy summaries, paired comparisons and per-episode values."""
        return json_ready({
            "format": RESULTS_FORMAT,
            "format_version": RESULTS_VERSION,
            "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            "checkpoint": str(self.checkpoint),
            "run_name": self.run_name,
            "frames": self.frames,
            "years": self.years,
            "water_years": self.water_years,
            "episodes": self.episodes,
            "seed": self.seed,
            "horizon_days": self.horizon_days,
            "bootstrap": self.bootstrap,
            "metric_labels": HEADLINE_METRICS,
            "episode_info": self.episode_info,
            "policies": {
                name: {
                    "label": POLICY_LABELS[name],
                    "summary": {k: e.as_dict() for k, e in self.summary[name].items()},
                    "episodes": {k: v.tolist() for k, v in self.per_episode[name].items()},
                }
                for name in self.per_episode
            },
            "paired_difference": {b: {k: e.as_dict() for k, e in d.items()} for b, d in self.differences.items()},
            "gap_share": self.gap_share.as_dict() if self.gap_share is not None else None,
            "agent_better_share": self.agent_better,
        })


def json_ready(value: Any) -> Any:
    """Replace NaN / inf by None, recursively (strict JSON)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: json_ready(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_ready(v) for v in value]
    return value


def parse_baselines(text: str | Sequence[str]) -> list[str]:
    """``"sop,dp"`` → ["sop", "dp"]; unknown or repeated names are a one-line error; "" or "none" → []."""
    names = [n.strip().lower() for n in (text.split(",") if isinstance(text, str) else text)]
    names = [n for n in names if n]
    if names == ["none"]:
        return []
    unknown = [n for n in names if n not in BASELINE_NAMES]
    if unknown:
        raise UserError(f"--baselines: unknown baseline {unknown[0]!r}; choose from {','.join(BASELINE_NAMES)} (or none)")
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise UserError(f"--baselines: {repeated[0]!r} is listed twice")
    return names


def check_output_file(path: Optional[str | Path], force: bool, option: str) -> Optional[Path]:
    """Refuse to overwrite a user's file unless ``force``; a folder is never a valid output file."""
    if path is None:
        return None
    path = Path(path)
    if path.is_dir():
        raise UserError(f"{option} {path}: is a folder, not a file")
    if path.exists() and not force:
        raise UserError(f"{option} {path}: file exists; choose another name or add --force to overwrite it")
    return path


def _episode_info(env, result: EvaluationResult) -> dict[str, torch.Tensor]:
    """Start index, initial storage and total inflow of the whole trace of each episode (shape (episodes,))."""
    start = result.trajectory.get("record_index")[:, 0]
    return {
        "start_record_index": start,
        "initial_storage_hm3": result.trajectory.get("storage_hm3")[:, 0],
        "trace_inflow_hm3": env.inflow_trace_hm3(start, env.config.horizon_days).to(torch.float64).sum(dim=-1),
    }


def check_arguments(
    episodes: int, years: str, baselines: str | Sequence[str], out: Optional[str | Path],
    csv_path: Optional[str | Path], force: bool,
) -> tuple[list[str], Optional[Path], Optional[Path]]:
    """Validate the options of `evaluate`: (baseline names, --out path, --csv path)."""
    if episodes < 1:
        raise UserError(f"--episodes {episodes}: must be at least 1")
    if years not in YEAR_CHOICES:
        raise UserError(f"--years {years!r}: choose heldout, validation, train or all")
    names = parse_baselines(baselines)
    out = check_output_file(out, force, "--out")
    csv_path = check_output_file(csv_path, force, "--csv")
    if out is not None and csv_path is not None and out.resolve() == csv_path.resolve():
        raise UserError(f"--out and --csv name the same file {out}")
    return names, out, csv_path


def run_paired(
    env, policies: dict[str, Any], seed: int, on_policy: Optional[Callable[[str], None]] = None
) -> tuple[dict[str, EvaluationResult], dict[str, torch.Tensor]]:
    """Every policy on the same ``env`` reset with ``seed``; returns the results and the episodes' traces
    (start index, initial storage, trace inflow; checked identical for every policy)."""
    results: dict[str, EvaluationResult] = {}
    info: Optional[dict[str, torch.Tensor]] = None
    for name, policy in policies.items():
        if on_policy is not None:
            on_policy(name)
        results[name] = evaluate_policy(env, policy, seed)
        this = _episode_info(env, results[name])
        if info is None:
            info = this
        elif not all(torch.equal(info[k], this[k]) for k in info):  # the pairing is the point: never silently lost
            raise RuntimeError(f"policy {name!r} was not evaluated on the same traces as the first policy")
    assert info is not None
    return results, info


def per_episode_values(result: EvaluationResult) -> dict[str, torch.Tensor]:
    """The report's metrics of one policy: name → float64 (episodes,) on the CPU."""
    return {k: result.metrics[k].detach().cpu().to(torch.float64) for k in (*HEADLINE_METRICS, *EXTRA_METRICS)}


def episode_info_lists(env, info: dict[str, torch.Tensor]) -> dict[str, list[Any]]:
    """The episodes' traces as JSON-ready lists (start date, start index, initial storage, trace inflow)."""
    start = info["start_record_index"].cpu()
    return {
        "start_date": [str(d) for d in env.inflow.dates[start.numpy()]],
        "start_record_index": start.tolist(),
        "initial_storage_hm3": info["initial_storage_hm3"].cpu().tolist(),
        "trace_inflow_hm3": info["trace_inflow_hm3"].cpu().tolist(),
    }


def evaluate(
    ckpt: str | Path,
    episodes: int = 50,
    years: str = "heldout",
    baselines: str | Sequence[str] = "sop,hedging,rule,dp",
    seed: Optional[int] = None,
    out: Optional[str | Path] = None,
    csv_path: Optional[str | Path] = None,
    force: bool = False,
    runs_dir: str | Path = "runs",
    resamples: int = DEFAULT_RESAMPLES,
    on_policy: Optional[Callable[[str], None]] = None,
) -> EvaluationReport:
    """Evaluate the greedy agent of ``ckpt`` and the ``baselines`` on the same ``episodes`` traces.

    Args:
        ckpt: a checkpoint file, or a run (name under ``runs_dir`` or folder) → its ``checkpoints/best.pt``.
        episodes: number of paired episodes (≥ 1), all simulated at once.
        years: water years the episodes start in: ``heldout`` (never trained on), ``validation`` (the
            in-training evaluation's years), ``train`` or ``all``.
        baselines: comma-separated subset of sop, hedging, rule, dp ("none" for the agent alone).
        seed: env seed (start days, initial storages, forecast errors); default: the seed of the
            in-training evaluations (``train.seed + EVAL_SEED_OFFSET``), so ``years="validation"`` with
            ``train.eval_episodes`` episodes reproduces them.
        out / csv_path: JSON / CSV files to write; existing files are refused unless ``force``.
        on_policy: called with each policy's name before it runs (progress display).

    A run given by name or folder also gets ``evaluation.json`` (the JSON document) in its folder.
    """
    names, out, csv_path = check_arguments(episodes, years, baselines, out, csv_path, force)
    source = locate_checkpoint(ckpt, runs_dir)
    payload, config = read_checkpoint(source.path)
    if seed is None:
        seed = config.train.seed + EVAL_SEED_OFFSET
    seed_everything(seed)
    inflow = load_inflow(config.inflow)
    env = make_env(config, years, n_envs=episodes, seed=seed, inflow=inflow)
    policies = {AGENT: greedy_actor(payload, config, env, source.path)}
    for name in names:
        policies[name] = make_baseline(name, env, config.baselines)
    results, info = run_paired(env, policies, seed, on_policy)
    per_episode = {name: per_episode_values(res) for name, res in results.items()}
    boot = PairedBootstrap(episodes, resamples=resamples)
    summary = {name: boot.means(values) for name, values in per_episode.items()}
    agent = per_episode[AGENT]
    differences = {
        name: boot.means({k: agent[k] - per_episode[name][k] for k in HEADLINE_METRICS}) for name in names
    }
    agent_better = {name: float((agent["return"] > per_episode[name]["return"]).to(torch.float64).mean()) for name in names}
    gap = None
    if "sop" in per_episode and "dp" in per_episode:
        gap = boot.gap_share(agent["return"], per_episode["sop"]["return"], per_episode["dp"]["return"])
    episode_info = episode_info_lists(env, info)
    report = EvaluationReport(
        checkpoint=source.path,
        run_name=payload.get("run_name"),
        run_dir=source.run.path if source.run else None,
        frames=int(payload["counters"].get("frames", 0)),
        years=years,
        water_years=list(env.water_years),
        episodes=episodes,
        seed=seed,
        horizon_days=config.env.horizon_days,
        episode_info=episode_info,
        per_episode=per_episode,
        summary=summary,
        differences=differences,
        gap_share=gap,
        agent_better=agent_better,
        bootstrap=boot.settings(),
        results=results,
    )
    _write_outputs(report, out, csv_path, source.run.path if source.run else None)
    return report


def _write_outputs(report: EvaluationReport, out: Optional[Path], csv_path: Optional[Path], run_dir: Optional[Path]) -> None:
    document = json.dumps(report.to_json(), indent=1, allow_nan=False) + "\n"
    if out is not None:
        write_text_atomic(out, document)
        report.files.append(out)
    if csv_path is not None:
        write_text_atomic(csv_path, episodes_csv(report))
        report.files.append(csv_path)
    if run_dir is not None:
        target = run_dir / "evaluation.json"  # the program's own file in the run folder: replaced each time
        write_text_atomic(target, document)
        report.files.append(target)


def episodes_csv(report: EvaluationReport) -> str:
    """One row per episode and policy: policy, episode, the trace (start, storage, inflow), every metric."""
    import io

    metrics = list(next(iter(report.per_episode.values())))
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["policy", "episode", *EPISODE_FIELDS, *metrics])
    for name, values in report.per_episode.items():
        for i in range(report.episodes):
            trace = [report.episode_info[k][i] for k in EPISODE_FIELDS]
            row = [float(values[k][i]) for k in metrics]
            writer.writerow([name, i, *trace, *("" if math.isnan(v) else repr(v) for v in row)])
    return buffer.getvalue()
