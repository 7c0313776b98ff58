"""Daily traces of evaluated episodes: which episodes (``--start-date`` or a default) and their day-by-day rows.

A trace is one long table, one row per policy, seed, episode and day (``trace.csv``, loadable with one
``pandas.read_csv``). Columns (`TRACE_COLUMNS`):

- ``policy`` (catalog name), ``seed`` (the agent's seed; empty for a baseline, which does not depend on it),
  ``episode`` (0-based index of the evaluation's episodes, as in its JSON and ``--csv``), ``date`` (the day,
  YYYY-MM-DD), ``day`` (1 = the episode's first day);
- ``storage_hm3`` (start of the day), ``inflow_cms``, ``release_cms``, ``spill_cms``, ``evaporation_hm3``,
  ``storage_end_hm3`` (end of the day: storage + inflow − evaporation − release − spill, all in hm³), and
  ``energy_mwh`` of the day;
- ``reward_<component>`` for each component of `reservoir_rl.env.reward.COMPONENTS`, weighted (the
  component × its weight in ``env.reward``), and ``reward`` (their sum, the day's reward);
- ``action`` (the release level executed, 0 … n−1), ``release_level_cms`` (what that level asks for), and
  ``guard_override`` (true when the release guard changed the policy's level that day; empty for a policy
  run without the guard).

Rows stop at an episode's last day (a failure ends it early). Volumes are rounded to 1,000 m³ (3 decimals
of hm³), flows to 0.001 m³/s, energy to 1 kWh, rewards to 6 decimals: no float32 noise.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
from typing import Any, Optional, Sequence

import numpy as np
import torch

from reservoir_rl.env.inflow import episode_start_indices
from reservoir_rl.env.metrics import first_done_mask
from reservoir_rl.env.reservoir_env import DiscreteReservoirEnv
from reservoir_rl.env.reward import COMPONENTS
from reservoir_rl.env.safety import GUARD_OVERRIDE_KEY
from reservoir_rl.errors import UserError
from reservoir_rl.evaluation.rollout import EvaluationResult
from reservoir_rl.units import HM3_PER_CMS_DAY

TRACE_FILE = "trace.csv"
# Without --start-date: every episode of an evaluation of at most this many, else only the first.
DEFAULT_TRACE_EPISODES = 10
NEAREST_DATES = 5  # dates an error about --start-date lists
TRACE_COLUMNS = (
    "policy", "seed", "episode", "date", "day", "storage_hm3", "inflow_cms", "release_cms", "spill_cms",
    "evaporation_hm3", "storage_end_hm3", "energy_mwh", *(f"reward_{name}" for name in COMPONENTS), "reward",
    "action", "release_level_cms", "guard_override",
)
# decimals of the numeric columns (the others are integers or text)
TRACE_DECIMALS = {"storage_hm3": 3, "inflow_cms": 3, "release_cms": 3, "spill_cms": 3, "evaporation_hm3": 3,
                  "storage_end_hm3": 3, "energy_mwh": 3, "reward": 6, "release_level_cms": 3,
                  **{f"reward_{name}": 6 for name in COMPONENTS}}


def parse_start_dates(texts: Sequence[str]) -> list[dt.date]:
    """``--start-date`` values as dates (YYYY-MM-DD), in the order given, repeats dropped."""
    dates: list[dt.date] = []
    for text in texts:
        try:
            date = dt.date.fromisoformat(str(text).strip())
        except ValueError:
            raise UserError(f"--start-date {text!r}: not a date; write YYYY-MM-DD, e.g. 2004-06-01") from None
        if date not in dates:
            dates.append(date)
    return dates


def _nearest(date: dt.date, candidates: Sequence[dt.date], n: int = NEAREST_DATES) -> str:
    """The ``n`` candidates closest to ``date``, in calendar order, comma-separated."""
    unique = sorted(set(candidates))
    closest = sorted(sorted(unique, key=lambda d: (abs((d - date).days), d))[:n])
    return ", ".join(d.isoformat() for d in closest)


def episode_start_dates(env: DiscreteReservoirEnv, seed: int) -> list[dt.date]:
    """The start date of each episode ``evaluate_policy(env, …, seed)`` runs, from one reset with ``seed``
    (cheap: no day is simulated)."""
    env.set_seed(seed)
    start = env.reset().get("record_index").reshape(-1).cpu().numpy()
    return [dt.date.fromisoformat(str(d)) for d in env.inflow.dates[start]]


def select_episodes(env: DiscreteReservoirEnv, seed: int, start_dates: Sequence[dt.date], years: str,
                    hint: str = "more --episodes draw more start days") -> list[int]:
    """The episodes to trace: for each of ``start_dates`` the first evaluated episode starting on it; without
    dates every episode if there are at most `DEFAULT_TRACE_EPISODES`, else the first.

    A date that no episode of the env's water years (``years`` names them in errors) can start on, or that
    none of the evaluated episodes starts on, is a one-line error listing the nearest dates that would do
    (and ``hint``: how to get other episodes).
    """
    starts = episode_start_dates(env, seed)
    if not start_dates:
        return list(range(len(starts) if len(starts) <= DEFAULT_TRACE_EPISODES else 1))
    span = env.config.horizon_days + env.config.forecast.lead_days
    valid = {dt.date.fromisoformat(str(d)) for d in env.inflow.dates[episode_start_indices(env.inflow, env.water_years, span)]}
    chosen = []
    for date in start_dates:
        if date not in valid:
            raise UserError(f"--start-date {date}: no episode of the {'held-out' if years == 'heldout' else years} water years "
                            f"{env.water_years[0]}–{env.water_years[-1]} starts on it (an episode and its "
                            f"forecast must fit in them); nearest: {_nearest(date, sorted(valid))}")
        if date not in starts:
            raise UserError(f"--start-date {date}: none of the {len(starts)} evaluated episodes starts on it; "
                            f"nearest starts: {_nearest(date, starts)} ({hint})")
        chosen.append(starts.index(date))
    return chosen


def trace_rows(policy: str, seed: Optional[int], result: EvaluationResult, env: DiscreteReservoirEnv,
               episodes: Sequence[int]) -> list[list[Any]]:
    """The rows (in `TRACE_COLUMNS` order, rounded) of ``episodes`` of one policy's evaluation ``result``;
    only those episodes' days are copied out of the trajectory."""
    index = torch.as_tensor(list(episodes), dtype=torch.int64, device=result.trajectory.device)
    trajectory = result.trajectory[index]  # (k, T): the traced episodes only
    valid = first_done_mask(trajectory.get(("next", "done"))).cpu().numpy()
    nxt = trajectory.get("next")
    weights = env.config.reward

    def column(tensor: torch.Tensor, scale: float = 1.0) -> np.ndarray:
        return (tensor.reshape(*trajectory.batch_size).to(torch.float64) * scale).cpu().numpy()

    per_cms = 1.0 / HM3_PER_CMS_DAY
    values = {
        "storage_hm3": column(trajectory.get("storage_hm3")),
        "inflow_cms": column(nxt.get("inflow_hm3"), per_cms),
        "release_cms": column(nxt.get("release_hm3"), per_cms),
        "spill_cms": column(nxt.get("spill_hm3"), per_cms),
        "evaporation_hm3": column(nxt.get("evaporation_hm3")),
        "storage_end_hm3": column(nxt.get("storage_hm3")),
        "energy_mwh": column(nxt.get("energy_mwh")),
        **{f"reward_{name}": column(nxt.get(("reward_components", name)), getattr(weights, name)) for name in COMPONENTS},
        "reward": column(nxt.get("reward")),
    }
    action = trajectory.get("action").reshape(*trajectory.batch_size).cpu().numpy()
    levels_cms = (env.physics.release_levels_hm3().to(torch.float64) * per_cms).cpu().numpy()
    override = (trajectory.get(GUARD_OVERRIDE_KEY).reshape(*trajectory.batch_size).cpu().numpy()
                if GUARD_OVERRIDE_KEY in trajectory.keys() else None)
    record_index = trajectory.get("record_index").reshape(*trajectory.batch_size).cpu().numpy()
    dates = env.inflow.dates
    rows = []
    for k, episode in enumerate(episodes):
        for t in range(int(valid[k].sum())):
            numbers = {name: _rounded(values[name][k, t], TRACE_DECIMALS[name]) for name in values}
            level = int(action[k, t])
            rows.append([
                policy, "" if seed is None else seed, episode, str(dates[record_index[k, t]]), t + 1,
                *(numbers[name] for name in TRACE_COLUMNS[5:-3]),
                level, _rounded(levels_cms[level], TRACE_DECIMALS["release_level_cms"]),
                "" if override is None else str(bool(override[k, t])).lower(),
            ])
    return rows


def _rounded(value: float, decimals: int) -> str:
    """``value`` rounded to ``decimals`` in its shortest form (no "-0.0")."""
    return repr(round(float(value), decimals) + 0.0)


def trace_csv(rows: Sequence[Sequence[Any]]) -> str:
    """The CSV text of trace rows under the `TRACE_COLUMNS` header."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(TRACE_COLUMNS)
    writer.writerows(rows)
    return buffer.getvalue()
