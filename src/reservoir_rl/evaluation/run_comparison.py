"""The data behind the figures of several runs together: labels from the config keys that differ between
them, learning curves (mean and band over a run's seeds) and each run's held-out evaluation.

Plain data in, plain data out: the runs' configs as dicts (`reservoir_rl.config.config_to_dict`), their
TensorBoard scalars (`reservoir_rl.runs.events.read_scalars`, one dict per seed) and their evaluation.json
documents; the drawing is `reservoir_rl.monitor.comparison_figures`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping, Optional

import numpy as np

from reservoir_rl.catalog import AGENT, COMPARISON_METRICS, YEARS_LABELS, metric_label, policy_label
from reservoir_rl.evaluation.run_figures import LEARNING_CURVES, Series
from reservoir_rl.monitor.seed_figures import SeedCurves

IGNORED_SECTIONS = ("logging",)  # how a run logs: never what makes it a different run
LABEL_KEYS = 3  # differing keys a label names; more are counted ("+2 more")
VALUE_CHARS = 24  # a value longer than this is cut ("…")
RECORD_KEYS = ("source", "gauge", "path", "synthetic")  # the inflow keys that say which record (river) a run is on


@dataclass
class ComparedRun:
    """One run of a comparison: its name, flattened config (dotted key → value), every seed's scalars
    (seed label → tag → (frames (N,), values (N,))) and its evaluation.json document (None without one)."""

    name: str
    config: dict[str, Any]
    scalars: dict[str, dict[str, Series]]
    evaluation: Optional[dict[str, Any]] = None
    label: str = ""


def flatten(raw: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """A nested config dict as dotted keys (``train.lr``) → leaf values (lists kept whole)."""
    out: dict[str, Any] = {}
    for key, value in raw.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(flatten(value, f"{dotted}."))
        else:
            out[dotted] = value
    return out


def differing_keys(configs: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """The dotted keys whose values are not the same in every config (a key some lack counts), in the order
    of the first config, those of the `IGNORED_SECTIONS` left out."""
    keys: list[str] = []
    for flat in configs.values():
        keys += [k for k in flat if k not in keys]
    missing = object()
    differ = []
    for key in keys:
        if key.split(".")[0] in IGNORED_SECTIONS:
            continue
        values = [flat.get(key, missing) for flat in configs.values()]
        if any(v is missing or v != values[0] for v in values[1:]) or values[0] is missing:
            differ.append(key)
    return differ


def _value_text(value: Any) -> str:
    """A config value as a label shows it: short, cut at `VALUE_CHARS`."""
    text = "—" if value is None else (f"{value:g}" if isinstance(value, float) else str(value))
    text = text.replace(" ", "")
    return text if len(text) <= VALUE_CHARS else text[: VALUE_CHARS - 1] + "…"


def run_labels(runs: Mapping[str, Mapping[str, Any]], keys: list[str]) -> dict[str, str]:
    """Run name → ``run-3 (train.lr=0.0005, agent.n_step=3)``: the values of the differing ``keys`` (the
    first `LABEL_KEYS`, then "+N more"); a run lacking a key shows it as "—"."""
    labels = {}
    for name, flat in runs.items():
        shown = [f"{k}={_value_text(flat.get(k))}" for k in keys[:LABEL_KEYS]]
        if len(keys) > LABEL_KEYS:
            shown.append(f"+{len(keys) - LABEL_KEYS} more")
        labels[name] = f"{name} ({', '.join(shown)})" if shown else name
    if len(set(labels.values())) < len(labels):  # same name twice (two folders of one name): keep them apart
        labels = {name: f"{label} #{i + 1}" for i, (name, label) in enumerate(labels.items())}
    return labels


def record_of(flat: Mapping[str, Any]) -> str:
    """Which inflow record (river) a flattened config trains on, as one line."""
    source = flat.get("inflow.source")
    if source == "bundled":
        return f"bundled {flat.get('inflow.gauge')}"
    if source in ("csv", "rdb"):
        return f"{source} {flat.get('inflow.path')}"
    return f"synthetic (seed {flat.get('inflow.synthetic.seed')}, {flat.get('inflow.synthetic.n_years')} years)"


def run_curves(run: ComparedRun) -> dict[str, SeedCurves]:
    """Learning-curve label → the run's curves over its seeds (one seed: its own curve, no band)."""
    return {
        label: SeedCurves.from_series({s: scalars[tag] for s, scalars in run.scalars.items() if tag in scalars})
        for tag, label in LEARNING_CURVES.items()
    }


@dataclass
class EvaluationComparison:
    """The evaluation figure's data: metric label → row label (a run's name, or a baseline's short label with
    the run it comes from) → (mean, ci_low, ci_high); its title, its caption (the runs' full labels) and
    the notes about it."""

    stats: dict[str, dict[str, tuple[Optional[float], Optional[float], Optional[float]]]] = field(default_factory=dict)
    title: str = ""
    caption: str = ""
    notes: list[str] = field(default_factory=list)


def _agent_row(document: Mapping[str, Any], key: str) -> tuple[Optional[float], Optional[float], Optional[float]]:
    s = document.get("policies", {}).get(AGENT, {}).get("summary", {}).get(key) or {}
    return s.get("mean"), s.get("ci_low"), s.get("ci_high")


def _setting(document: Mapping[str, Any]) -> str:
    """An evaluation's episodes: ``50 held-out episodes, seed 1000014``."""
    years = YEARS_LABELS.get(document.get("years"), document.get("years"))
    return f"{document.get('episodes')} {years} episodes, seed {document.get('seed')}"


def compare_evaluations(runs: list[ComparedRun]) -> EvaluationComparison:
    """Each evaluated run's agent (mean and interval of every `COMPARISON_METRICS` metric, over its seeds)
    and, beside them, the baselines of the first evaluated run; runs without an evaluation are named in a
    note, and so are evaluations on other episodes than the first's (their intervals are then not paired)."""
    result = EvaluationComparison()
    evaluated = [r for r in runs if r.evaluation is not None]
    lacking = [r.name for r in runs if r.evaluation is None]
    if lacking:
        result.notes.append(f"no evaluation.json in {', '.join(lacking)} (`reservoir-rl evaluate RUN` writes one): "
                            "left out of the evaluation figure")
    if not evaluated:
        return result
    first = evaluated[0]
    others = sorted({_setting(r.evaluation) for r in evaluated[1:]} - {_setting(first.evaluation)})
    if others:
        result.notes.append(f"the runs were evaluated on different episodes ({_setting(first.evaluation)}; "
                            f"{'; '.join(others)}): their intervals are not paired")
    baselines = [name for name in first.evaluation.get("policies", {}) if name != AGENT]
    for key in COMPARISON_METRICS:
        rows = {r.name: _agent_row(r.evaluation, key) for r in evaluated}
        for name in baselines:
            s = first.evaluation["policies"][name].get("summary", {}).get(key) or {}
            rows[f"{policy_label(name, short=True)} ({first.name})"] = (s.get("mean"), s.get("ci_low"), s.get("ci_high"))
        result.stats[metric_label(key)] = rows
    confidence = first.evaluation.get("bootstrap", {}).get("confidence", 0.95)
    agents = f"{len(evaluated)} runs' agents" if len(evaluated) > 1 else f"{first.name}'s agent"
    result.title = (f"{agents} (mean over seeds) and {first.name}'s baselines: "
                    f"{_setting(first.evaluation)}, {confidence:.0%} bootstrap intervals")
    if any(r.label != r.name for r in evaluated):
        result.caption = "runs: " + "; ".join(r.label for r in evaluated)
    return result


def final_levels(curves: Mapping[str, SeedCurves]) -> dict[str, Optional[float]]:
    """Curve label → the mean over seeds at the last frame every seed logged (None when empty)."""
    return {label: (float(c.mean[-1]) if len(c.steps) else None) for label, c in curves.items()}

