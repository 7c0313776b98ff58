"""The commented YAML config `init` writes, and the rewriting of a config's flood-control zone in place.

`config_text` writes every section: the reservoir from a `ReservoirDesign` (each value with its rule beside
it), the ``inflow`` section for the user's record, and the forecast, reward, baselines, agent, training and
logging settings of configs/base.yaml (``tests/design/test_config_text.py`` keeps them equal).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np

from reservoir_rl.design import sizing
from reservoir_rl.design.sizing import ReservoirDesign
from reservoir_rl.errors import ConfigError


@dataclass(frozen=True)
class RecordSource:
    """How the config finds the record: its ``inflow`` keys."""

    source: str  # csv | rdb
    path: str  # as written in the config (relative to the config's folder, or absolute)
    date_column: str = "date"
    flow_column: Optional[str] = None
    units: str = "cms"
    name: str = ""  # the record, for the header comment


def number(value: float) -> str:
    """A float as YAML reads it back exactly, without an exponent (``0.0123``, ``1500``)."""
    return np.format_float_positional(float(value), trim="-")


def curve_text(curve: Sequence[tuple[int, float]], fraction: bool = False) -> str:
    """``[[day, value], ...]`` on one line (fractions with 3 decimals)."""
    return "[" + ", ".join(f"[{int(d)}, {v:.3f}]" if fraction else f"[{int(d)}, {number(v)}]" for d, v in curve) + "]"


def _validation_line(n_years: int, span: str) -> str:
    """The ``validation_water_years`` line (two with its comment) for ``n_years`` validation years."""
    rule = "init writes 1 per 6 training years, at most 5, none below 2"
    if n_years == 0:
        return (f"{_kv('validation_water_years', 0, 2)}# 0 = the in-training evaluation (picks best.pt) runs on the training years:\n"
                f"                                  # too few to keep any out ({rule}); tune needs N > 0: the last N training years")
    years = f"the last {n_years} training years ({span})"
    return (f"{_kv('validation_water_years', n_years, 2)}# {years}, kept out of training: the in-training evaluation that picks\n"
            f"                                  # best.pt and every choice `reservoir-rl tune` makes run on them, never on held-out years ({rule})")


def _pct(share: float) -> str:
    return f"{share * 100:g} %"


def config_text(
    design: ReservoirDesign,
    record: RecordSource,
    heldout_water_years: int,
    train_span: str,
    firm_yield_cms: float,
    validation: tuple[int, str] = (0, ""),
) -> str:
    """The full config for ``design`` on ``record``; ``train_span`` names the training years ("1946–2004"),
    ``firm_yield_cms`` is the SOP target the design gives (for its comment), ``validation`` the number of
    validation water years and their span ("2000–2004"; init's rule: `commands.init.default_validation_years`)."""
    d, s = design, sizing
    levels = 11
    step_cms = d.release_capacity_cms / (levels - 1)
    flow_column = "null" if record.flow_column is None else repr(record.flow_column)
    lines = f"""\
# reservoir-rl — a reservoir sized by `reservoir-rl init` to {record.name}: mean inflow
# {d.mean_inflow_cms:,.4g} m³/s over the training water years {train_span}. Every reservoir value below is derived from
# the training years by the rule written beside it (reservoir_rl.design.sizing); the held-out years are never used.
# Check the design against what you know of your site (head, lake area, evaporation, demands) before trusting it.
#
# Units are part of every key: _hm3 = 10⁶ m³, _cms = m³/s, _m = metres, _mw = megawatts,
# _mm_per_day = evaporation depth. 1 m³/s sustained for one day = 0.0864 hm³.
# Every key may be overridden on the command line: --set train.total_frames=50000

env:
  reservoir:
    # active storage (capacity − dead) {number(d.active_storage_hm3)} hm³ = {d.storage_ratio_years:.3g} years of mean inflow volume: the storage a constant
    # release of {s.YIELD_FRACTION:g} × the mean inflow needs through the training years (sequent peak, no evaporation:
    # {d.required_storage_hm3:,.4g} hm³), kept within {s.STORAGE_RATIO_RANGE[0]:g}–{s.STORAGE_RATIO_RANGE[1]:g} years of mean inflow volume
    {_kv("capacity_hm3", number(d.capacity_hm3), 4)}# storage at the spillway crest (S_max) = active storage / {1 - s.DEAD_FRACTION:g}
    {_kv("dead_storage_hm3", number(d.dead_storage_hm3), 4)}# below the lowest outlet: never released ({s.DEAD_FRACTION:g} × capacity)
    {_kv("min_operating_hm3", number(d.min_operating_hm3), 4)}# minimum operating level: no power below it ({s.MIN_OPERATING_FRACTION:g} × capacity)
    # bottom of the flood-control zone by day of year [[day (0 = Jan 1), storage_hm3], ...], interpolated:
    # flood-control space = the largest {s.FLOOD_VOLUME_DAYS}-day inflow volume above the release capacity that the training
    # years brought within {s.FLOOD_WINDOW_DAYS} days of each date, at least {_pct(s.MIN_SPACE_FRACTION)} and at most {_pct(s.MAX_SPACE_FRACTION)} of capacity.
    # Made by: reservoir-rl flood-zone CONFIG --write (reservoir_rl.env.flood_zone)
    flood_zone_hm3: {curve_text(d.flood_zone_hm3)}
    {_kv("release_capacity_cms", number(d.release_capacity_cms), 4)}# controlled release: the flow exceeded on {_pct(s.RELEASE_EXCEEDANCE)} of training days (>= {s.RELEASE_MIN_MEAN_RATIO:g} × mean)
    {_kv("turbine_capacity_cms", number(d.turbine_capacity_cms), 4)}# maximum turbine flow: the flow exceeded on {_pct(s.TURBINE_EXCEEDANCE)} of training days (>= mean)
    # spill above this overtops the dam (a catastrophic flood failure). Design flood: the largest training day,
    # {d.largest_inflow_cms:,.4g} m³/s on {d.largest_inflow_date}, its part above the release capacity × {s.FLOOD_MARGIN:g} (the largest factor
    # inflow.train_flood_scale trains on), passed by release + spillway with the reservoir full
    spillway_capacity_cms: {number(d.spillway_capacity_cms)}
    {_kv("max_head_m", number(d.max_head_m), 4)}# head above tailwater at full storage (a {number(d.max_head_m)} m dam: set your site's)
    {_kv("level_exponent", number(d.level_exponent), 4)}# head = max_head_m · (S / S_max) ^ level_exponent
    level_table: null             # or [[storage_hm3, head_m], ...] to interpolate instead
    {_kv("efficiency", number(d.efficiency), 4)}# turbine-generator efficiency
    {_kv("installed_capacity_mw", number(d.installed_capacity_mw), 4)}# plant capacity = 9.81 kN/m³ × efficiency × turbine capacity × max head
    {_kv("area_at_capacity_km2", number(d.area_at_capacity_km2), 4)}# lake area at full storage = dS/dh there = capacity / (level_exponent × max_head_m)
    area_exponent: 0.7            # area = area_at_capacity_km2 · (S / S_max) ^ area_exponent
    evaporation_mm_per_day: 2.5   # mean lake evaporation depth (base.yaml's: set your climate's)
    evaporation_amplitude: 0.8    # seasonal swing of evaporation (fraction of the mean)
    evaporation_peak_day: 196     # day of year (0 = Jan 1) of the highest evaporation
    {_kv("env_flow_cms", number(d.env_flow_cms), 4)}# environmental minimum flow downstream: Q95, the flow exceeded on 95 % of training days
    supply_demand_cms: 0.0        # water-supply demand taken from the release (0 = none)
    supply_amplitude: 0.0         # seasonal swing of the demand (fraction)
    supply_peak_day: 196          # day of year of the highest demand
  forecast:
    lead_days: 10                 # inflow forecast in the observation, leads 1 (today) … 10
    error_sigma: 0.1              # log-normal error spread at lead 1
    error_growth: 0.5             # spread at lead k = error_sigma · k ^ error_growth
    scale: log                    # forecast features: ln(1 + inflow / reference), or linear: inflow / reference
    reference_inflow_cms: null    # the reference inflow, m³/s: null = the mean of the training years (never validation or
                                  # held-out years), whole_record = the whole record's mean (older runs), or a flow
  reward:                         # reward = Σ weight × component (components are dimensionless)
    hydropower: 1.0               # energy / maximum daily energy, in [0, 1]
    flood: 1.0                    # −(encroachment into the flood zone) / (depth of the zone), in [−1, 0]
    env_flow: 1.0                 # −(environmental-flow deficit) / env_flow_cms, in [−1, 0]
    supply: 1.0                   # −(supply deficit / demand)², in [−1, 0]
    spill: 0.1                    # −spill / (release capacity × 1 day)
    failure: 50.0                 # −1 on a catastrophic flood (overtopping) or critical drought (dead storage)
  safety:                         # the release guard (docs/safety.md): each day the chosen release is moved into the band
                                  # the observed forecast says is safe; it never reads the true future inflow
    enabled: true                 # false = the agent's action is executed as chosen (the rollouts before the guard existed)
    flood_quantile: 0.99          # overtopping check: each lead's inflow at this quantile of the forecast error model
    drought_quantile: 0.01        # dead-storage check: each lead's inflow at this quantile
    dead_storage_margin_fraction: 0.02  # the drought check keeps storage above dead storage + this share of capacity
    flood_reserve_days: 0         # > 0: the flood check also makes room, beyond the forecast window, for this many days of the
                                  # largest daily inflow the training years brought near that date (docs/safety.md); 0 = the window only
    flood_reserve_quantile: 1.0   # the reserve's design inflow of a date: this quantile of the training years' daily inflows
                                  # within 30 days of it; 1 = the largest
  {_kv("n_release_levels", levels, 2)}# discrete release levels 0, {step_cms:,.4g}, …, {number(d.release_capacity_cms)} m³/s
  horizon_days: 365               # episode length; reaching it is truncation (bootstrapping continues)
  terminate_on_failure: true      # end the episode on a catastrophic flood or drought
  initial_storage_fraction: [0.4, 0.85]  # initial storage drawn uniformly in this range of capacity
  extra_features: []              # optional observation features: flood_zone_fraction, day_fraction, sdp_release_fraction
                                  # (the SDP policy's release today / release capacity, docs/reservoir.md#observation)

inflow:
  {_kv("source", record.source, 2)}# bundled | csv | rdb (USGS NWIS daily values, ft³/s) | synthetic
  gauge: montague                 # bundled record: montague or trenton
  {_kv("path", _yaml_string(record.path), 2)}# relative to this file's folder
  {_kv("date_column", record.date_column, 2)}# csv only
  {_kv("flow_column", flow_column, 2)}# the flow column (null = the only one: csv, the other column; rdb, the <ts>_00060_00003 column)
  {_kv("units", record.units, 2)}# csv flow units: cms (m³/s), cfs (ft³/s) or hm3_per_day (rdb: always ft³/s)
  {_kv("heldout_water_years", heldout_water_years, 2)}# the last {heldout_water_years} complete water years are never trained on (nor used to size the reservoir)
  {_validation_line(*validation)}
  train_inflow_scale: [1.0, 1.0]  # each training episode's inflow trace × a factor drawn log-uniformly in [low, high]; [1, 1] = the record as it is
  train_flood_scale: [1.0, {s.FLOOD_MARGIN:g}]   # each training episode's floods (inflow above flood_threshold_cms) × a factor drawn log-uniformly in [low, high]
  flood_threshold_cms: null       # where train_flood_scale starts acting; null = env.reservoir.release_capacity_cms

baselines:
  target_release_cms: firm_yield  # SOP / hedging target: firm_yield = the largest constant release the active storage
                                  # sustains through the training years ({firm_yield_cms:,.4g} m³/s here), mean_inflow, or m³/s
  hedging_start_fraction: 0.6     # hedging starts when usable water falls below this fraction
  hedging_end_fraction: 0.2       # deepest hedging at this usable fraction
  hedging_min_release_fraction: 0.5  # share of the target released at the deepest hedging
  # [day of year, storage fraction]: the curve {curve_text(s.DEFAULT_RULE_CURVE, fraction=False)}
  # kept {_pct(s.RULE_MARGIN)} of capacity under the flood-control zone (reservoir-rl flood-zone CONFIG --write remakes it)
  rule_curve: {curve_text(d.rule_curve, fraction=True)}
{_COMMON_TAIL}"""
    return lines


def _kv(key: str, value: object, indent: int) -> str:
    """``key: value`` padded so the comment after it starts in column 35 (as in configs/base.yaml)."""
    text = f"{key}: {value}"
    return text + " " * max(1, 34 - indent - len(text))


def _yaml_string(text: str) -> str:
    """``text`` as a YAML string scalar (single-quoted, quotes doubled)."""
    return "'" + text.replace("'", "''") + "'"


# The settings every generated config shares with configs/base.yaml (kept equal by the tests).
_COMMON_TAIL = """\
  dp_storage_levels: 1000         # storage grid of the perfect-foresight DP
  mpc:                            # forecast-informed MPC: each day a DP over the forecast the agent observes
    storage_levels: 500           # storage grid of the daily plan, dead storage … capacity
    horizon_days: null            # days planned from today (today included), <= env.forecast.lead_days; null = lead_days
  sdp:                            # stochastic DP: storage × day × today's inflow class (docs/reservoir.md)
    inflow_classes: 7             # quantile classes of the training years' daily inflow in each period
    period_days: 7                # days per period whose training days give the classes and their transitions
    storage_levels: 200           # storage grid dead … capacity
    discount: null                # discount per day; null = agent.gamma (the objective the agent is trained on)
    tolerance: 0.0001             # value iteration stops when no greedy release changes and no value moves this much
    max_sweeps: 200               # sweeps of the annual cycle at most

agent:
  hidden_sizes: [128, 128]        # MLP 13 → 128 → 128 → 11
  activation: relu
  dueling: false
  double_dqn: true
  loss: smooth_l1                 # smooth_l1 | l2
  gamma: 0.99
  n_step: 1                       # n-step returns: the target sums n days of reward before bootstrapping
  munchausen_alpha: 0.9           # Munchausen DQN (docs/training.md): soft targets of softmax(Q / munchausen_tau) plus
                                  # alpha × clip(tau · log π(action), munchausen_clip, 0) on the reward; 0 = the DQN target.
                                  # The default recipe, chosen on the bundled rivers' validation years (docs/results.md)
  munchausen_tau: 0.03            # temperature of the target policy (reward units)
  munchausen_clip: -1.0           # lower clip of the log-policy bonus
  distributional_quantiles: 0     # QR-DQN (docs/training.md): N >= 2 quantiles of the return per release level; 0 = one Q-value

train:
  total_frames: 400000            # environment steps (days) collected in all
  n_envs: 32                      # reservoirs simulated in parallel (one batched env step each day)
  frames_per_batch: 64            # frames per collector batch (a multiple of n_envs)
  init_random_frames: 5000        # uniformly random warm-up before learning starts
  updates_per_frame: 0.25         # gradient updates per collected frame
  batch_size: 64
  buffer_size: 100000
  prioritized_replay: false
  priority_alpha: 0.6             # prioritized replay: sampling probability ∝ |TD error|^alpha (0 = uniform)
  priority_beta: 0.4              # prioritized replay: importance weights (p / p_min)^-beta (1 = full correction)
  lr: 0.001
  lr_end: 0.0001                  # linear decay target of the learning rate over lr_decay_frames; null = constant
  lr_decay_frames: 400000
  eps_start: 1.0                  # ε-greedy exploration, linear in absolute frames
  eps_end: 0.01
  eps_decay_frames: 50000
  target_update: hard             # hard | soft
  target_update_period: 500       # hard: gradient updates between target-network copies
  tau: 0.005                      # soft: Polyak rate per update
  grad_clip_norm: 10.0
  sdp_potential_weight: 0.0       # reward shaping of what the agent learns from: + w·(γ·V̄_SDP(s') − V̄_SDP(s)); 0 = off.
                                  # Leaves the optimal policy unchanged; reported and evaluated returns stay unshaped
  demonstrations:                 # DQfD (docs/training.md): a baseline's episodes in every update, with a large-margin loss
    teacher: null                 # sop | hedging | rule | sdp | mpc (no foresight); null = no demonstrations
    episodes: 32                  # teacher episodes on the training years, run once before training
    pretrain_updates: 1000        # updates on demonstrations alone before the first frame
    batch_size: 16                # demonstration transitions added to every update's replay batch
    margin: 0.8                   # large-margin loss: max_a[Q(s,a) + margin·(a ≠ a_teacher)] − Q(s, a_teacher)
    margin_weight: 1.0            # weight of that loss
  checkpoint_every_frames: 5000
  keep_checkpoints: 5             # periodic checkpoints kept (last.pt and best.pt are kept besides)
  eval_every_frames: 20000        # greedy evaluation on the validation episodes; picks best.pt
  eval_episodes: 10
  seed: 0
  eval_seed: 1000003              # env seed of the validation episodes, the same for every training seed (--seeds):
                                  # their validation returns pair up; null = train.seed + 1000003, each seed its own
  device: cpu                     # cpu | cuda: envs, networks and replay buffer on this device
  torch_threads: 1                # CPU threads of torch in the training process (0 = one per core)
  collector:                      # where environment steps are collected (docs/scaling.md)
    backend: sync                 # sync (training process) | process (worker processes) | ray (Ray actors)
    workers: 2                    # process / ray: workers, each stepping n_envs / workers reservoirs
    ray_address: null             # ray: running cluster ('auto', 'ray://host:10001'); null = start Ray locally

logging:
  log_every_frames: 1000
  figure_every_frames: 50000
  histogram_every_frames: 10000
  baseline_levels: true           # TensorBoard baselines/<name>: every baseline on the validation episodes
"""


def replace_flow_value(text: str, key: str, value_text: str, source: str) -> str:
    """``text`` (a YAML file) with the one-line value of ``key`` replaced by ``value_text``, its comment kept.

    The key must appear exactly once, at the start of a line (after indentation), with its value on that line
    (a flow list such as ``[[0, 928], ...]`` or a number); anything else is a one-line `ConfigError`."""
    pattern = re.compile(rf"^(?P<indent>[ \t]*){re.escape(key)}:[ \t]*(?P<value>[^#\n]*?)(?P<comment>[ \t]*#[^\n]*)?$",
                         re.MULTILINE)
    found = list(pattern.finditer(text))
    if len(found) != 1:
        raise ConfigError(f"{source}: need exactly one line '{key}: ...' to rewrite, found {len(found)}")
    match = found[0]
    value = match.group("value").strip()
    if not value or (value.startswith("[") and value.count("[") != value.count("]")):
        raise ConfigError(f"{source}: {key} must hold its whole value on its own line to be rewritten")
    line = f"{match.group('indent')}{key}: {value_text}{match.group('comment') or ''}"
    return text[: match.start()] + line + text[match.end():]
