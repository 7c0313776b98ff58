"""Collection backends: who steps the training reservoirs (``train.collector.backend``).

- ``sync``: one TorchRL ``Collector`` in the training process steps all ``train.n_envs`` reservoirs.
- ``process``: TorchRL's ``MultiSyncCollector`` runs ``train.collector.workers`` worker processes on the
  local cores; each steps its own batched `DiscreteReservoirEnv` of ``n_envs / workers`` reservoirs.
- ``ray``: TorchRL's ``RayCollector`` runs the same workers as Ray actors, locally or on a cluster.

Every backend hands the trainer batches of shape (n_envs, T) with T = frames_per_batch / n_envs days:
row i is always the same reservoir (worker 0's reservoirs first), so n-step windows and episode
accounting read them exactly as they read the sync backend's batches. The policy (Q-network and the
ε of the ε-greedy module, a buffer) is pushed to the workers before every batch.

Each worker builds its env from plain data (the config as a dict and the inflow record), so the env
factory pickles for spawned processes and Ray actors; its reservoirs and its exploration draws get
their own seeds, derived from ``train.seed`` and the worker index (and, for the exploration draws,
the frame a resumed run starts from).
"""

from __future__ import annotations

import functools
import os
import random
import signal
from typing import Any

import numpy as np
import torch
from tensordict import TensorDictBase
from tensordict.nn import TensorDictModuleBase

from reservoir_rl.config import Config, config_from_dict, config_to_dict
from reservoir_rl.env.inflow import InflowRecord
from reservoir_rl.baselines.features import build_env
from reservoir_rl.env.reservoir_env import DiscreteReservoirEnv
from reservoir_rl.errors import CheckpointError, UserError

# (no square brackets: the CLI renders error lines with Rich markup, which would swallow "[ray]")
RAY_EXTRA_HINT = "install the 'ray' extra of reservoir-rl (or: pip install 'ray>=2.9')"


def derived_seed(*entropy: int) -> int:
    """A well-mixed 32-bit seed from integers (negative ones allowed)."""
    words = [int(value) % 2**64 for value in entropy]
    return int(np.random.SeedSequence(words).generate_state(1)[0])


def worker_env_seed(seed: int, worker: int) -> int:
    """Seed of worker ``worker``'s reservoirs (episode starts, initial storage, forecast errors)."""
    return derived_seed(seed, 1, worker)


def worker_exploration_seed(seed: int, worker: int, start_frames: int, starts: int = 0) -> int:
    """Seed of a worker's global random streams (its ε-greedy draws) when the workers of a run resumed
    at ``start_frames`` start for the ``starts``-th time in this process (0 = first)."""
    return derived_seed(seed, 2, worker, start_frames, starts)


def make_worker_env(
    raw_config: dict[str, Any],
    inflow: InflowRecord,
    n_envs: int,
    device: str,
    env_seed: int,
    exploration_seed: int,
) -> DiscreteReservoirEnv:
    """The env factory of one worker; it runs inside the worker process (or Ray actor).

    It seeds the worker's global torch / numpy / python streams (they drive its ε-greedy draws) and
    builds ``n_envs`` reservoirs on the config's training years of ``inflow``."""
    config = config_from_dict(raw_config, source="worker config")
    random.seed(exploration_seed)
    np.random.seed(exploration_seed)
    torch.manual_seed(exploration_seed)
    return build_env(config, "train", n_envs=n_envs, device=device, seed=env_seed, inflow=inflow, scale_inflow=True)


def ignore_interrupts() -> None:
    """Worker processes ignore SIGINT: Ctrl-C reaches the whole process group, and the training process
    stops the run cleanly (checkpoint included) while the workers still answer."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def worker_env_factories(
    config: Config, inflow: InflowRecord, device: torch.device, start_frames: int, starts: int
) -> list[functools.partial]:
    """One picklable env factory per worker (a top-level function bound to plain data)."""
    train = config.train
    workers = train.collector.workers
    raw = config_to_dict(config)
    return [
        functools.partial(
            make_worker_env,
            raw,
            inflow,
            train.n_envs // workers,
            str(device),
            worker_env_seed(train.seed, worker),
            worker_exploration_seed(train.seed, worker, start_frames, starts),
        )
        for worker in range(workers)
    ]


def require_ray() -> None:
    """Fail at build time, in one line, when the ray backend is asked for without Ray installed."""
    try:
        import ray  # noqa: F401
        from torchrl.collectors.distributed import RayCollector  # noqa: F401
    except ImportError:
        raise UserError(f"train.collector.backend = ray needs Ray, which is not installed: {RAY_EXTRA_HINT}") from None


def merge_worker_axis(batch: TensorDictBase) -> TensorDictBase:
    """(workers, n_envs / workers, T) → (n_envs, T): the layout of the sync backend's batches."""
    return batch.flatten(0, 1)


def start_process_collector(
    config: Config,
    inflow: InflowRecord,
    device: torch.device,
    policy: TensorDictModuleBase,
    start_frames: int,
    starts: int = 0,
):
    """``train.collector.workers`` processes (TorchRL ``MultiSyncCollector``), each stepping its own envs.

    The batches of all workers are concatenated along the env axis (``cat_results=0``), and the policy
    weights (ε included) are copied to the workers' shared memory before every batch
    (``update_at_each_batch``)."""
    from torchrl.collectors import MultiSyncCollector

    train = config.train
    return MultiSyncCollector(
        worker_env_factories(config, inflow, device, start_frames, starts),
        policy,
        frames_per_batch=train.frames_per_batch,
        total_frames=-1,
        device=device,
        cat_results=0,
        use_buffers=True,
        update_at_each_batch=True,
        init_fn=ignore_interrupts,
        num_threads=torch.get_num_threads(),  # the workers wait while this process trains: keep its threads
        num_sub_threads=1,
        # the policy reads only "observation": it needs no env transform (InitTracker, primers)
        auto_register_policy_transforms=False,
    )


def start_ray_collector(
    config: Config,
    inflow: InflowRecord,
    device: torch.device,
    policy: TensorDictModuleBase,
    start_frames: int,
    starts: int = 0,
):
    """``train.collector.workers`` Ray actors (TorchRL ``RayCollector``, synchronous): one batch from
    every actor per step, stacked then merged to (n_envs, T); weights pushed before every batch."""
    from torchrl.collectors import Collector
    from torchrl.collectors.distributed import RayCollector

    train = config.train
    workers = train.collector.workers
    address = train.collector.ray_address
    ray_init: dict[str, Any] = {"address": address, "include_dashboard": False, "log_to_driver": False}
    if address is None:  # a local instance: room for every actor even on a small machine
        ray_init["num_cpus"] = max(os.cpu_count() or 1, workers)
    remote: dict[str, Any] = {"num_cpus": 1}
    if device.type == "cuda":
        remote["num_gpus"] = 1.0 / workers
    collector = RayCollector(
        worker_env_factories(config, inflow, device, start_frames, starts),
        policy,
        collector_class=Collector,
        collector_kwargs={"track_traj_ids": False, "auto_register_policy_transforms": False},
        frames_per_batch=train.frames_per_batch,
        total_frames=2**62,  # endless: the trainer decides when to stop (RayCollector reads -1 as "stop now")
        device=device,
        sync=True,
        update_after_each_batch=True,
        postproc=merge_worker_axis,
        ray_init_config=ray_init,
        remote_configs=remote,
    )
    collector.update_policy_weights_()  # connects the weight sync before the first batch
    return collector


class WorkerCollector:
    """A worker collector whose iterations all continue one stream of batches.

    TorchRL's ``MultiSyncCollector`` gets each worker's batch once in shared memory and afterwards only
    a notice that the buffer was refilled, so a second ``iter()`` would find no data; here every ``for``
    loop continues where the previous one stopped, as with the sync collector. Other attributes
    (``map_fn``, ``update_policy_weights_``, ``shutdown`` …) are the wrapped collector's."""

    def __init__(self, collector: Any) -> None:
        self.collector = collector
        self._batches = None

    def __iter__(self):
        if self._batches is None:
            self._batches = iter(self.collector)
        return self._batches

    def __getattr__(self, name: str) -> Any:
        return getattr(self.collector, name)


def start_collector(
    config: Config,
    inflow: InflowRecord,
    device: torch.device,
    policy: TensorDictModuleBase,
    start_frames: int,
    starts: int = 0,
):
    """The ``process`` or ``ray`` collector of a run, wrapped in a `WorkerCollector`."""
    backend = config.train.collector.backend
    if backend == "process":
        return WorkerCollector(start_process_collector(config, inflow, device, policy, start_frames, starts))
    if backend == "ray":
        return WorkerCollector(start_ray_collector(config, inflow, device, policy, start_frames, starts))
    raise ValueError(f"no worker collector for backend {backend!r}")


# ------------------------------------------------------------------ in-flight episodes of the workers


def _flat(tensordict: TensorDictBase) -> dict[str, torch.Tensor]:
    return {"/".join(k) if isinstance(k, tuple) else k: v.cpu().clone() for k, v in tensordict.items(True, True)}


def worker_states(collector) -> dict[str, Any]:
    """Each worker's env state (reservoirs and generator) and carried tensordict, as plain data."""
    env_states = collector.map_fn("env.get_state")
    carriers = collector.get_distant_attr("_carrier")
    return {
        "env_state": {"workers": [dict(state) for state in env_states]},
        "carrier": {"workers": [_flat(carrier) for carrier in carriers]},
    }


def check_worker_states(payload: dict[str, Any], workers: int) -> tuple[list, list]:
    """The per-worker env states and carriers of a checkpoint; a `CheckpointError` unless it holds
    one of each for ``workers`` workers."""
    env_states = payload["env_state"].get("workers") if isinstance(payload.get("env_state"), dict) else None
    carriers = payload["carrier"].get("workers") if isinstance(payload.get("carrier"), dict) else None
    if not (isinstance(env_states, list) and isinstance(carriers, list) and len(env_states) == len(carriers) == workers):
        raise CheckpointError(
            f"the checkpoint does not hold the episodes of {workers} collector workers "
            "(it was written with another train.collector setting)"
        )
    return env_states, carriers


def load_worker_states(collector, payload: dict[str, Any], workers: int) -> None:
    """Put back what `worker_states` saved, worker by worker (same number of workers)."""
    env_states, carriers = check_worker_states(payload, workers)
    collector.map_fn("env.set_state", [(state,) for state in env_states])
    restored = []
    for carrier, saved in zip(collector.get_distant_attr("_carrier"), carriers):
        carrier = carrier.clone()
        for key, value in saved.items():
            carrier.set(tuple(key.split("/")), value.to(carrier.device) if carrier.device is not None else value)
        restored.append((carrier,))
    collector.map_fn("_carrier.update_", restored)
