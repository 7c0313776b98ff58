"""Resident memory of a long training run: does it stay flat once the replay buffer is full?

Runs ``reservoir-rl``'s training (the service behind ``reservoir-rl train``) in a child process on the
default config (``--config``, ``--set`` overrides as on the command line) for ``--frames`` frames, with
checkpoints and held-out evaluations infrequent (every 250,000 frames unless ``--set`` says otherwise)
and no mid-run figures. Every ``--interval`` seconds the parent reads the child's resident set size
(VmRSS in /proc/PID/status, Linux), the private memory (USS, from /proc/PID/smaps_rollup) of the
child and its own children together (the collector workers of ``train.collector.backend: process``;
shared library pages, which every worker maps, are left out), and the frame count the child reports,
and prints one row.

Reported at the end:
- RSS when the replay buffer is full: the first sample at or after ``train.buffer_size`` frames (with
  ``agent.n_step`` = 1 every frame is one stored transition);
- RSS at the end of training: the last sample before the child's final evaluation and checkpoint;
- the growth between the two, in % (target: ≤ 5 %), and the peak after the buffer is full.

Usage (the machine is shared: the full run takes a while):
    python benchmarks/bench_memory.py                                   # 1,000,000 frames, default config
    python benchmarks/bench_memory.py --frames 150000 --set train.buffer_size=50000
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Optional

ROOT = Path(__file__).resolve().parents[1]
INFREQUENT = [
    "train.checkpoint_every_frames=250000",
    "train.eval_every_frames=250000",
    "logging.figure_every_frames=1000000000",
]


# ----------------------------------------------------------------------------------------- child


class ProgressFileView:
    """A progress view (see monitor/live.py) that writes {"frames", "phase"} to a file at most every
    0.5 s: what the parent reads between two memory samples."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._written = 0.0
        self.total_frames = 0
        self.frames = 0

    def _write(self, frames: int, phase: str) -> None:
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"frames": frames, "phase": phase}))
        os.replace(tmp, self.path)
        self._written = time.monotonic()

    def start(self, total_frames: int, start_frame: int = 0) -> None:
        self.total_frames = total_frames
        self._write(start_frame, "training")

    def update(self, frames: int, stats: dict) -> None:
        self.frames = frames
        if frames >= self.total_frames:  # the last batch: what follows is the final evaluation and checkpoint
            self._write(frames, "finishing")
        elif time.monotonic() - self._written >= 0.5:
            self._write(frames, "training")

    def add_episodes(self, rows: list) -> None:
        pass

    def message(self, text: str) -> None:
        pass

    def stop(self) -> None:
        self._write(self.frames, "finishing")


def child(args: argparse.Namespace) -> None:
    from reservoir_rl.commands import train as service

    summary = service.train(
        args.config, [*INFREQUENT, f"train.total_frames={args.frames}", *args.set], ProgressFileView(Path(args.progress)),
        runs_dir=args.runs_dir, name="memory", command=["bench_memory.py"],
    )
    Path(args.result).write_text(json.dumps({"frames": summary.frames, "seconds": summary.seconds}))


# ---------------------------------------------------------------------------------------- parent


def _proc_kib(path: str, field: str) -> Optional[float]:
    try:
        for line in Path(path).read_text().splitlines():
            if line.startswith(field):
                return int(line.split()[1]) / 1024.0
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    return None


def rss_mib(pid: int) -> Optional[float]:
    """VmRSS of ``pid`` in MiB (None once the process is gone)."""
    return _proc_kib(f"/proc/{pid}/status", "VmRSS:")


def uss_mib(pid: int) -> Optional[float]:
    """Unique set size of ``pid`` in MiB: its private resident pages (Private_Clean + Private_Dirty in
    /proc/PID/smaps_rollup). Shared library pages are left out: they do not grow with a leak, and their
    proportional share (PSS) moves whenever any other process on the machine maps the same libraries."""
    clean = _proc_kib(f"/proc/{pid}/smaps_rollup", "Private_Clean:")
    dirty = _proc_kib(f"/proc/{pid}/smaps_rollup", "Private_Dirty:")
    return None if clean is None or dirty is None else clean + dirty


def descendants(pid: int) -> list[int]:
    """Every process below ``pid`` (children, their children, …), from /proc/*/stat."""
    parents: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat[stat.rindex(")") + 2:].split()[1])
        parents.setdefault(ppid, []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        for kid in parents.get(todo.pop(), []):
            found.append(kid)
            todo.append(kid)
    return found


def read_progress(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return {"frames": 0, "phase": "starting"}


def effective_config(args: argparse.Namespace):
    from reservoir_rl.config import load_config

    return load_config(args.config, [*INFREQUENT, f"train.total_frames={args.frames}", *args.set])


def parent(args: argparse.Namespace) -> None:
    config = effective_config(args)  # a bad --set fails here, before the long run
    buffer_size = config.train.buffer_size
    with tempfile.TemporaryDirectory(prefix="bench-memory-") as scratch:
        runs_dir = Path(args.runs_dir) if args.runs_dir else Path(scratch) / "runs"
        progress, result = Path(scratch) / "progress.json", Path(scratch) / "result.json"
        command = [sys.executable, __file__, "--child", "--progress", str(progress), "--result", str(result),
                   "--runs-dir", str(runs_dir), "--config", str(args.config), "--frames", str(args.frames)]
        for override in args.set:
            command += ["--set", override]
        print(f"training {args.frames:,} frames: buffer_size {buffer_size:,}, n_envs {config.train.n_envs}, "
              f"backend {config.train.collector.backend}, device {config.train.device}, overrides {args.set or 'none'}")
        print(f"{'elapsed s':>9}  {'frames':>10}  {'buffer %':>8}  {'RSS MiB':>8}  {'USS+children':>12}  phase")
        started = time.monotonic()
        process = subprocess.Popen(command, cwd=ROOT)
        samples = []
        while process.poll() is None:
            time.sleep(args.interval)
            main = rss_mib(process.pid)
            if main is None:
                break
            total = sum(filter(None, (uss_mib(pid) for pid in [process.pid, *descendants(process.pid)])))
            state = read_progress(progress)
            frames = int(state["frames"])
            sample = {"seconds": time.monotonic() - started, "frames": frames, "rss": main, "total": total,
                      "phase": state["phase"]}
            samples.append(sample)
            fill = min(frames, buffer_size) / buffer_size * 100
            print(f"{sample['seconds']:9.0f}  {frames:10,}  {fill:8.0f}  {main:8.1f}  {total:12.1f}  {sample['phase']}",
                  flush=True)
        if process.wait():
            sys.exit(f"the training run failed (exit {process.returncode})")
        outcome = json.loads(result.read_text())
    report(samples, buffer_size, outcome)


def report(samples: list[dict], buffer_size: int, result: dict) -> None:
    print(f"\nrun: {result['frames']:,} frames in {result['seconds']:,.0f} s "
          f"({result['frames'] / result['seconds']:,.0f} frames/s, memory sampling included)")
    full = [s for s in samples if s["frames"] >= buffer_size]
    training = [s for s in full if s["phase"] == "training"]
    if not training:
        print("the replay buffer was not full during training: no growth figure (more --frames or a smaller buffer)")
        return
    first, last = training[0], training[-1]
    for key, label in (("rss", "training process, RSS"), ("total", "private memory (USS) with its children (workers)")):
        growth = (last[key] - first[key]) / first[key] * 100
        peak = max(s[key] for s in training)
        print(f"{label}: {first[key]:.1f} MiB when the buffer was full (frame {first['frames']:,}), "
              f"{last[key]:.1f} MiB at the end of training (frame {last['frames']:,}): growth {growth:+.2f} % "
              f"(target ≤ 5 %), peak {peak:.1f} MiB")
    after = [s for s in samples if s["phase"] != "training"]
    if after:
        print(f"after training (final evaluation with figures, checkpoint): RSS {max(s['rss'] for s in after):.1f} MiB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", type=int, default=1_000_000, help="training frames (default 1,000,000)")
    parser.add_argument("--config", default=str(ROOT / "configs" / "base.yaml"))
    parser.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE",
                        help="config override, as `reservoir-rl train --set` (repeatable; applied last)")
    parser.add_argument("--interval", type=float, default=5.0, help="seconds between two memory samples")
    parser.add_argument("--runs-dir", default=None, help="keep the run folder here (default: a temporary folder)")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--progress", help=argparse.SUPPRESS)
    parser.add_argument("--result", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args)
    else:
        parent(args)


if __name__ == "__main__":
    main()
