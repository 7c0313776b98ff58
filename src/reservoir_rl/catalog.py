"""The one catalog of policies and metrics: names, labels, units, and how each policy is built.

Everything that shows a policy or a metric reads it from here: `evaluate` (its JSON, CSV and terminal
tables), `plot` (figure labels), the live training view and TensorBoard's ``reservoir/`` group, and
``scripts/results_report.py``. Adding a baseline = its class in `reservoir_rl.baselines` + one
`PolicyEntry` below (+ its config fields, tests and docs); adding a metric = its definition in
`reservoir_rl.env.metrics` (or `reservoir_rl.evaluation.reliability`) + one `MetricEntry`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Literal, Optional

from tensordict import TensorDictBase

from reservoir_rl.baselines.dp import PerfectForesightPolicy
from reservoir_rl.baselines.end_value import EndStorageValue
from reservoir_rl.baselines.mpc import forecast_mpc_with_sdp_value
from reservoir_rl.baselines.rules import HedgingPolicy, RuleCurvePolicy, StandardOperatingPolicy, target_release_hm3
from reservoir_rl.baselines.sdp import StochasticDPPolicy, sdp_solution
from reservoir_rl.config import Config
from reservoir_rl.env.reservoir_env import DiscreteReservoirEnv
from reservoir_rl.errors import UserError

Policy = Callable[[TensorDictBase], TensorDictBase]
PolicyFactory = Callable[[DiscreteReservoirEnv, Config], Policy]  # (env, the whole config) → policy


@dataclass(frozen=True)
class PolicyEntry:
    """A policy `evaluate` can compare: ``factory`` builds it for an env (None: the trained agent)."""

    name: str  # the key in --baselines, JSON and CSV
    label: str  # figures, JSON, reports
    short_label: str  # terminal table columns
    knows: str  # what information it acts on (documentation)
    factory: Optional[PolicyFactory] = None
    implementable: bool = True  # False: it knows the future (an upper bound, not an operating policy)
    # True: it maximises return + end-storage value (`reservoir_rl.baselines.end_value`), the upper bound of
    # that score, not of the raw return (in-training baseline levels, which are raw returns, leave it out)
    end_valued: bool = False


@dataclass(frozen=True)
class MetricEntry:
    """A per-episode metric: ``name`` is its key in the metrics `reservoir_rl.env.metrics` computes."""

    name: str
    label: str  # with its unit, e.g. "energy (GWh)"
    short_label: str  # terminal table rows
    unit: str  # "" when dimensionless
    better: Literal["higher", "lower", "neither"]
    headline: bool = False  # shown in evaluate's tables and the figures' comparison
    training: bool = False  # logged over training (TensorBoard ``reservoir/`` and ``eval/``)
    decimals: int = 3  # per-episode values in files (evaluate --csv): 0 = a whole count (days, failures, 0/1)


AGENT = "agent"

POLICIES: dict[str, PolicyEntry] = {p.name: p for p in (
    PolicyEntry(AGENT, "agent (greedy)", "agent", "storage, day of year and the forecast it observes"),
    PolicyEntry("sop", "SOP", "SOP", "storage and today's inflow; target: the training years' firm yield",
                lambda env, cfg: StandardOperatingPolicy(env, target_release_hm3(env, cfg.baselines))),
    PolicyEntry("hedging", "hedging", "hedging", "storage and today's inflow; target: the training years' firm yield",
                lambda env, cfg: HedgingPolicy(env, target_release_hm3(env, cfg.baselines),
                                               start_fraction=cfg.baselines.hedging_start_fraction,
                                               end_fraction=cfg.baselines.hedging_end_fraction,
                                               min_release_fraction=cfg.baselines.hedging_min_release_fraction)),
    PolicyEntry("rule", "rule curve", "rule curve", "storage, day of year and today's inflow",
                lambda env, cfg: RuleCurvePolicy(env, cfg.baselines.rule_curve)),
    PolicyEntry("sdp", "SDP (inflow classes)", "SDP", "storage, day of year and today's inflow",
                lambda env, cfg: StochasticDPPolicy(env, cfg)),
    PolicyEntry("mpc", "MPC (forecast)", "MPC", "storage, day of year and the forecast the agent observes",
                forecast_mpc_with_sdp_value),
    PolicyEntry("dp", "DP (foresight)", "DP", "the whole future inflow of the episode (an upper bound)",
                lambda env, cfg: PerfectForesightPolicy(env, n_storage=cfg.baselines.dp_storage_levels),
                implementable=False),
    PolicyEntry("dp_end", "DP (foresight, end storage valued)", "DP+end",
                "the whole future inflow of the episode; values the storage it leaves with the SDP's value "
                "(the upper bound of return + end-storage value)",
                lambda env, cfg: PerfectForesightPolicy(env, n_storage=cfg.baselines.dp_storage_levels,
                                                        end_value=EndStorageValue(env, sdp_solution(env, cfg))),
                implementable=False, end_valued=True),
)}
BASELINE_NAMES: tuple[str, ...] = tuple(name for name, p in POLICIES.items() if p.factory is not None)
# The baselines an operator could run (no foresight): the candidates for the best implementable baseline.
IMPLEMENTABLE_BASELINES: tuple[str, ...] = tuple(name for name in BASELINE_NAMES if POLICIES[name].implementable)
# The upper bounds: of the raw return (dp) and of return + end-storage value (dp_end).
RAW_RETURN_BOUND, END_VALUED_BOUND = "dp", "dp_end"
# The baselines whose raw return is what they optimise (the in-training baseline levels).
RAW_RETURN_BASELINES: tuple[str, ...] = tuple(name for name in BASELINE_NAMES if not POLICIES[name].end_valued)

METRICS: dict[str, MetricEntry] = {m.name: m for m in (
    MetricEntry("return", "return", "return", "", "higher", headline=True),
    # return + the value of the storage left at the end (`reservoir_rl.baselines.end_value`): evaluate only
    MetricEntry("return_end_valued", "return + end-storage value", "return+end", "", "higher", headline=True),
    MetricEntry("energy_gwh", "energy (GWh)", "energy GWh", "GWh", "higher", headline=True, training=True),
    MetricEntry("spill_hm3", "spill (hm³)", "spill hm³", "hm³", "lower", headline=True, training=True),
    MetricEntry("flood_zone_days", "flood-zone days", "flood days", "days", "lower", headline=True, training=True,
                decimals=0),
    MetricEntry("failures", "failures", "failures", "", "lower", headline=True, training=True, decimals=0),
    MetricEntry("env_flow_deficit_days", "env-flow deficit days", "e-flow days", "days", "lower", headline=True,
                training=True, decimals=0),
    MetricEntry("supply_reliability", "supply reliability", "reliability", "", "higher", headline=True, decimals=4),
    MetricEntry("supply_resilience", "supply resilience", "resilience", "", "higher", headline=True, decimals=4),
    MetricEntry("supply_vulnerability_hm3", "supply vulnerability (hm³/day)", "vulner. hm³/d", "hm³/day", "lower",
                headline=True),
    MetricEntry("success", "success rate", "success", "", "higher", headline=True, decimals=0),
    MetricEntry("length", "length (days)", "days", "days", "neither", decimals=0),
    MetricEntry("env_flow_deficit_hm3", "env-flow deficit (hm³)", "e-flow hm³", "hm³", "lower"),
    MetricEntry("supply_deficit_hm3", "supply deficit (hm³)", "supply hm³", "hm³", "lower", training=True),
    MetricEntry("supply_failure_days", "supply failure days", "supply days", "days", "lower", decimals=0),
    MetricEntry("release_hm3", "release (hm³)", "release hm³", "hm³", "neither"),
    MetricEntry("storage_mean_hm3", "mean storage (hm³)", "storage hm³", "hm³", "neither", training=True),
    MetricEntry("storage_min_hm3", "minimum storage (hm³)", "min storage", "hm³", "neither", training=True),
    MetricEntry("storage_max_hm3", "maximum storage (hm³)", "max storage", "hm³", "neither", training=True),
    MetricEntry("end_storage_value", "end-storage value", "end value", "", "higher"),
    # NaN for a policy that ran without the release guard (env.safety; evaluate --guard-baselines)
    MetricEntry("guard_override_fraction", "guard override share", "guard share", "", "neither", decimals=4),
)}
HEADLINE_METRICS: tuple[str, ...] = tuple(name for name, m in METRICS.items() if m.headline)
EXTRA_METRICS: tuple[str, ...] = tuple(name for name, m in METRICS.items() if not m.headline)
TRAINING_METRICS: tuple[str, ...] = tuple(name for name, m in METRICS.items() if m.training)
# The metrics of the comparison figure (`plot`'s evaluation.png), in panel order.
COMPARISON_METRICS = ("return", "energy_gwh", "spill_hm3", "flood_zone_days", "env_flow_deficit_days", "success")

# The live view's table of recent training episodes: key of the row (see the trainer's episode rows) ->
# column header (the metrics' short labels, so the table fits 80 columns) and format. Each count is its own
# column: "failures" counts its catastrophic-flood and critical-drought days (0 or 1 with
# env.terminate_on_failure, as a failure ends the episode), "e-flow days" its days below the environmental flow.
LIVE_EPISODE_COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("index", "#", "int"),
    ("return", METRICS["return"].short_label, ",.2f"),
    ("energy_gwh", METRICS["energy_gwh"].short_label, ",.2f"),
    ("spill_hm3", METRICS["spill_hm3"].short_label, ",.1f"),
    ("failures", METRICS["failures"].short_label, "int"),
    ("env_flow_deficit_days", METRICS["env_flow_deficit_days"].short_label, "int"),
    ("length", METRICS["length"].short_label, "int"),
)

YEARS_LABELS = {"heldout": "held-out", "validation": "validation-year", "train": "training-year", "all": "any-year"}


def policy_label(name: str, short: bool = False) -> str:
    """The label of policy ``name`` (a name not in the catalog is shown as it is)."""
    entry = POLICIES.get(name)
    if entry is None:
        return name
    return entry.short_label if short else entry.label


def metric_label(name: str, short: bool = False) -> str:
    """The label of metric ``name`` (a name not in the catalog is shown as it is)."""
    entry = METRICS.get(name)
    if entry is None:
        return name
    return entry.short_label if short else entry.label


def make_baseline(name: str, env: DiscreteReservoirEnv, config: Config) -> Policy:
    """The baseline ``name`` (one of `BASELINE_NAMES`) for ``env``, set up from ``config`` (its ``baselines``
    section; the SDP also reads ``agent.gamma`` and the training years of ``inflow``)."""
    entry = POLICIES.get(name)
    if entry is None or entry.factory is None:
        raise UserError(f"unknown baseline {name!r}; choose one of {', '.join(BASELINE_NAMES)}")
    return entry.factory(env, config)


def parse_baselines(text: str | list[str] | tuple[str, ...]) -> list[str]:
    """``"sop,dp"`` → ["sop", "dp"]; "all" → every baseline of the catalog, in catalog order; "none" → [];
    an empty list or entry ("", "sop,,dp"), unknown or repeated names are a one-line error."""
    names = [n.strip().lower() for n in (text.split(",") if isinstance(text, str) else text)]
    if not names or not all(names):
        given = text if isinstance(text, str) else ",".join(text)
        raise UserError(f"--baselines {given!r}: an empty name; give comma-separated names "
                        f"({','.join(BASELINE_NAMES)}), all or none")
    if names == ["none"]:
        return []
    if names == ["all"]:
        return list(BASELINE_NAMES)
    unknown = [n for n in names if n not in BASELINE_NAMES]
    if unknown:
        raise UserError(f"--baselines: unknown baseline {unknown[0]!r}; choose from {','.join(BASELINE_NAMES)} (or all, none)")
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise UserError(f"--baselines: {repeated[0]!r} is listed twice")
    return names
