"""K seeds trained in one process (``train --seeds 0,1,2 --vectorized``): the Q-network updates of all
seeds as one batched computation, everything else seed by seed.

Each seed is an ordinary `Trainer` over its own `TrainingParts` (env of ``train.n_envs`` reservoirs,
agent, replay buffer, validation env), run folder, TensorBoard run and checkpoints; `VectorizedTrainer`
steps them in lock step — every seed collects its batch, then every gradient update is one
`StackedDQNAgents.gradient_step` over the K seeds' replay batches, then each seed does its periodic work
(logging, evaluation and ``best.pt``, checkpoints). The seeds stay at the same frame and update count.

Random streams: a plain run draws its exploration, replay sampling and initialisation from the global
torch generator (and keeps numpy / python ones in its checkpoints). `SeedStreams` keeps one set of
global streams per seed and swaps them in before the seed draws, so seed k draws exactly the numbers
it draws in a run of its own, whatever K and the other seeds are; its checkpoint holds its own streams.
Each env and validation env has its own generator already. With the batched update equal bitwise to
the single-seed one (`reservoir_rl.agent.batched`), a vectorized seed is bitwise the plain run of that
seed (tested for K = 1 and across K).
"""

from __future__ import annotations

import time
from typing import Any, Callable, Optional, Sequence

import torch

from reservoir_rl.agent.batched import StackedDQNAgents
from reservoir_rl.agent.replay import is_prioritized, sample_transitions, update_priorities
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


class VectorizedTrainer:
    """Trains K `Trainer`s of one config in lock step with a batched update (see the module docstring).

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
        if self.frames < total_frames and not self.stop_requested:
            batches_of = [iter(trainer.parts.collector) for trainer in self.trainers]
            while True:
                before = self.frames
                batches = []
                for k, trainer in self.each():
                    batch = next(batches_of[k])
                    trainer.frames += batch.numel()
                    transitions = trainer.replay_transitions(batch)
                    if transitions.shape[0]:
                        trainer.parts.replay_buffer.extend(transitions)
                    trainer._observe_batch(batch)
                    batches.append(batch)
                target = updates_due(self.frames, train.init_random_frames, train.updates_per_frame)
                while self.updates < target and all(len(t.parts.replay_buffer) for t in self.trainers):
                    self._update()
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
            samples.append(sample_transitions(trainer.parts.replay_buffer))

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
        )
        for k, trainer in enumerate(self.trainers):
            if is_prioritized(trainer.parts.replay_buffer):
                update_priorities(trainer.parts.replay_buffer, samples[k][1], td_error_squared[k])
            trainer.updates += 1
            trainer.window.add_update(loss[k], grad_norm[k], td_error_squared[k].sqrt().mean())
