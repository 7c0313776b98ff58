"""The figures of a run drawn from what it recorded: learning curves and training panels from its
TensorBoard scalars, the policy comparison from its ``evaluation.json``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Optional

import numpy as np
from matplotlib.figure import Figure

from reservoir_rl.catalog import COMPARISON_METRICS, METRICS, YEARS_LABELS, metric_label, policy_label
from reservoir_rl.config import RewardConfig
from reservoir_rl.env.reward import COMPONENT_MEANINGS, COMPONENTS
from reservoir_rl.evaluation.report import RESULTS_FORMAT
from reservoir_rl.monitor.figures import learning_curve_figure, metric_panels_figure, policy_comparison_figure

# TensorBoard tag -> label of the learning curves
LEARNING_CURVES = {
    "episode/return_mean": "training episodes (ε-greedy, training years)",
    "eval/return": "greedy agent on the validation episodes",
}
Series = tuple[np.ndarray, np.ndarray]  # (frames (N,), values (N,)), as `reservoir_rl.runs.events.read_scalars` gives them
RESERVOIR_PANELS = ("energy_gwh", "spill_hm3", "flood_zone_days", "env_flow_deficit_days", "failures", "storage_mean_hm3")


def _pick(scalars: dict[str, Series], labels: dict[str, str]) -> dict[str, Series]:
    """label → series for the tags present (tag → label in ``labels``)."""
    return {label: scalars[tag] for tag, label in labels.items() if tag in scalars}


def return_caption(reward: RewardConfig, horizon_days: int) -> str:
    """What "return" means in physical terms, with the run's reward weights (figure captions)."""
    terms = []
    for name in COMPONENTS:
        weight = getattr(reward, name)
        if weight:
            sign = "+" if name == "hydropower" else "−"
            terms.append(f"{sign} {weight:g} × {COMPONENT_MEANINGS[name]}")
    return (f"return: the sum of an episode's daily rewards ({horizon_days} days unless a failure ends it), each day "
            + " ".join(terms).lstrip("+ ") + " (docs/reservoir.md)")


def learning_figure(scalars: dict[str, Series], references: dict[str, float], run_name: str, eval_episodes: int,
                    caption: str = "") -> Figure:
    """One seed's learning curve with the baselines' levels (``references``: label → mean return, scored on
    the validation episodes of the in-training evaluation); ``caption``: what the return is (`return_caption`)."""
    return learning_curve_figure(
        _pick(scalars, {"episode/return_mean": LEARNING_CURVES["episode/return_mean"],
                        "eval/return": f"greedy agent (validation, {eval_episodes} episodes)"}),
        reference_lines=references,
        ylabel="return per episode",
        title=f"{run_name}: learning curve; dashed: baselines on the same validation episodes",
        caption=caption,
    )


def training_figures(scalars: dict[str, Series], run_name: str) -> dict[str, Figure]:
    """Loss / ε / Q panels and reservoir metrics over training (training episodes and validation greedy)."""
    panels = {
        "loss": _pick(scalars, {"train/loss": "loss"}),
        "ε (exploration)": _pick(scalars, {"train/epsilon": "ε"}),
        "Q-value": _pick(scalars, {"agent/q_mean": "mean", "agent/q_max": "max", "agent/q_min": "min"}),
        "|TD error|": _pick(scalars, {"agent/td_error": "|TD error|"}),
        "learning rate": _pick(scalars, {"train/learning_rate": "learning rate"}),
        "frames per second": _pick(scalars, {"train/frames_per_second": "frames/s"}),
    }
    reservoir = {
        f"{METRICS[key].label}, per episode": _pick(scalars, {f"reservoir/{key}": "training episodes",
                                                              f"eval/{key}": "validation greedy"})
        for key in RESERVOIR_PANELS
    }
    return {
        "training": metric_panels_figure(panels, title=f"{run_name}: optimisation"),
        "reservoir_metrics": metric_panels_figure(reservoir, title=f"{run_name}: reservoir metrics over training"),
    }


def read_evaluation(path: Path) -> Optional[dict[str, Any]]:
    """The run's ``evaluation.json`` written by `evaluate`, or None if absent, unreadable or of another format."""
    if not path.is_file():
        return None
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    if not isinstance(document, dict) or document.get("format") != RESULTS_FORMAT:
        return None
    return document


def comparison_figure(document: dict[str, Any]) -> Figure:
    """Mean and interval of the main metrics per policy, from an evaluation.json document."""
    stats: dict[str, dict[str, tuple[Optional[float], Optional[float], Optional[float]]]] = {}
    for key in COMPARISON_METRICS:
        label = metric_label(key)
        stats[label] = {}
        for name, policy in document.get("policies", {}).items():
            s = policy.get("summary", {}).get(key)
            if s is not None:
                stats[label][policy_label(name)] = (s.get("mean"), s.get("ci_low"), s.get("ci_high"))
    boot = document.get("bootstrap", {})
    seeds = document.get("seeds") or []
    episodes = f"{document.get('episodes')} {YEARS_LABELS.get(document.get('years'), '')} episodes"
    if len(seeds) > 1:
        title = (f"{document.get('run_name')}, {len(seeds)} seeds: {episodes}; agent: mean over seeds; "
                 f"{boot.get('confidence', 0.95):.0%} stratified bootstrap intervals")
    else:
        frames = next(iter(document.get("per_seed", {}).values()), {}).get("frames", 0)
        title = (f"{document.get('run_name')} at frame {frames:,}: {episodes}, mean and "
                 f"{boot.get('confidence', 0.95):.0%} bootstrap interval")
    return policy_comparison_figure(stats, title=title)
