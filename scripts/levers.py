"""Levers of the default recipe, measured on validation years only (issue 18's protocol).

Each lever is a set of config overrides of ``--config`` (configs/base.yaml by default). For every lever it trains
``--seeds`` (one run group; a process per seed, or all in one with ``--vectorized``), evaluates the group's
best.pt of every seed on ``--episodes``
**validation** episodes (``inflow.validation_water_years`` of the config, at least ``--validation-years``)
against SDP and MPC (the strongest baselines that do not know the future) and writes OUT_DIR/<lever>.json
(`reservoir-rl evaluate`'s JSON). ``--summary FILE`` collects, per lever: its overrides, the agent's mean
validation return, the paired differences agent − SDP and agent − MPC (mean and 95 % interval over seeds and
episodes) and, per seed, agent − MPC; scripts/results_report.py renders it as results.md's lever table.

Held-out years are never touched here: every choice of the default recipe is made from this table.

Usage: python scripts/levers.py [--config configs/base.yaml] [--levers default,n-step-3] [--seeds 0,1]
       [--episodes 50] [--out-dir runs/levers/montague] [--summary docs/results/levers-montague.json]
A lever already trained in OUT_DIR/runs is evaluated again, not retrained.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# name → (config overrides, what it tries)
LEVERS: dict[str, tuple[list[str], str]] = {
    "default": ([], "the default recipe"),
    "frames-400k": (["train.total_frames=400000", "train.lr_decay_frames=400000"], "twice the frames (lr decay stretched)"),
    "n-step-3": (["agent.n_step=3"], "3-step returns"),
    "dueling": (["agent.dueling=true"], "dueling heads"),
    "zone-feature": (["env.extra_features=[flood_zone_fraction]"],
                     "storage relative to the flood zone's bottom in the observation"),
    "wide-256": (["agent.hidden_sizes=[256, 256]"], "a wider network (256-256)"),
    "dueling-400k": (["agent.dueling=true", "train.total_frames=400000", "train.lr_decay_frames=400000"],
                     "dueling heads and twice the frames"),
    "gamma-0.995": (["agent.gamma=0.995"], "a longer horizon of the discounted return (SDP's discount follows it)"),
    "sdp-potential": (["train.sdp_potential_weight=1.0"], "potential-based shaping with the SDP value function"),
    "munchausen": (["agent.munchausen_alpha=0.9"], "Munchausen DQN (α 0.9, τ 0.03, clip −1)"),
    # the best of 10 trials of `reservoir-rl tune configs/base.yaml --space scripts/tune_lr_schedule.yaml` (validation years)
    "lr-tuned": (["train.lr=0.0006541", "train.lr_end=0.0006075", "train.lr_decay_frames=194540"],
                 "the learning-rate schedule tune chose (10 trials, validation years)"),
    "sdp-feature": (["env.extra_features=[sdp_release_fraction]"], "the SDP policy's release today in the observation"),
    "dqfd": (["train.demonstrations.teacher=mpc"],
             "demonstrations from MPC (DQfD: 32 episodes, 1,000 pre-training updates, 16 rows per update, margin 0.8)"),
    "quantiles": (["agent.distributional_quantiles=32"], "a distributional head (QR-DQN, 32 quantiles)"),
    # on top of the Munchausen default: the round-1 lever that came closest to it
    "dueling-munchausen": (["agent.dueling=true", "agent.munchausen_alpha=0.9"], "dueling heads with Munchausen DQN"),
    "replay-200k": (["train.buffer_size=200000"], "a replay buffer that keeps every frame of the run (200,000)"),
}
BASELINES = "sdp,mpc"


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "reservoir_rl", *args], check=True, cwd=ROOT,
                          stdout=subprocess.PIPE, text=True)


def trained(group: Path, seeds: list[int]) -> bool:
    """True when every seed of the group has a last checkpoint at its total frames."""
    from reservoir_rl.runs.checkpoint import load_checkpoint

    for seed in seeds:
        last = group / f"seed-{seed}" / "checkpoints" / "last.pt"
        if not last.exists():
            return False
        payload = load_checkpoint(last)
        if int(payload["counters"]["frames"]) < int(payload["config"]["train"]["total_frames"]):
            return False
    return True


def estimate(block: dict) -> dict:
    return {key: block[key] for key in ("mean", "ci_low", "ci_high", "n")}


def summarise(name: str, overrides: list[str], what: str, report: dict, seconds: float | None) -> dict:
    """One lever's row from its evaluation JSON."""
    differences = report["paired_difference"]
    return {
        "lever": name, "overrides": overrides, "what": what, "seeds": report["seeds"],
        "episodes": report["episodes"], "water_years": report["water_years"], "years": report["years"],
        "train_seconds": seconds,
        "agent_return": estimate(report["policies"]["agent"]["summary"]["return"]),
        "baseline_return": {b: estimate(report["policies"][b]["summary"]["return"]) for b in ("sdp", "mpc")},
        "minus_sdp": estimate(differences["sdp"]["return"]),
        "minus_mpc": estimate(differences["mpc"]["return"]),
        "per_seed_minus_mpc": {seed: estimate(row["paired_difference"]["mpc"]["return"])
                               for seed, row in report["per_seed"].items()},
        "per_seed_minus_sdp": {seed: estimate(row["paired_difference"]["sdp"]["return"])
                               for seed, row in report["per_seed"].items()},
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="configs/base.yaml")
    parser.add_argument("--levers", default=",".join(LEVERS), help=f"comma-separated, of: {', '.join(LEVERS)}")
    parser.add_argument("--seeds", default="0,1")
    parser.add_argument("--episodes", type=int, default=50)
    parser.add_argument("--validation-years", type=int, default=5,
                        help="inflow.validation_water_years when the config has none")
    parser.add_argument("--out-dir", type=Path, default=Path("runs/levers"))
    parser.add_argument("--summary", type=Path, default=None)
    parser.add_argument("--vectorized", action="store_true",
                        help="train each lever's seeds in one process, their updates batched (train --vectorized --max-parallel 1)")
    parser.add_argument("--set", dest="extra", action="append", default=[], help="more overrides for every lever")
    args = parser.parse_args()
    names = [name.strip() for name in args.levers.split(",") if name.strip()]
    unknown = [name for name in names if name not in LEVERS]
    if unknown:
        parser.error(f"unknown lever(s) {', '.join(unknown)}; known: {', '.join(LEVERS)}")
    seeds = [int(s) for s in args.seeds.split(",")]
    out = args.out_dir if args.out_dir.is_absolute() else ROOT / args.out_dir
    runs = out / "runs"
    runs.mkdir(parents=True, exist_ok=True)

    import yaml

    config_text = (ROOT / args.config).read_text()
    validation = yaml.safe_load(config_text).get("inflow", {}).get("validation_water_years", 0)
    common = list(args.extra)
    if not validation:
        common.append(f"inflow.validation_water_years={args.validation_years}")

    rows = []
    for name in names:
        overrides, what = LEVERS[name]
        group = runs / name
        seconds = None
        if not trained(group, seeds):
            command = ["train", args.config, "--seeds", ",".join(map(str, seeds)), "--runs-dir", str(runs),
                       "--name", name, "--quiet"] + (["--vectorized", "--max-parallel", "1"] if args.vectorized else ["--processes"])
            if group.exists():
                command = ["resume", name, "--runs-dir", str(runs), "--quiet"]
            else:
                for override in [*common, *overrides]:
                    command += ["--set", override]
            start = time.perf_counter()
            print(cli(*command).stdout, flush=True)
            seconds = time.perf_counter() - start
        result = out / f"{name}.json"
        cli("evaluate", name, "--runs-dir", str(runs), "--years", "validation", "--episodes", str(args.episodes),
            "--baselines", BASELINES, "--out", str(result), "--force")
        row = summarise(name, [*common, *overrides], what, json.loads(result.read_text()), seconds)
        rows.append(row)
        print(f"{name:>14}: agent {row['agent_return']['mean']:.1f}  − SDP {row['minus_sdp']['mean']:+.1f} "
              f"[{row['minus_sdp']['ci_low']:+.1f}, {row['minus_sdp']['ci_high']:+.1f}]  − MPC "
              f"{row['minus_mpc']['mean']:+.1f} [{row['minus_mpc']['ci_low']:+.1f}, {row['minus_mpc']['ci_high']:+.1f}]",
              flush=True)
        if args.summary is not None:  # after every lever: a stopped run keeps what it measured
            previous = json.loads(args.summary.read_text())["rows"] if args.summary.exists() else []
            kept = [r for r in previous if r["lever"] not in {x["lever"] for x in rows}]
            args.summary.parent.mkdir(parents=True, exist_ok=True)
            args.summary.write_text(json.dumps({"config": args.config, "vectorized": args.vectorized,
                                                "rows": kept + rows}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
