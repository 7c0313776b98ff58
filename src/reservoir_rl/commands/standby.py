"""Worker processes started ahead for a vectorized `train --seeds` (a light module: no torch).

A vectorized run of K seeds on C cores trains min(C, K) groups of seeds, the first in the `train` process and
each other in a worker process (`reservoir_rl.commands.seeds`). A worker's start-up — the interpreter, torch and
torchrl, about 5 s — would begin only once the `train` process has imported them itself and created the run
folder; `standby_workers`, called by the command line before that, starts the workers at once as standby
processes (`reservoir_rl.runs.processes.start_standby`) which import in parallel and then wait for their group.
"""

from __future__ import annotations

import subprocess
from typing import Optional

from reservoir_rl.commands.seed_process import MODULE
from reservoir_rl.runs.processes import parallelism, start_standby


def standby_workers(n_seeds: int, max_parallel: Optional[int], vectorized: Optional[bool]) -> list[subprocess.Popen]:
    """The worker processes a `train --seeds` of ``n_seeds`` seeds will hand its groups to, started now: one
    per group after the first (min(cores, n_seeds, ``max_parallel``) groups), each with the torch threads of a
    group; none for process mode (``vectorized`` False) or a single group. `train_seeds` hands them their groups,
    or ends them when it does not use them (an error, process mode)."""
    if vectorized is False or n_seeds < 2:
        return []
    groups, threads = parallelism(n_seeds, max_parallel)  # (as `train_seeds` splits the seeds)
    return start_standby(MODULE, groups - 1, threads)
