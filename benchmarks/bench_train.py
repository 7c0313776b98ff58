"""Training speed and time-to-quality: reservoir-rl's DQN vs Stable-Baselines3's DQN on the same reservoir.

Both train on the default reservoir (bundled Montague record, training years) with identical settings:
MLP 13-128-128-11 (ReLU), batch 64, replay buffer 100,000, 5,000 random warm-up frames, one update per
4 collected frames, target copy every 500 updates (= 2,000 frames), ε 1.0 → 0.01 over 50,000 frames,
Adam lr 1e-3, γ 0.99, Huber loss, gradient-norm clip 10, plain (not double) DQN. Runs alternate between
the two programs (ours, SB3, SB3, ours, …), each in a fresh process on one CPU thread.

The clock of each run starts before the program builds its model, env and buffer and stops when its
training call returns (ours: `reservoir-rl train`'s service call, which also writes TensorBoard events, a
final checkpoint and figures). The measuring instrument — a greedy evaluation of the current Q-network on
the same 10 held-out episodes every ``--eval-every`` frames, with the same code for both programs — is
timed separately and subtracted: it is identical work for both and would otherwise dilute the ratio with
a constant that depends only on ``--eval-every``. Ours also runs its own in-training evaluation (on
validation episodes, to pick ``best.pt``) at the same frames; it is timed and subtracted too. Our other settings (parallel envs, frames per collector
batch) are the default config's.

Reported per run:
- frames/s: frames / (wall time − evaluation time); the raw wall time is printed too;
- time-to-quality: training wall time (evaluations excluded) until the greedy policy's mean return on the
  held-out evaluation episodes first exceeds the standard operating policy's on those episodes.

Usage (needs the bench extra: pip install -e ".[bench]"):
    python benchmarks/bench_train.py --frames 60000 --repeats 3

Whole-process mode (``--whole-process``): the wall time of two programs as a user starts them, each a fresh
subprocess timed from its start to its exit (interpreter start, imports, set-up, training, evaluations,
checkpoints, TensorBoard, figures, exit):
- ours: ``reservoir-rl train CONFIG --set train.total_frames=FRAMES --runs-dir TMP`` (default CONFIG
  configs/base.yaml; its output goes to a file, so the plain progress view prints — the view a user gets
  when the output is not a terminal; ``--terminal`` runs it in a pseudo-terminal instead, with the live Rich
  view a user at a terminal sees; ``--quiet-view`` passes ``--quiet``);
- Stable-Baselines3: a Python program that reads the same config, builds DQN with its settings (network,
  batch, buffer, warm-up, updates per frame, target period, ε schedule, learning-rate schedule, γ, Huber
  loss, gradient clip; SB3's DQN is plain, not double, DQN) on the project's gymnasium adapter (one
  reservoir, training years) and trains for FRAMES frames with SB3's ``EvalCallback``: a greedy evaluation
  on ``train.eval_episodes`` validation episodes every ``train.eval_every_frames`` frames (best model
  saved), the SAME evaluation count and episode count as ours (a finished run of ours also evaluates at its
  last frame when that is not an evaluation frame, and so does the SB3 program then; at 40,000 frames with
  eval_every_frames 20,000 both evaluate at 20,000 and 40,000). Ours additionally writes checkpoints, TensorBoard events (scalars,
  histograms, figures, the baselines' levels) and its release guard runs every step; SB3 does none of that.
Ours trains every run into one runs folder, as a user's ``runs/``: its first run computes the baselines'
levels (TensorBoard ``baselines/``, ~11 s) and keeps them in the folder's cache, later runs of the config read
them; the script says which run did what and prints both medians (``--cold``: a fresh folder every run).
The two programs alternate (ours, SB3, SB3, ours, …), each on one CPU thread; medians and their ratio.
    python benchmarks/bench_train.py --whole-process --frames 40000 --repeats 3
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SETTINGS = {
    "hidden_sizes": [128, 128],
    "batch_size": 64,
    "buffer_size": 100_000,
    "init_random_frames": 5_000,
    "updates_per_frame": 0.25,
    "target_update_period_updates": 500,
    "eps_start": 1.0,
    "eps_end": 0.01,
    "eps_decay_frames": 50_000,
    "lr": 1e-3,
    "gamma": 0.99,
    "grad_clip_norm": 10.0,
}
EVAL_EPISODES = 10


def _eval_setup():
    """The held-out evaluation env (same episodes for both programs) and SOP's mean return on it."""
    from reservoir_rl.catalog import make_baseline
    from reservoir_rl.config import Config
    from reservoir_rl.env.reservoir_env import make_env
    from reservoir_rl.evaluation.rollout import evaluate_policy

    config = Config()
    seed = config.train.validation_env_seed
    env = make_env(config, "heldout", n_envs=EVAL_EPISODES, seed=seed)
    sop = evaluate_policy(env, make_baseline("sop", env, config), seed).mean("return")
    return config, env, seed, sop


def worker_ours(frames: int, eval_every: int) -> dict:
    """Train with `reservoir-rl train`'s service layer. At each of its own (validation) evaluations the
    current Q-network is also evaluated greedily on the bench's held-out episodes, with the same function
    as for SB3; both evaluations are timed and left out of the clock."""
    import torch
    import yaml

    from reservoir_rl.config import Config
    from reservoir_rl.monitor.live import make_view
    from reservoir_rl.training import trainer as trainer_module
    from reservoir_rl.evaluation.rollout import evaluate_policy
    from reservoir_rl.commands.train import train

    _, eval_env, eval_seed, sop = _eval_setup()
    s = SETTINGS
    defaults = Config().train
    evals: list[tuple[int, float, float]] = []
    spent = [0.0]  # seconds spent evaluating
    clock = {}
    evaluate = trainer_module.Trainer._evaluate

    def timed_evaluate(self, figures):
        began = time.time()
        result = evaluate(self, figures)  # the program's own evaluation (validation episodes, best.pt)
        q_network = self.parts.agent.q_network

        def greedy(td):
            with torch.no_grad():
                td.set("action", q_network(td.get("observation")).argmax(-1))
            return td

        value = evaluate_policy(eval_env, greedy, eval_seed).mean("return")
        spent[0] += time.time() - began
        evals.append((self.frames, time.time() - clock["started"] - spent[0], value))
        return result

    trainer_module.Trainer._evaluate = timed_evaluate
    config = {
        "agent": {"hidden_sizes": s["hidden_sizes"], "double_dqn": False, "loss": "smooth_l1", "gamma": s["gamma"]},
        "train": {
            "total_frames": frames, "n_envs": defaults.n_envs, "frames_per_batch": defaults.frames_per_batch,
            "init_random_frames": s["init_random_frames"], "updates_per_frame": s["updates_per_frame"],
            "batch_size": s["batch_size"], "buffer_size": s["buffer_size"], "lr": s["lr"],
            "eps_start": s["eps_start"], "eps_end": s["eps_end"], "eps_decay_frames": s["eps_decay_frames"],
            "target_update": "hard", "target_update_period": s["target_update_period_updates"],
            "grad_clip_norm": s["grad_clip_norm"], "eval_every_frames": eval_every, "eval_episodes": EVAL_EPISODES,
            "checkpoint_every_frames": 10**9,
        },
        "logging": {"figure_every_frames": 10**9, "histogram_every_frames": 10**9},
    }
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bench.yaml"
        path.write_text(yaml.safe_dump(config))
        clock["started"] = time.time()
        summary = train(path, [], make_view("quiet"), runs_dir=Path(tmp) / "runs", name="bench")
        wall = time.time() - clock["started"]
    return {"frames": summary.frames, "seconds": wall - spent[0], "wall_seconds": wall, "eval_seconds": spent[0],
            "evals": evals, "sop_return": sop}


def worker_sb3(frames: int, eval_every: int) -> dict:
    """Train Stable-Baselines3 DQN on the gymnasium adapter; evaluate its greedy Q-net on the same episodes."""
    import torch
    from stable_baselines3 import DQN
    from stable_baselines3.common.callbacks import BaseCallback

    from reservoir_rl.env.gym_adapter import GymReservoirEnv
    from reservoir_rl.evaluation.rollout import evaluate_policy

    config, eval_env, eval_seed, sop = _eval_setup()
    s = SETTINGS
    started = time.time()
    env = GymReservoirEnv(config, split="train", seed=0)
    updates_per_frame = s["updates_per_frame"]
    model = DQN(
        "MlpPolicy", env, learning_rate=s["lr"], buffer_size=s["buffer_size"],
        learning_starts=s["init_random_frames"], batch_size=s["batch_size"], gamma=s["gamma"],
        train_freq=int(round(1 / updates_per_frame)), gradient_steps=1,
        target_update_interval=int(s["target_update_period_updates"] / updates_per_frame),
        exploration_fraction=s["eps_decay_frames"] / frames, exploration_initial_eps=s["eps_start"],
        exploration_final_eps=s["eps_end"], max_grad_norm=s["grad_clip_norm"],
        policy_kwargs={"net_arch": s["hidden_sizes"], "activation_fn": torch.nn.ReLU}, seed=0, device="cpu",
        verbose=0,
    )
    evals: list[tuple[int, float, float]] = []
    spent = [0.0]  # seconds spent evaluating

    def greedy(td):
        with torch.no_grad():
            td.set("action", model.q_net(td.get("observation")).argmax(-1))
        return td

    class Evaluate(BaseCallback):
        def _on_step(self) -> bool:
            if self.num_timesteps % eval_every == 0:
                began = time.time()
                value = evaluate_policy(eval_env, greedy, eval_seed).mean("return")
                spent[0] += time.time() - began
                evals.append((self.num_timesteps, time.time() - started - spent[0], value))
            return True

    model.learn(total_timesteps=frames, callback=Evaluate())
    wall = time.time() - started
    return {"frames": frames, "seconds": wall - spent[0], "wall_seconds": wall, "eval_seconds": spent[0],
            "evals": evals, "sop_return": sop}


def sb3_program(config_path: str, frames: int, out_dir: str) -> None:
    """The Stable-Baselines3 side of ``--whole-process``: DQN with the config's settings on the gymnasium
    adapter, an ``EvalCallback`` on the config's validation episodes at its evaluation frames."""
    import torch
    from stable_baselines3 import DQN
    from stable_baselines3.common.callbacks import EvalCallback
    from stable_baselines3.common.monitor import Monitor

    from reservoir_rl.agent.schedules import linear_schedule
    from reservoir_rl.config import load_config
    from reservoir_rl.env.gym_adapter import GymReservoirEnv

    torch.set_num_threads(1)
    config = load_config(config_path, [f"train.total_frames={frames}"])
    train, agent = config.train, config.agent

    def learning_rate(progress_remaining: float) -> float:  # SB3 passes 1 → 0 over the run
        frame = round((1.0 - progress_remaining) * frames)
        return train.lr if train.lr_end is None else linear_schedule(frame, train.lr, train.lr_end, train.lr_decay_frames)

    every = round(1 / train.updates_per_frame)
    env = GymReservoirEnv(config, split="train", seed=train.seed)
    eval_env = Monitor(GymReservoirEnv(config, split="validation", seed=train.validation_env_seed))
    model = DQN(
        "MlpPolicy", env, learning_rate=learning_rate, buffer_size=train.buffer_size,
        learning_starts=train.init_random_frames, batch_size=train.batch_size, gamma=agent.gamma,
        train_freq=every, gradient_steps=1, target_update_interval=train.target_update_period * every,
        exploration_fraction=train.eps_decay_frames / frames, exploration_initial_eps=train.eps_start,
        exploration_final_eps=train.eps_end, max_grad_norm=train.grad_clip_norm,
        policy_kwargs={"net_arch": list(agent.hidden_sizes), "activation_fn": torch.nn.ReLU}, seed=train.seed,
        device="cpu", verbose=0,
    )
    callback = EvalCallback(eval_env, n_eval_episodes=train.eval_episodes, eval_freq=train.eval_every_frames,
                            deterministic=True, best_model_save_path=out_dir, log_path=out_dir, verbose=0)
    model.learn(total_timesteps=frames, callback=callback)
    evaluated_at = [int(t) for t in callback.evaluations_timesteps]
    if not evaluated_at or evaluated_at[-1] != frames:  # as ours: a finished run is evaluated at its last frame
        from stable_baselines3.common.evaluation import evaluate_policy

        evaluate_policy(model, eval_env, n_eval_episodes=train.eval_episodes, deterministic=True)
        evaluated_at.append(frames)
    print(json.dumps({"evaluations": len(evaluated_at), "evaluated_at": evaluated_at}))


def _whole_process(kind: str, config_path: str, frames: int, quiet_view: bool, runs_dir: Path,
                   terminal: bool = False) -> float:
    """Wall seconds of one whole program, from its start to its exit; ours trains into ``runs_dir``."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    with tempfile.TemporaryDirectory() as tmp:
        if kind == "ours":
            script = Path(sys.executable).with_name("reservoir-rl")
            program = [str(script)] if script.exists() else [sys.executable, "-c", "from reservoir_rl.cli import main; main()"]
            command = [*program, "train", config_path, "--set", f"train.total_frames={frames}",
                       "--runs-dir", str(runs_dir), *(["--quiet"] if quiet_view else [])]
            if terminal:  # a pseudo-terminal: the live Rich view a user at a terminal sees
                command = ["script", "-qefc", shlex.join(command), "/dev/null"]
        else:
            command = [sys.executable, __file__, "--sb3-program", "--config", config_path, "--frames", str(frames),
                       "--out", tmp]
        with open(Path(tmp) / "output.txt", "w") as output:
            began = time.perf_counter()
            code = subprocess.run(command, stdout=output, stderr=subprocess.STDOUT, env=env).returncode
            seconds = time.perf_counter() - began
        text = (Path(tmp) / "output.txt").read_text(errors="replace")
        if code != 0:
            raise SystemExit(f"{kind} failed ({code}): {text[-2000:]}")
        if kind == "sb3":  # its last line: the frames at which EvalCallback evaluated
            print(f"         sb3 evaluated at frames {json.loads(text.strip().splitlines()[-1])['evaluated_at']}")
    return seconds


def whole_process_main(config_path: str, frames: int, repeats: int, quiet_view: bool, cold: bool,
                       terminal: bool = False) -> None:
    """Alternate the two programs; ours trains into one runs folder kept across its runs (as a user's
    ``runs/``: the first run computes the baselines' levels, later ones read them from its cache), or a
    fresh one every run with ``cold``."""
    seconds: dict[str, list[float]] = {"ours": [], "sb3": []}
    computed: list[bool] = []  # per run of ours: did it compute the baselines' levels (cache miss)?
    print(f"whole processes, {frames:,} frames, config {config_path}; load average before: "
          f"{', '.join(f'{x:.2f}' for x in os.getloadavg())}", flush=True)
    with tempfile.TemporaryDirectory() as shared:
        for repeat in range(repeats):
            for kind in (("ours", "sb3") if repeat % 2 == 0 else ("sb3", "ours")):
                runs_dir = Path(tempfile.mkdtemp(dir=shared)) if cold else Path(shared) / "runs"
                cache = runs_dir / ".cache" / "baseline-levels"
                before = len(list(cache.glob("*.json"))) if cache.is_dir() else 0
                seconds[kind].append(_whole_process(kind, config_path, frames, quiet_view, runs_dir, terminal))
                note = ""
                if kind == "ours":
                    computed.append(len(list(cache.glob("*.json"))) > before)
                    note = ", baselines' levels computed" if computed[-1] else ", baselines' levels from the cache"
                print(f"run {repeat + 1} {kind:>4}: {seconds[kind][-1]:6.1f} s (load average "
                      f"{os.getloadavg()[0]:.2f}{note})", flush=True)
    median = {kind: statistics.median(values) for kind, values in seconds.items()}
    print()
    for kind, values in seconds.items():
        print(f"{kind:>4}: median {median[kind]:.1f} s (min {min(values):.1f}, max {max(values):.1f}), "
              f"{frames / median[kind]:,.0f} frames/s whole process")
    print(f"whole-process speed ratio sb3/ours (medians): {median['sb3'] / median['ours']:.2f}")
    warm = [s for s, c in zip(seconds["ours"], computed) if not c]
    fresh = [s for s, c in zip(seconds["ours"], computed) if c]
    if warm and fresh:
        print(f"ours with the levels computed: median {statistics.median(fresh):.1f} s (ratio "
              f"{median['sb3'] / statistics.median(fresh):.2f}); read from the cache: median "
              f"{statistics.median(warm):.1f} s (ratio {median['sb3'] / statistics.median(warm):.2f})")


def time_to_quality(result: dict) -> float | None:
    for _, seconds, value in result["evals"]:
        if value > result["sop_return"]:
            return seconds
    return None


def _run_worker(kind: str, frames: int, eval_every: int) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    out = subprocess.run(
        [sys.executable, __file__, "--worker", kind, "--frames", str(frames), "--eval-every", str(eval_every)],
        check=True, capture_output=True, text=True, env=env,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=60_000)
    parser.add_argument("--eval-every", type=int, default=5_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--whole-process", action="store_true",
                        help="time `reservoir-rl train CONFIG` and an SB3 program as whole processes")
    parser.add_argument("--config", default=str(Path(__file__).resolve().parents[1] / "configs" / "base.yaml"),
                        help="--whole-process: the config both programs read (default configs/base.yaml)")
    parser.add_argument("--quiet-view", action="store_true", help="--whole-process: run ours with --quiet")
    parser.add_argument("--terminal", action="store_true",
                        help="--whole-process: run ours in a pseudo-terminal (util-linux `script`): the live Rich view")
    parser.add_argument("--cold", action="store_true",
                        help="--whole-process: a fresh runs folder for every run of ours (no cached baselines' levels)")
    parser.add_argument("--worker", choices=["ours", "sb3"], help=argparse.SUPPRESS)
    parser.add_argument("--sb3-program", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.sb3_program:
        sb3_program(args.config, args.frames, args.out)
        return
    if args.whole_process:
        whole_process_main(args.config, args.frames, args.repeats, args.quiet_view, args.cold, args.terminal)
        return
    if args.worker:
        import torch

        torch.set_num_threads(1)
        result = (worker_ours if args.worker == "ours" else worker_sb3)(args.frames, args.eval_every)
        print(json.dumps(result))
        return

    results: dict[str, list[dict]] = {"ours": [], "sb3": []}
    for repeat in range(args.repeats):
        order = ("ours", "sb3") if repeat % 2 == 0 else ("sb3", "ours")
        for kind in order:
            result = _run_worker(kind, args.frames, args.eval_every)
            results[kind].append(result)
            fps = result["frames"] / result["seconds"]
            ttq = time_to_quality(result)
            print(f"run {repeat + 1} {kind:>4}: {fps:8.0f} frames/s, beats SOP after "
                  f"{'never' if ttq is None else f'{ttq:.1f} s'} (SOP {result['sop_return']:.1f}, "
                  f"final eval {result['evals'][-1][2]:.1f}); wall {result['wall_seconds']:.1f} s of which "
                  f"evaluations {result['eval_seconds']:.1f} s", flush=True)

    def median_fps(kind: str) -> float:
        return statistics.median(r["frames"] / r["seconds"] for r in results[kind])

    fps = {kind: [r["frames"] / r["seconds"] for r in results[kind]] for kind in results}
    print()
    for kind in results:
        print(f"{kind:>4}: frames/s median {median_fps(kind):.0f} (min {min(fps[kind]):.0f}, max {max(fps[kind]):.0f})")
    print(f"speed ratio ours/sb3 (medians): {median_fps('ours') / median_fps('sb3'):.2f}")
    wall = {kind: statistics.median(r["frames"] / r["wall_seconds"] for r in results[kind]) for kind in results}
    print(f"with the evaluations left in the clock: ours {wall['ours']:.0f}, sb3 {wall['sb3']:.0f} frames/s, "
          f"ratio {wall['ours'] / wall['sb3']:.2f}")
    ttq = {kind: [time_to_quality(r) for r in results[kind]] for kind in results}
    for kind in results:
        reached = [t for t in ttq[kind] if t is not None]
        text = f"median {statistics.median(reached):.1f} s" if reached else "not reached"
        print(f"{kind:>4}: time to beat SOP on held-out years: {text} ({len(reached)}/{len(ttq[kind])} runs reached it)")
    if all(any(t is not None for t in ttq[k]) for k in ttq):
        ours = statistics.median(t for t in ttq["ours"] if t is not None)
        sb3 = statistics.median(t for t in ttq["sb3"] if t is not None)
        print(f"time-to-quality ratio sb3/ours (medians): {sb3 / ours:.2f}")


if __name__ == "__main__":
    main()
