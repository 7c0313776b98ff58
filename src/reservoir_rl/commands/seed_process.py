"""The process of one seed of a multi-seed run: ``python -m reservoir_rl.commands.seed_process SPEC``.

`reservoir_rl.commands.seeds` starts one such process per seed (`train_argv`, `resume_argv` build its
argv); it calls the use cases `reservoir_rl.commands.train.train` / `.resume` directly, without the
command line. ``SPEC`` is one JSON object::

    {"action": "train", "config": "/abs/run-N/config.yaml", "seed": 3, "name": "seed-3",
     "runs_dir": "/abs/run-N", "overrides": ["train.total_frames=40000"], "command": [...]}
    {"action": "resume", "run": "/abs/run-N/seed-3", "seed": 3, "total_frames": 40000, "command": [...]}

``overrides`` are ``section.key=value`` strings as for ``--set``; ``total_frames`` (all frames, or null)
as for ``resume --total-frames``.

A worker of a vectorized run spread over several processes trains its share of the seeds vectorized
(`reservoir_rl.commands.vectorized`; its output goes to ``run-N/logs/seeds-A-B.log``)::

    {"action": "train-seeds", "group": "/abs/run-N", "seeds": [2, 3], "overrides": [...], "command": [...],
     "levels_first": false}
    {"action": "resume-seeds", "group": "/abs/run-N", "seeds": [2, 3], "total_frames": null, "command": [...],
     "allow_changed_inflow": false}

``python -m reservoir_rl.commands.seed_process --standby`` imports what such a worker needs and then waits for
its spec on stdin (`standby`; `reservoir_rl.runs.processes.start_standby`): `train --seeds` starts it before it
imports torch itself, so the worker's start-up overlaps the starting process's.

Output (stdout and stderr go to ``run-N/logs/seed-K.log``, which the starting process reads back,
`reservoir_rl.runs.processes`):

- the plain progress view: its first line, ``training N frames``, tells the starting process that the
  SIGINT / SIGTERM handlers are set; its ``frames a/b ...`` lines are the progress it shows;
- at the end a few plain lines: status (``finished``, or ``stopped by SIGINT, checkpoint saved``), frames /
  updates / episodes, wall time (s), the last in-training validation (return, energy in GWh and spill in hm³
  per episode, failures, success) and the best validation return, the folder, how to continue;
- a `UserError` (a bad config, a missing checkpoint, a second stop signal): one line ``error: ...`` on
  stderr and exit code 2; success: exit code 0. Anything else is a bug and keeps its traceback (exit 1).

SIGINT / SIGTERM (the seed saves a checkpoint and stops) and the stop when the starting process dies
(`follow_parent`) are handled by `reservoir_rl.commands.train`, as for a single run.

The ``command`` recorded in the seed's ``metadata.yaml`` is the command line of the multi-seed
`train` / `resume` that started this process (the one in ``run-N/seeds.yaml``) followed by
``(seed K)``, e.g. ``reservoir-rl train configs/base.yaml --seeds 0,1,2 (seed 1)``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, Optional

from reservoir_rl.errors import UserError

MODULE = "reservoir_rl.commands.seed_process"
ACTIONS = ("train", "resume", "train-seeds", "resume-seeds")


def train_argv(config: Path, seed: int, name: str, runs_dir: Path, overrides: list[str],
               command: list[str]) -> list[str]:
    """The argv of a process that trains ``config`` with ``train.seed = seed`` into ``runs_dir/name``."""
    return _argv({"action": "train", "config": str(config), "seed": seed, "name": name, "runs_dir": str(runs_dir),
                  "overrides": list(overrides), "command": list(command)})


def resume_argv(run: Path, seed: int, total_frames: Optional[int], command: list[str],
                allow_changed_inflow: bool = False) -> list[str]:
    """The argv of a process that resumes the run in ``run`` (up to ``total_frames`` in all, if given)."""
    return _argv({"action": "resume", "run": str(run), "seed": seed, "total_frames": total_frames,
                  "command": list(command), "allow_changed_inflow": allow_changed_inflow})


def train_seeds_argv(group: Path, seeds: list[int], overrides: list[str], command: list[str],
                     levels_first: bool = False) -> list[str]:
    """The argv of a worker that trains ``seeds`` of the multi-seed run in ``group`` (its config.yaml with
    ``overrides``) vectorized (``levels_first``: `vectorized.train_group`'s)."""
    return _argv({"action": "train-seeds", "group": str(group), "seeds": list(seeds), "overrides": list(overrides),
                  "command": list(command), "levels_first": levels_first})


def resume_seeds_argv(group: Path, seeds: list[int], total_frames: Optional[int], command: list[str],
                      allow_changed_inflow: bool = False) -> list[str]:
    """The argv of a worker that resumes ``seeds`` of the vectorized multi-seed run in ``group``."""
    return _argv({"action": "resume-seeds", "group": str(group), "seeds": list(seeds), "total_frames": total_frames,
                  "command": list(command), "allow_changed_inflow": allow_changed_inflow})


def _argv(spec: dict[str, Any]) -> list[str]:
    return [sys.executable, "-m", MODULE, json.dumps(spec, ensure_ascii=False)]


def read_spec(argv: list[str]) -> dict[str, Any]:
    """The JSON spec of ``argv`` (the arguments after the module), checked."""
    if len(argv) != 1:
        raise UserError(f"{MODULE}: expected one argument, a JSON spec; got {len(argv)}")
    try:
        spec = json.loads(argv[0])
    except json.JSONDecodeError as error:
        raise UserError(f"{MODULE}: the spec is not JSON ({error})") from None
    needs = {"train": ("config", "seed", "name", "runs_dir", "overrides", "command"),
             "resume": ("run", "seed", "total_frames", "command"),
             "train-seeds": ("group", "seeds", "overrides", "command"),
             "resume-seeds": ("group", "seeds", "total_frames", "command")}
    if not isinstance(spec, dict) or spec.get("action") not in ACTIONS:
        raise UserError(f"{MODULE}: the spec needs 'action': one of {', '.join(ACTIONS)}")
    missing = [key for key in needs[spec["action"]] if key not in spec]
    if missing:
        raise UserError(f"{MODULE}: the {spec['action']} spec lacks {', '.join(missing)}")
    if "seeds" in spec and not (isinstance(spec["seeds"], list) and spec["seeds"]
                                and all(type(seed) is int and seed >= 0 for seed in spec["seeds"])):
        raise UserError(f"{MODULE}: the {spec['action']} spec's 'seeds' must be a list of whole numbers")
    return spec


def _command(spec: dict[str, Any]) -> list[str]:
    return [*spec["command"], f"(seed {spec['seed']})"]


def run_seeds(spec: dict[str, Any]) -> Any:
    """Train or resume the worker's seeds vectorized (a ``train-seeds`` / ``resume-seeds`` spec); progress
    lines on stdout; returns the `VectorizedResult`."""
    import time

    from reservoir_rl.commands import vectorized
    from reservoir_rl.commands.train import TrainingInterrupted
    from reservoir_rl.config import load_config
    from reservoir_rl.runs.groups import SeedGroup
    from reservoir_rl.runs.processes import follow_parent

    follow_parent()  # stop (each seed with a checkpoint) if the process that started this one dies
    started = time.perf_counter()
    group = SeedGroup(Path(spec["group"]), tuple(spec["seeds"]))

    def say(text: str) -> None:
        print(text, flush=True)

    if spec["action"] == "train-seeds":
        config = load_config(group.config_path, list(spec["overrides"]))
        signals = vectorized.Signals(on_armed=lambda: say(f"training {config.train.total_frames:,} frames"))
        try:
            return vectorized.train_group(group, config, list(spec["command"]), started, say, signals,
                                          bool(spec.get("levels_first", False)))
        except TrainingInterrupted as error:
            if any(group.run(seed).path.exists() for seed in group.seeds):
                raise
            say(f"not started: {error}")  # stopped during its set-up; no seed folder: resume trains them
            return vectorized.VectorizedResult([], config.train.total_frames, "stopped", time.perf_counter() - started, 1)
    frames = spec["total_frames"] or load_config(group.config_path).train.total_frames
    signals = vectorized.Signals(on_armed=lambda: say(f"training {frames:,} frames"))
    return vectorized.resume_group(group, spec["total_frames"], list(spec["command"]), started, say,
                                   bool(spec.get("allow_changed_inflow", False)), signals)


def run(spec: dict[str, Any]) -> Any:
    """Train or resume as ``spec`` says, with the plain progress view on stdout; returns the `TrainSummary`."""
    from rich.console import Console

    from reservoir_rl.commands import train as service
    from reservoir_rl.monitor.live import make_view

    # plain, not "auto": the output is a log, and the starting process waits for the plain view's first line
    view = make_view("plain", Console())
    if spec["action"] == "train":
        return service.train(spec["config"], list(spec["overrides"]), view, spec["runs_dir"], spec["name"],
                             spec["seed"], command=_command(spec))
    run_dir = Path(spec["run"])
    return service.resume(str(run_dir), view, run_dir.parent, spec["total_frames"], command=_command(spec),
                          allow_changed_inflow=bool(spec.get("allow_changed_inflow", False)))


def summary_lines(summary: Any) -> list[str]:
    """The end of a seed's log: how it ended, counters, wall time (s), validation returns, folder."""
    status = "finished" if summary.stopped_by == "done" else f"stopped by {summary.stopped_by}, checkpoint saved"
    lines = [
        f"status: {status}",
        f"frames / updates / episodes: {summary.frames:,} / {summary.updates:,} / {summary.episodes:,}",
        f"wall time: {summary.seconds:,.1f} s",
    ]
    if summary.last_eval:
        ev = summary.last_eval
        lines += [
            f"validation greedy return: {ev['return']:.2f} (min {ev['return_min']:.2f}, max {ev['return_max']:.2f})",
            f"validation energy / spill: {ev['energy_gwh']:.1f} GWh / {ev['spill_hm3']:.1f} hm³ per episode",
            f"validation failures / success: {ev['failures']:.2f} / {ev['success']:.0%}",
        ]
    if summary.best_eval_return is not None:
        lines.append(f"best validation return: {summary.best_eval_return:.2f} (checkpoints/best.pt)")
    lines.append(f"folder: {summary.run_dir}")
    if summary.stopped_by != "done":  # the folder of every seed: resumes them all
        lines.append(f"continue with: reservoir-rl resume {summary.run_dir.parent}")
    return lines


def standby() -> int:
    """``--standby``: import what a worker of a vectorized run needs, then wait for its job on stdin
    (`reservoir_rl.runs.processes.wait_for_job`) and run it; exit code 0 when no job comes."""
    from reservoir_rl.commands import train, vectorized  # noqa: F401  (the imports are the point)
    from reservoir_rl.runs.processes import wait_for_job

    job = wait_for_job()
    return 0 if job is None else main(job)


def main(argv: Optional[list[str]] = None) -> int:
    """Run the spec of ``argv`` (default: ``sys.argv[1:]``); returns the exit code (0, or 2 on a `UserError`)."""
    arguments = sys.argv[1:] if argv is None else argv
    if arguments == ["--standby"]:
        return standby()
    try:
        spec = read_spec(arguments)
        if spec["action"] in ("train-seeds", "resume-seeds"):
            result = run_seeds(spec)
            lines = [f"seed {r.seed}: {r.status} at frame {r.frames:,}" for r in result.results]
            lines.append(f"wall time: {result.seconds:,.1f} s")
        else:
            lines = summary_lines(run(spec))
    except UserError as error:
        print(f"error: {' '.join(str(error).split())}", file=sys.stderr, flush=True)
        return 2
    print("\n".join(lines), flush=True)
    return 0


if __name__ == "__main__":
    from reservoir_rl.runs.processes import exit_now

    exit_now(main())
