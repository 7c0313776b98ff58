"""Measure the release guard on a synthetic flashy river: train the default recipe with the guard on and off,
evaluate both on held-out episodes, and print failures, avoidable failures, mean returns and the override share.

Usage: python scripts/guard_check.py [--out-dir guard-check] [--seeds 0] [--episodes 50] [--frames 200000]
       [--mean-cms 3.0] [--years 60] [--design scaled|init] [--baselines all] [--summary FILE]
       [--variant NAME --set KEY=VALUE ...]

The river: ``inflow.synthetic.kind: flashy`` (reservoir_rl.env.inflow.synthetic_flashy) with mean flow
``--mean-cms`` over ``--years`` years, the last 20 complete water years held out. The reservoir: configs/base.yaml
scaled to that mean flow by the rule of configs/trenton.yaml (every storage and flow of the reservoir, the
installed capacity, the lake area and the flood-control zone's storages times mean flow / base.yaml's river's
mean flow), as a new user would scale it; the rule curve (fractions of capacity), agent, training and guard
settings are base.yaml's. That dam's release + spillway pass 51 m³/s against floods of 150–360 m³/s: a dam
nobody would build, on which even perfect-foresight DP fails in a quarter of the episodes. ``--design init``
sizes the reservoir to the same record as a user's own river is sized: the record is written to
OUT_DIR/flashy-river.csv and ``reservoir-rl init`` (``--heldout-water-years 20``) writes the config, recipe
included; its runs are named ``flashy-init-…``.

For each seed it trains two runs, ``flashy-guard-S`` (env.safety.enabled: true) and ``flashy-noguard-S`` (false),
under OUT_DIR/runs, then evaluates each (``--baselines``, every baseline by default; the guarded run with
--guard-baselines) on ``--episodes`` held-out episodes, writing OUT_DIR/<run>.json and .csv, and prints one summary
table; ``--summary FILE`` writes that table as JSON too (scripts/results_report.py reads it). Avoidable failures
need DP among the baselines. ``--variant NAME --set KEY=VALUE …`` trains only guarded runs ``flashy-NAME-S`` with
those overrides (e.g. ``--variant reserve --set env.safety.flood_reserve_days=1``). A run already finished in
OUT_DIR/runs is not retrained (one stopped before its end is resumed first), and its evaluation OUT_DIR/<run>.json,
when newer than its checkpoints and of the same episodes, is read instead of run again. Takes about as long as two default trainings per seed.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
BASE = ROOT / "configs" / "base.yaml"
SCALED_RESERVOIR_KEYS = ("capacity_hm3", "dead_storage_hm3", "min_operating_hm3", "release_capacity_cms",
                         "turbine_capacity_cms", "spillway_capacity_cms", "installed_capacity_mw",
                         "area_at_capacity_km2", "env_flow_cms")


def flashy_config(mean_cms: float, years: int, guard: bool) -> dict:
    """base.yaml scaled to the flashy river (module docstring), with the guard on or off."""
    from reservoir_rl.config import config_from_dict
    from reservoir_rl.env.inflow import load_bundled

    raw = yaml.safe_load(BASE.read_text())
    scale = mean_cms / load_bundled(raw["inflow"]["gauge"]).mean_inflow_cms
    reservoir = raw["env"]["reservoir"]
    for key in SCALED_RESERVOIR_KEYS:
        reservoir[key] = round(float(reservoir[key]) * scale, 4)
    reservoir["flood_zone_hm3"] = [[day, round(float(storage) * scale, 4)] for day, storage in reservoir["flood_zone_hm3"]]
    raw["inflow"] = {"source": "synthetic", "heldout_water_years": 20,
                     "synthetic": {"kind": "flashy", "n_years": years, "mean_inflow_cms": mean_cms, "seed": 0}}
    raw["env"]["safety"]["enabled"] = guard
    config_from_dict(raw, source="flashy config")  # valid as written
    return raw


def init_config(out: Path, mean_cms: float, years: int, guard: bool) -> dict:
    """The flashy river's record sized by ``reservoir-rl init`` (module docstring), with the guard on or off;
    the record and the config init wrote are kept in ``out`` (its CSV path is relative to that folder)."""
    from reservoir_rl.config import config_from_dict
    from reservoir_rl.env.sources import load_inflow

    written = out / "flashy-init.yaml"
    if not written.exists():
        scaled = config_from_dict(flashy_config(mean_cms, years, guard), source="flashy config")
        record = load_inflow(scaled.inflow)
        with open(out / "flashy-river.csv", "w") as handle:
            handle.write("date,flow\n")
            for date, flow in zip(record.dates, record.inflow_cms):
                handle.write(f"{date},{float(flow)!r}\n")
        cli("init", str(out / "flashy-river.csv"), "--out", str(written), "--heldout-water-years", "20")
    raw = yaml.safe_load(written.read_text())
    raw["env"]["safety"]["enabled"] = guard
    return raw


def finished(run: Path, total_frames: int | None) -> bool:
    """True when the run's last checkpoint has reached its total frames (``total_frames`` or its config's)."""
    from reservoir_rl.runs.checkpoint import load_checkpoint

    last = run / "checkpoints" / "last.pt"
    if not last.exists():
        return False
    payload = load_checkpoint(last)
    target = total_frames or int(payload["config"]["train"]["total_frames"])
    return int(payload["counters"]["frames"]) >= target


def evaluated(result: Path, run: Path, episodes: int, guard: bool) -> bool:
    """True when ``result`` (this script's evaluation of ``run``) is newer than the run's checkpoints and holds
    ``episodes`` episodes with the baselines guarded as asked: it is read, not evaluated again."""
    best = run / "checkpoints" / "best.pt"
    if not result.exists() or not best.exists() or result.stat().st_mtime < best.stat().st_mtime:
        return False
    try:
        document = json.loads(result.read_text())
        return document["episodes"] == episodes and all(
            block["guarded"] == (guard and policy != "dp") for policy, block in document["policies"].items())
    except (ValueError, KeyError, TypeError):
        return False


def cli(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "reservoir_rl", *args], check=True, cwd=ROOT)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out-dir", type=Path, default=Path("guard-check"))
    parser.add_argument("--seeds", default="0", help="comma-separated training seeds")
    parser.add_argument("--episodes", type=int, default=50)
    parser.add_argument("--frames", type=int, default=None, help="train.total_frames (default: base.yaml's)")
    parser.add_argument("--mean-cms", type=float, default=3.0)
    parser.add_argument("--years", type=int, default=60)
    parser.add_argument("--design", choices=("scaled", "init"), default="scaled",
                        help="the reservoir: base.yaml scaled by mean flow, or sized by `reservoir-rl init`")
    parser.add_argument("--baselines", default="all", help="evaluate's --baselines (dp: needed for avoidable failures)")
    parser.add_argument("--summary", type=Path, default=None, help="write the summary table as JSON here")
    parser.add_argument("--variant", default=None,
                        help="train only guarded runs named flashy-VARIANT-S, with the --set overrides (a guard setting to measure)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="config override of every run trained (with --variant)")
    args = parser.parse_args()
    if args.overrides and not args.variant:
        parser.error("--set needs --variant: the runs it trains get their own names")
    out = args.out_dir.resolve()
    runs = out / "runs"
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for seed in (int(s) for s in args.seeds.split(",")):
        for guard in ((True,) if args.variant else (True, False)):
            design = "init-" if args.design == "init" else ""
            name = f"flashy-{design}{args.variant or ('guard' if guard else 'noguard')}-{seed}"
            config_path = out / f"{name}.yaml"
            raw = (init_config(out, args.mean_cms, args.years, guard) if args.design == "init"
                   else flashy_config(args.mean_cms, args.years, guard))
            config_path.write_text(yaml.safe_dump(raw, sort_keys=False))
            extra = ["--set", f"train.total_frames={args.frames}"] if args.frames else []
            for override in args.overrides:
                extra += ["--set", override]
            if not (runs / name).exists():
                cli("train", str(config_path), "--runs-dir", str(runs), "--name", name, "--set", f"train.seed={seed}",
                    "--quiet", *extra)
            elif not finished(runs / name, args.frames):
                cli("resume", name, "--runs-dir", str(runs), "--quiet")
            result = out / f"{name}.json"
            if evaluated(result, runs / name, args.episodes, guard):
                document = json.loads(result.read_text())
                rows += [(seed, "on" if guard else "off", policy, block) for policy, block in document["policies"].items()]
                continue
            cli("evaluate", name, "--runs-dir", str(runs), "--episodes", str(args.episodes), "--out", str(result),
                "--csv", str(out / f"{name}.csv"), "--force", "--baselines", args.baselines,
                *(["--guard-baselines"] if guard else []))
            document = json.loads(result.read_text())
            for policy, block in document["policies"].items():
                rows.append((seed, "on" if guard else "off", policy, block))
    print_table(rows, args.episodes, args.mean_cms)
    if args.summary:
        write_summary(args.summary, rows, args)
    return 0


def in_window(block: dict):
    """A policy's avoidable failures within the forecast window; for an evaluation written before evaluate counted
    them, 0 when it had no avoidable failure, else None (unknown)."""
    if block.get("failures_avoidable_in_window") is not None:
        return block["failures_avoidable_in_window"]
    return 0 if block.get("failures_avoidable") == 0 else None


def write_summary(path: Path, rows: list, args: argparse.Namespace) -> None:
    """The summary table as JSON: the river's settings and one entry per (seed, guard setting, policy) with its
    mean return (and 95 % interval), failed and avoidable episodes and the guard's share of days."""
    entries = []
    for seed, guard, policy, block in rows:
        summary = block["summary"]
        entries.append({"seed": seed, "guard": guard == "on", "policy": policy, "label": block["label"],
                        "guarded": block["guarded"], "return": summary["return"],
                        "episode_returns": block["episodes"]["return"],
                        "failed_episodes": block["failed_episodes"], "failures_avoidable": block["failures_avoidable"],
                        "failures_avoidable_in_window": in_window(block),
                        "guard_override_fraction": summary.get("guard_override_fraction")})
    document = {"agent": yaml.safe_load(BASE.read_text())["agent"],  # the recipe the runs trained with
                "mean_inflow_cms": args.mean_cms, "years": args.years, "episodes": args.episodes,
                "frames": args.frames, "design": args.design, "seeds": [int(s) for s in args.seeds.split(",")],
                "variant": args.variant, "overrides": args.overrides, "rows": entries}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document, indent=1) + "\n")


def print_table(rows: list, episodes: int, mean_cms: float) -> None:
    """One line per (seed, guard setting, policy): guarded, mean return, failed and avoidable episodes, override share."""
    print(f"\n{episodes} held-out episodes of the flashy river (mean {mean_cms:g} m³/s); failures = "
          "episodes with an overtopping or dead-storage failure; avoidable = DP avoided it on the same trace; "
          "in window = still avoidable on the first day the forecast showed the failure's day")
    print(f"{'seed':>4} {'guard':>5} {'policy':>8} {'guarded':>7} {'return':>9} {'failures':>8} {'avoidable':>9} "
          f"{'in window':>9} {'override':>8}")
    for seed, guard, policy, block in rows:
        share = block["summary"].get("guard_override_fraction", {}).get("mean")
        print(f"{seed:>4} {guard:>5} {policy:>8} {str(block['guarded']):>7} {block['summary']['return']['mean']:>9.2f} "
              f"{block['failed_episodes']:>8} {block['failures_avoidable']!s:>9} "
              f"{in_window(block)!s:>9} {'' if share is None else f'{100 * share:.2f}%':>8}")


if __name__ == "__main__":
    sys.exit(main())
