"""K seeds trained in one process (``train --seeds 0,1,2 --vectorized``): collection of all seeds in one
env, the Q-network updates of all seeds as one batched computation, the periodic work seed by seed.

Each seed is an ordinary `Trainer` over its own `TrainingParts` (agent, replay buffer, validation env),
run folder, TensorBoard run and checkpoints; `VectorizedTrainer` steps them in lock step:

- collection: one `SharedCollection` — a `BlockedReservoirEnv` of K × ``train.n_envs`` reservoirs (block k
  is seed k's, with seed k's generator) and one TorchRL collector whose policy is the K agents' ε-greedy
  policies as one module (`StackedExplorePolicy`: one batched Q-network forward (K, n_envs, obs) per day,
  seed k's ε and random draws for block k) under the release guard, per reservoir. Each batch of
  K × ``frames_per_batch`` frames is split into the K seeds' batches;
- then every gradient update is one `StackedDQNAgents.gradient_step` over the K seeds' replay batches;
- then each seed does its periodic work (logging, evaluation and ``best.pt``, checkpoints).

The seeds stay at the same frame and update count. A seed's own env and collector (built with its parts,
as a plain run builds them) hand the shared collection their starting episodes and are not stepped.

Random streams: a plain run draws its exploration, replay sampling and initialisation from the global
torch generator (and keeps numpy / python ones in its checkpoints). `SeedStreams` keeps one set of
global streams per seed and swaps them in before the seed draws, and lends each seed's torch stream to
the collection policy as a generator of its own for the collection; block k of the env draws from seed
k's env generator with the calls of a single env. So seed k draws exactly the numbers it draws in a run
of its own, whatever K and the other seeds are, and its checkpoint holds its own streams. With the
batched update and forward equal bitwise to the single-seed ones (`reservoir_rl.agent.batched`), a
vectorized seed is bitwise the plain run of that seed (tested for K = 1 and across K).
"""

from __future__ import annotations

import time
from typing import Any, Callable, Optional, Sequence

import torch

from torchrl.collectors import Collector

from reservoir_rl.agent.batched import StackedDQNAgents, StackedExplorePolicy
from reservoir_rl.env.blocks import make_blocked_env
from reservoir_rl.env.safety import guarded
from reservoir_rl.errors import CheckpointError
from reservoir_rl.evaluation.blocks import blocked_baseline_returns, evaluate_blocks
from reservoir_rl.agent.replay import is_prioritized, update_priorities
from reservoir_rl.runs.baseline_cache import cached_levels
from reservoir_rl.agent.schedules import updates_due
from reservoir_rl.runs import checkpoint as ckpt
from reservoir_rl.training.trainer import Trainer, crossed


class SeedStreams:
    """The global random streams (torch, numpy, python; as `checkpoint.rng_state` returns them) of K seeds.

    `use` makes seed k's streams the global ones (saving those of the seed that had them); `use_torch`
    swaps only torch's generator, for the replay sampling between two updates (numpy and python are not
    drawn from there, and swapping them costs ~0.1 ms). CPU generators only (CUDA runs are refused)."""

    def __init__(self, states: Sequence[dict[str, Any]]) -> None:
        self._states = [dict(state) for state in states]
        self._torch_owner: Optional[int] = None
        self._owner: Optional[int] = None

    def use_torch(self, k: int) -> None:
        if self._torch_owner == k:
            return
        if self._torch_owner is not None:
            self._states[self._torch_owner]["torch"] = torch.get_rng_state()
        torch.set_rng_state(self._states[k]["torch"])
        self._torch_owner = k

    def use(self, k: int) -> None:
        if self._owner == k and self._torch_owner == k:
            return
        if self._torch_owner is not None:
            self._states[self._torch_owner]["torch"] = torch.get_rng_state()
        if self._owner is not None:
            current = ckpt.rng_state()
            self._states[self._owner].update(numpy=current["numpy"], python=current["python"])
        ckpt.set_rng_state(self._states[k])
        self._owner = self._torch_owner = k


    def lend_torch(self, generators: Sequence[torch.Generator]) -> None:
        """Put seed k's torch stream into ``generators[k]`` (for draws with an explicit generator); the
        streams are theirs until `take_back_torch`, and the global torch generator belongs to no seed."""
        if self._torch_owner is not None:
            self._states[self._torch_owner]["torch"] = torch.get_rng_state()
            self._torch_owner = None
        for state, generator in zip(self._states, generators):
            generator.set_state(state["torch"])

    def take_back_torch(self, generators: Sequence[torch.Generator]) -> None:
        """The torch streams lent by `lend_torch`, where the draws since have left them."""
        for state, generator in zip(self._states, generators):
            state["torch"] = generator.get_state()


class SharedCollection:
    """Every seed's training reservoirs in one env and one collector (module docstring).

    Block k of the env (rows k·n_envs … (k + 1)·n_envs − 1 of each batch) is seed k's: built from
    ``trainers[k]``'s current in-flight episodes (its own env and collector, fresh or loaded from a
    checkpoint), and `block_collection_state` gives them back in the format of a run of its own."""

    def __init__(self, trainers: Sequence[Trainer], stacked: StackedDQNAgents) -> None:
        parts = [trainer.parts for trainer in trainers]
        config = parts[0].config
        train = config.train
        device = parts[0].device
        self.block_size = train.n_envs
        # every seed observes the same features: the first seed's (the SDP's release, when configured)
        self.env = make_blocked_env(config, [p.config.train.seed for p in parts], device, inflow=parts[0].inflow,
                                    release_feature=parts[0].env.release_feature)
        self.generators = [torch.Generator(device=device) for _ in parts]
        self.policy = StackedExplorePolicy(stacked, self.block_size, self.generators)
        self.collector = Collector(
            self.env,
            guarded(self.policy, self.env),
            frames_per_batch=train.frames_per_batch * len(parts),
            total_frames=-1,
            device=device,
            track_traj_ids=False,
            auto_register_policy_transforms=False,
            trust_policy=True,  # the stacked policy's tensors live in the agents (on the collector's device)
        )
        self._batches = None
        for k, seed_parts in enumerate(parts):
            self.load_block_collection_state(k, seed_parts.collection_state())
            seed_parts._shared = (self, k)

    def rows(self, k: int) -> slice:
        return slice(k * self.block_size, (k + 1) * self.block_size)

    def next_batches(self, streams: SeedStreams) -> list:
        """One collector batch of every seed, (n_envs, T) each, drawn with each seed's torch stream."""
        if self._batches is None:
            self._batches = iter(self.collector)
        streams.lend_torch(self.generators)
        try:
            batch = next(self._batches)
        finally:
            streams.take_back_torch(self.generators)
        return list(batch.split(self.block_size, dim=0))  # block k: rows k·n_envs … (k + 1)·n_envs − 1

    def block_collection_state(self, k: int) -> dict[str, Any]:
        """Seed k's ``env_state`` and ``carrier`` checkpoint entries, as `TrainingParts.collection_state`
        of a run of its own writes them."""
        rows = self.rows(k)
        carrier = self.collector._carrier
        return {
            "env_state": self.env.block_state(k),
            "carrier": {"/".join(key) if isinstance(key, tuple) else key: value[rows].cpu().clone()
                        for key, value in carrier.items(True, True)},
        }

    def load_block_collection_state(self, k: int, payload: dict[str, Any]) -> None:
        """Put seed k's in-flight episodes (a checkpoint's ``env_state`` and ``carrier``) into block k."""
        if "workers" in payload["env_state"]:
            raise CheckpointError(
                "the checkpoint holds the episodes of collector workers (it was written with another train.collector setting)"
            )
        self.env.set_block_state(k, payload["env_state"])
        rows = self.rows(k)
        carrier = self.collector._carrier
        for key, value in payload["carrier"].items():
            name = tuple(key.split("/"))
            current = carrier.get(name, None)
            if current is None:  # a key the carrier gets once it has stepped (every block's checkpoint has it)
                merged = torch.zeros((self.env.n_envs, *value.shape[1:]), dtype=value.dtype, device=carrier.device)
            else:
                merged = current.clone()
            merged[rows] = value.to(merged.device)
            carrier.set(name, merged)


class VectorizedTrainer:
    """Trains K `Trainer`s of one config in lock step: one collection for all (`SharedCollection`), batched
    updates, every seed's validation evaluation in one rollout of a blocked validation env (see the module
    docstring).

    Args:
        trainers: one per seed, built from the same config except ``train.seed``, at the same frame.
        streams: their global random streams (the state right after building, or a checkpoint's).
        run_dir: the multi-seed run's folder (named when a second stop signal abandons the run).
        on_evaluation: called with (frames, [validation return per seed]) after each in-training evaluation.
    """

    def __init__(self, trainers: Sequence[Trainer], streams: SeedStreams, run_dir: Any,
                 on_evaluation: Optional[Callable[[int, list[Optional[float]]], None]] = None) -> None:
        self.trainers = list(trainers)
        if len({(t.frames, t.updates) for t in self.trainers}) != 1:
            raise ValueError("the seeds of a vectorized run must be at the same frame and update")
        self.streams = streams
        self.run_dir = run_dir
        self.on_evaluation = on_evaluation
        self.stacked = StackedDQNAgents([t.parts.agent for t in self.trainers])
        self.collection = SharedCollection(self.trainers, self.stacked)
        parts = self.trainers[0].parts
        episodes = parts.config.train.eval_episodes
        # every seed's validation env as one: block k is seed k's (its seed, its episodes)
        self.eval_env = self._validation_blocks([t.parts.eval_seed for t in self.trainers])
        no_draws = [torch.Generator(device=parts.device) for _ in self.trainers]  # greedy: nothing is drawn
        self.greedy_policy = guarded(StackedExplorePolicy(self.stacked, episodes, no_draws), self.eval_env)
        self.stop_requested: Optional[str] = None

    @property
    def frames(self) -> int:
        return self.trainers[0].frames

    @property
    def updates(self) -> int:
        return self.trainers[0].updates

    def each(self):
        """(k, trainer) with seed k's random streams in place."""
        for k, trainer in enumerate(self.trainers):
            self.streams.use(k)
            yield k, trainer

    def save_checkpoints(self) -> None:
        for _, trainer in self.each():
            trainer.save_checkpoint()

    def run(self, total_frames: int) -> str:
        """Train every seed until ``total_frames`` (or a stop request); returns why it stopped ("done" or a
        signal name). What `Trainer.run` does for one seed — the final evaluation and figures of a finished
        run, a checkpoint on the way out — is done for each."""
        train = self.trainers[0].config.train
        for _, trainer in self.each():
            trainer.parts.agent.set_epsilon(trainer.epsilon_at(trainer.frames))
            trainer.parts.agent.set_learning_rate(trainer.lr_at(trainer.frames))
            trainer.view.start(total_frames, trainer.frames)
            trainer._log_clock = (time.perf_counter(), trainer.frames)
        for _, trainer in self.each():  # DQfD's pre-training, seed by seed (nothing without a teacher)
            trainer.pretrain()
        if self.frames < total_frames and not self.stop_requested:
            while True:
                before = self.frames
                batches = self.collection.next_batches(self.streams)
                for trainer, batch in zip(self.trainers, batches):  # (draws nothing: no stream swaps)
                    trainer.frames += batch.numel()
                    transitions = trainer.replay_transitions(batch)
                    if transitions.shape[0]:
                        trainer.parts.replay_buffer.extend(transitions)
                    trainer._observe_batch(batch)
                target = updates_due(self.frames, train.init_random_frames, train.updates_per_frame)
                ready = all(len(t.parts.replay_buffer) for t in self.trainers)  # (n-step: may still be empty)
                while self.updates < target and ready:
                    self._update()
                if crossed(before, self.frames, train.eval_every_frames):
                    self._evaluate_together()
                for k, trainer in self.each():
                    trainer.parts.agent.set_epsilon(trainer.epsilon_at(trainer.frames))
                    trainer.parts.agent.set_learning_rate(trainer.lr_at(trainer.frames))
                    trainer._periodic(before, trainer.frames, batches[k])
                if self.on_evaluation is not None and crossed(before, self.frames, train.eval_every_frames):
                    self._report_evaluation()
                if self.frames >= total_frames or self.stop_requested:
                    break
        stopped_by = self.stop_requested or "done"
        for _, trainer in self.each():
            trainer.check_finite()
        evaluated = False
        if stopped_by == "done" and any(
            t.last_eval is None or t.last_eval.get("frames") != t.frames for t in self.trainers
        ):
            self._evaluate_together()
        for _, trainer in self.each():
            if stopped_by == "done" and (trainer.last_eval is None or trainer.last_eval.get("frames") != trainer.frames):
                trainer._evaluate()
                trainer.view.update(trainer.frames, trainer._display_stats(trainer.frames))
                evaluated = True
            if stopped_by == "done" and trainer.figures_frame != trainer.frames:
                trainer._draw_figures()
            trainer.save_checkpoint()
            trainer.parts.close()
        if evaluated and self.on_evaluation is not None:
            self._report_evaluation()
        return stopped_by

    def _evaluate_together(self) -> None:
        """Every seed's validation evaluation at this frame in one rollout (`evaluate_blocks`), handed to
        each trainer for its `Trainer._evaluate` (logging, ``best.pt``); on the first evaluation of the
        process, every seed's baseline levels likewise (`blocked_baseline_returns`; seeds that share their
        validation episodes, ``train.eval_seed``, share one block of that rollout)."""
        self.compute_baseline_levels()
        for trainer, result in zip(self.trainers, evaluate_blocks(self.eval_env, self.greedy_policy)):
            trainer.next_evaluation = (trainer.frames, result)

    def compute_baseline_levels(self) -> None:
        """Every seed's baselines' validation levels (``logging.baseline_levels``), unless known: read from the
        runs folder's cache, else rolled out once per distinct set of validation episodes
        (`blocked_baseline_returns`). Changes no training state (the validation env has its own generator)."""
        config = self.trainers[0].config
        if config.logging.baseline_levels and any(t._baseline_levels is None for t in self.trainers):
            computed: dict[int, dict[str, float]] = {}
            eval_seeds = [t.parts.eval_seed for t in self.trainers]

            def blocked(eval_seed: int) -> dict[str, float]:  # every episode set's levels in one rollout
                if not computed:
                    distinct = list(dict.fromkeys(eval_seeds))
                    computed.update(zip(distinct, blocked_baseline_returns(self._levels_env(distinct), config)))
                return computed[eval_seed]

            for trainer in self.trainers:  # each seed's from the runs folder's cache when kept there
                trainer._baseline_levels = cached_levels(trainer.baseline_cache_dir, trainer.config, trainer.parts.inflow,
                                                         lambda s=trainer.parts.eval_seed: blocked(s))

    def _validation_blocks(self, eval_seeds: list[int]) -> Any:
        """One blocked validation env of ``train.eval_episodes`` episodes per seed of ``eval_seeds``."""
        parts = self.trainers[0].parts
        return make_blocked_env(parts.config, eval_seeds, parts.device, inflow=parts.inflow, split="validation",
                                block_size=parts.config.train.eval_episodes, scale_inflow=False,
                                release_feature=parts.eval_env.release_feature)

    def _levels_env(self, eval_seeds: list[int]) -> Any:
        """The blocked validation env of these distinct validation seeds (the seeds' own when they are all
        distinct)."""
        return self.eval_env if len(eval_seeds) == len(self.trainers) else self._validation_blocks(eval_seeds)

    def _report_evaluation(self) -> None:
        self.on_evaluation(self.frames, [
            None if t.last_eval is None else float(t.last_eval["return"]) for t in self.trainers
        ])

    def _update(self) -> None:
        """One gradient step of every seed on its own replay batch (sampled with its own torch stream),
        batched; then each seed's priorities, counters and statistics, as `Trainer._update` does."""
        samples = []
        for k, trainer in enumerate(self.trainers):
            self.streams.use_torch(k)
            samples.append(trainer.replay_sample())  # (with the teacher's rows last, when there is one)

        def stacked(key):
            values = [sample[key] for sample, _, _ in samples]
            return None if values[0] is None else torch.stack(values)

        weights = None if samples[0][2] is None else torch.stack([w for _, _, w in samples])
        steps = None
        if samples[0][0].get("steps_to_next_obs") is not None:
            steps = torch.stack([sample["steps_to_next_obs"] for sample, _, _ in samples])
        loss, grad_norm, td_error_squared = self.stacked.gradient_step(
            stacked("observation"), stacked("action"), stacked(("next", "observation")),
            stacked(("next", "reward")), stacked(("next", "terminated")),
            max_grad_norm=self.trainers[0].config.train.grad_clip_norm, weights=weights, steps_to_next_obs=steps,
            demonstration=self.trainers[0].demonstration_margin,
        )
        td_error_squared = td_error_squared[:, :samples[0][1].shape[0]]  # the replay rows (demonstrations last)
        for k, trainer in enumerate(self.trainers):
            if is_prioritized(trainer.parts.replay_buffer):
                update_priorities(trainer.parts.replay_buffer, samples[k][1], td_error_squared[k])
            trainer.updates += 1
            trainer.window.add_update(loss[k], grad_norm[k], td_error_squared[k].sqrt().mean())
