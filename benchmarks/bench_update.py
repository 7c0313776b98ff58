"""Time of one DQN update's loss and gradients (the fused manual-gradient path) by replay batch size and seeds.

    python benchmarks/bench_update.py                       # configs/base.yaml, batches 4, 16, 64, 256; K = 1, 3

What `reservoir-rl train` computes per update before Adam: `FusedDQNLoss.loss_and_gradients` for one seed and
`StackedDQNAgents._loss_and_gradients` for K seeds, on random observations of the config's network, one CPU
thread. A batch of 4 rows costs what the update's operations cost whatever their size (per-operation overhead);
what a larger batch adds on top is arithmetic. ``--former-online-next`` also times the update as it was before
the Munchausen target stopped running the online network on s' (the online forward over s and s'), alternating.
Each figure is the median over ``--repeats`` blocks of ``--calls`` calls.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import torch
from torchrl.data import Categorical

from reservoir_rl.agent.batched import StackedDQNAgents
from reservoir_rl.agent.dqn import make_agent
from reservoir_rl.config import load_config

ROOT = Path(__file__).resolve().parents[1]

OBS_SIZE, N_ACTIONS = 13, 11


def batch(k: int, rows: int) -> tuple[torch.Tensor, ...]:
    """Random (K, rows, …) observation, action, next observation, reward and terminated tensors."""
    return (torch.randn(k, rows, OBS_SIZE), torch.randint(0, N_ACTIONS, (k, rows)), torch.randn(k, rows, OBS_SIZE),
            torch.randn(k, rows, 1), torch.zeros(k, rows, 1, dtype=torch.bool))


def timed_ms(call, calls: int) -> float:
    start = time.perf_counter()
    for _ in range(calls):
        call()
    return (time.perf_counter() - start) / calls * 1e3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default=str(ROOT / "configs" / "base.yaml"))
    parser.add_argument("--batches", default="4,16,64,256", help="replay batch sizes, comma-separated")
    parser.add_argument("--seeds-counts", default="1,3", help="K, comma-separated (at the config's batch size)")
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--calls", type=int, default=300)
    parser.add_argument("--former-online-next", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(1)
    config = load_config(args.config)
    torch.manual_seed(0)
    agent = make_agent(OBS_SIZE, Categorical(N_ACTIONS), config.agent, config.train)
    fused = agent.fused_loss
    print(f"one thread; {args.config}; median of {args.repeats} × {args.calls} calls")
    times: dict[int, list[float]] = {}
    for _ in range(args.repeats):
        for rows in map(int, args.batches.split(",")):
            tensors = [t[0] for t in batch(1, rows)]
            times.setdefault(rows, []).append(timed_ms(lambda: fused.loss_and_gradients(*tensors), args.calls))
    for rows, values in times.items():
        print(f"one seed, batch {rows:4d}: {statistics.median(values):.3f} ms per loss and gradients")
    for k in map(int, args.seeds_counts.split(",")):
        torch.manual_seed(0)
        stacked = StackedDQNAgents([make_agent(OBS_SIZE, Categorical(N_ACTIONS), config.agent, config.train)
                                    for _ in range(k)])
        tensors = batch(k, config.train.batch_size)
        flags = (False, True) if args.former_online_next else (False,)
        stacked_fused = stacked.agents[0].fused_loss  # the batched update reads the first agent's settings
        current = stacked_fused.online_reads_next
        per_flag: dict[bool, list[float]] = {flag: [] for flag in flags}
        for _ in range(args.repeats):
            for former in flags:
                stacked_fused.online_reads_next = stacked_fused.double_dqn if former else current
                per_flag[former].append(timed_ms(lambda: stacked._loss_and_gradients(*tensors, None, None), args.calls))
        stacked_fused.online_reads_next = current
        line = f"K = {k:2d}, batch {config.train.batch_size}: {statistics.median(per_flag[False]):.3f} ms"
        if args.former_online_next:
            line += f" (online forward over s and s': {statistics.median(per_flag[True]):.3f} ms)"
        print(line)


if __name__ == "__main__":
    main()
