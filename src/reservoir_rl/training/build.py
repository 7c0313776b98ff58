"""Factories that turn a validated config into the pieces of a run (one place for every command)."""

from __future__ import annotations

import logging
import random
import weakref
from dataclasses import dataclass, field
from typing import Any, Optional

import numpy as np
import torch
from torchrl.collectors import Collector

from reservoir_rl.agent.dqn import DQNAgent, GreedyQPolicy, make_agent
from reservoir_rl.agent.replay import make_replay_buffer
from reservoir_rl.config import Config
from reservoir_rl.env.inflow import InflowRecord
from reservoir_rl.baselines.features import build_env
from reservoir_rl.env.reservoir_env import DiscreteReservoirEnv
from reservoir_rl.env.safety import guarded
from reservoir_rl.env.sources import load_inflow
from reservoir_rl.errors import CheckpointError, UserError
from reservoir_rl.training import collection



def resolve_device(device: str) -> torch.device:
    """``train.device`` (or ``--device``) as a torch device; cuda without a GPU is a one-line error."""
    if device == "cuda" and not torch.cuda.is_available():
        raise UserError("--device cuda (train.device = cuda): no CUDA device is available on this machine; use cpu")
    return torch.device(device)


def cpu_tree(tree: Any) -> Any:
    """Nested dicts / lists of tensors with every tensor on the CPU (checkpoints hold no device tensors)."""
    if isinstance(tree, torch.Tensor):
        return tree.cpu()
    if isinstance(tree, dict):
        return {key: cpu_tree(value) for key, value in tree.items()}
    if isinstance(tree, (list, tuple)):
        return type(tree)(cpu_tree(value) for value in tree)
    return tree


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def _shutdown(collector: Any) -> None:
    threads = torch.get_num_threads()  # (MultiSyncCollector.shutdown raises this process's thread count)
    try:
        collector.shutdown()
    except Exception:  # noqa: BLE001 - best effort at exit; the workers also stop when their pipes close
        pass
    finally:
        torch.set_num_threads(threads)


@dataclass
class TrainingParts:
    """Everything a training run steps: env, agent, replay buffer, collector, validation eval env.

    ``env`` is the training env of the ``sync`` backend, the one its collector steps. With the
    ``process`` and ``ray`` backends the workers step their own envs (see `service.collection`) and
    ``env`` is a local one with the same specs and ``n_envs``, which the trainer reads for sizes and
    the reservoir config; it is never stepped. Their workers start on first use of ``collector``, so a
    resumed run can hand them its in-flight episodes first (`load_collection_state`)."""

    config: Config
    device: torch.device
    inflow: InflowRecord
    env: DiscreteReservoirEnv
    eval_env: DiscreteReservoirEnv
    agent: DQNAgent
    replay_buffer: object
    _collector: Optional[Any] = None
    _pending_state: Optional[dict[str, Any]] = field(default=None, repr=False)
    _start_frames: int = 0
    _starts: int = 0
    _stop_workers: Optional[weakref.finalize] = field(default=None, repr=False)
    # (shared collection, block): a vectorized run's seed collects in block k of one env shared by the seeds
    # (`reservoir_rl.training.vectorized.SharedCollection`), which then holds its in-flight episodes
    _shared: Optional[tuple[Any, int]] = field(default=None, repr=False)

    @property
    def explore_policy(self) -> Any:
        """What collects: the agent's ε-greedy policy under the env's release guard (`env.safety`; itself when
        the guard is off). Its ``action`` is the executed level, so the replay buffer stores and the agent
        learns from what the reservoir did."""
        policy = self.__dict__.get("_explore_policy")
        if policy is None:
            policy = self.__dict__["_explore_policy"] = guarded(self.agent.explore_policy, self.env)
        return policy

    @property
    def greedy_policy(self) -> Any:
        """The greedy agent under the eval env's release guard (the in-training evaluation)."""
        policy = self.__dict__.get("_greedy_policy")
        if policy is None:
            policy = self.__dict__["_greedy_policy"] = guarded(GreedyQPolicy(self.agent.q_network), self.eval_env)
        return policy

    @property
    def eval_seed(self) -> int:
        return self.config.train.validation_env_seed

    @property
    def backend(self) -> str:
        return self.config.train.collector.backend

    @property
    def collector(self) -> Any:
        """The collector; iterating it yields batches of shape (n_envs, T), T = frames_per_batch / n_envs."""
        if self._collector is None:
            collector = collection.start_collector(
                self.config, self.inflow, self.device, self.explore_policy, self._start_frames, self._starts
            )
            self._starts += 1
            self._stop_workers = weakref.finalize(self, _shutdown, collector)  # with the parts, or at exit
            self._collector = collector
            if self._pending_state is not None:
                collection.load_worker_states(collector, self._pending_state, self.config.train.collector.workers)
                self._pending_state = None
        return self._collector

    def collection_state(self) -> dict[str, Any]:
        """The in-flight episodes, as the ``env_state`` and ``carrier`` entries of a checkpoint:
        the envs' reservoirs and generators, and the collector's carried tensordict (each env's
        current observation). ``process`` / ``ray``: one of each per worker, under ``"workers"``. A seed of a
        vectorized run: its block of the shared env and collector, in the format of a run of its own."""
        if self._shared is not None:
            shared, block = self._shared
            return shared.block_collection_state(block)
        if self.backend != "sync":
            return collection.worker_states(self.collector)
        carrier = self.collector._carrier  # the collector's in-flight root tensordict (each env's current state)
        return {
            "env_state": self.env.get_state(),
            "carrier": {"/".join(k) if isinstance(k, tuple) else k: v.cpu().clone() for k, v in carrier.items(True, True)},
        }

    def load_collection_state(self, payload: dict[str, Any]) -> None:
        """Restore what `collection_state` saved (in ``payload``, a checkpoint).

        ``sync``: exactly. ``process`` / ``ray``: each worker gets its reservoirs, generator and carried
        tensordict back when it starts; its exploration draws restart from a seed derived from the
        checkpoint's frame count (not the stream an uninterrupted run would have continued)."""
        if self._shared is not None:
            shared, block = self._shared
            shared.load_block_collection_state(block, payload)
            return
        if self.backend != "sync":
            workers = self.config.train.collector.workers
            collection.check_worker_states(payload, workers)
            if self._collector is not None:
                collection.load_worker_states(self._collector, payload, workers)
            else:
                self._pending_state = {"env_state": payload["env_state"], "carrier": payload["carrier"]}
                self._start_frames = int(payload.get("counters", {}).get("frames", 0))
            return
        if "workers" in payload["env_state"]:
            raise CheckpointError(
                "the checkpoint holds the episodes of collector workers (it was written with another train.collector setting)"
            )
        self.env.set_state(payload["env_state"])
        carrier = self.collector._carrier
        for key, value in payload["carrier"].items():
            carrier.set(tuple(key.split("/")), value.to(self.device))

    def close(self) -> None:
        """Stop the collector's workers (process / ray backends; a no-op for sync). Their in-flight
        episodes are kept: using ``collector`` again starts new workers that continue them."""
        if self._stop_workers is None:
            return
        try:
            self._pending_state = collection.worker_states(self._collector)
        finally:
            self._stop_workers()
            self._stop_workers = None
            self._collector = None


def build_training(config: Config, device: torch.device, inflow: Optional[InflowRecord] = None) -> TrainingParts:
    """Seed every generator from ``train.seed`` and build the run's pieces in a fixed order.

    ``inflow``: the record of ``config.inflow`` when the caller has it already (the seeds of a vectorized
    run share it; loading draws no random numbers), else it is loaded here.
    ``process`` / ``ray`` backends: the workers start when the collector is first used."""
    train = config.train
    if train.collector.backend == "ray":
        collection.require_ray()
    logging.getLogger("torchrl").setLevel(logging.WARNING)  # no storage-allocation INFO lines mid-display
    if train.torch_threads:
        # one thread is fastest for these small networks and tensors: several threads per process
        # oversubscribe the cores as soon as anything else runs (default-thread runs of the base config
        # took 2-3x longer here than one-thread runs on the same loaded machine)
        torch.set_num_threads(train.torch_threads)
    seed_everything(train.seed)
    inflow = load_inflow(config.inflow) if inflow is None else inflow
    env = build_env(
        config, "train", n_envs=train.n_envs, device=device, seed=train.seed, inflow=inflow, scale_inflow=True
    )
    eval_env = build_env(
        config, "validation", n_envs=train.eval_episodes, device=device, seed=train.validation_env_seed, inflow=inflow
    )
    agent = make_agent(env.observation_size, env.action_spec, config.agent, train, device=device)
    replay_buffer = make_replay_buffer(train, device=device)
    parts = TrainingParts(config, device, inflow, env, eval_env, agent, replay_buffer)
    if train.collector.backend == "sync":
        parts._collector = Collector(
            env,
            parts.explore_policy,
            frames_per_batch=train.frames_per_batch,
            total_frames=-1,
            device=device,
            track_traj_ids=False,
            # the policy reads only "observation": it needs no env transform (InitTracker, primers)
            auto_register_policy_transforms=False,
        )
    return parts
