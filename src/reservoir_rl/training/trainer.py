"""The DQN training loop: collect, store, update, log, evaluate, checkpoint — and its exact state.

Schedules (ε, learning rate, updates owed) are functions of absolute frame counts, and everything that
evolves is saved (networks, optimizer, replay buffer, n-step window, counters, every RNG, the envs'
in-flight episodes, the collector's carried state and the statistics not yet logged), so a run stopped
at frame N and resumed ends bitwise identical to a run that never stopped.

The step of every TensorBoard entry is the number of frames collected so far. Frames advance by whole
collector batches (``train.frames_per_batch``), so a run ends at the first batch boundary at or past
its ``total_frames``.
"""

from __future__ import annotations

import datetime as dt
import math
import time
from pathlib import Path
from typing import Any, Callable, Optional

import numpy as np
import torch

from reservoir_rl.agent.dqn import SAMPLE_KEYS, TRANSITION_KEYS
from reservoir_rl.agent.fused import DemonstrationMargin
from reservoir_rl.agent.nstep import NStepTransitions
from reservoir_rl.agent.replay import (
    is_prioritized,
    load_replay_state,
    replay_state,
    sample_transitions,
    update_priorities,
)
from reservoir_rl.agent.schedules import linear_schedule, updates_due
from reservoir_rl.config import config_to_dict
from reservoir_rl.env.metrics import EpisodeAccumulator
from reservoir_rl.env.safety import GUARD_OVERRIDE_KEY
from reservoir_rl.errors import CheckpointError, UserError
from reservoir_rl.monitor.logger import ReservoirLogger
from reservoir_rl.runs import checkpoint as ckpt
from reservoir_rl.runs.baseline_cache import cached_levels
from reservoir_rl.training.build import TrainingParts, cpu_tree
from reservoir_rl.evaluation.rollout import EvaluationResult, evaluate_policy
from reservoir_rl.evaluation.figures import evaluation_figures
from reservoir_rl.evaluation.validation import baseline_returns
from reservoir_rl.runs.folders import RunDir, package_versions
from reservoir_rl.training.demonstrations import collect_demonstrations
from reservoir_rl.training.shaping import make_shaping
from reservoir_rl.training.statistics import RESERVOIR_GROUP, TrainingWindow

# what a periodic checkpoint must hold to be resumed (see `Trainer.state_payload`)
RESUME_KEYS = (
    "counters", "episode_count", "loss_module", "optimizer", "target_updater_counter", "replay_buffer", "nstep",
    "env_state", "carrier", "episode_accumulator", "window", "rng",
)




# `Trainer.run`'s answer when an `on_evaluation` hook asked the run to stop (a tuning trial pruned)
PRUNED = "pruned"

# called after each validation evaluation with (frames, validation return); True asks the run to stop
EvaluationHook = Callable[[int, float], bool]


class TrainingDiverged(UserError):
    """The loss or the Q-network's weights became NaN or infinite: training stops without saving them."""


def crossed(before: int, after: int, every: int) -> bool:
    """True when a multiple of ``every`` lies in (before, after]."""
    return after // every > before // every


class Trainer:
    """Owns a run's training state; `run` trains up to ``total_frames``."""

    def __init__(self, parts: TrainingParts, run: RunDir, logger: ReservoirLogger, view: Any) -> None:
        self.parts = parts
        self.config = parts.config
        self.run_dir = run
        self.logger = logger
        self.view = view
        self.frames = 0
        self.updates = 0
        self._episode_count = torch.zeros((), dtype=torch.int64, device=parts.device)
        self.best_eval_return = -math.inf
        self.last_eval: Optional[dict[str, float]] = None
        self._baseline_levels: Optional[dict[str, float]] = None
        self._latest_eval: Optional[tuple[int, EvaluationResult]] = None  # (frame, result) of the last evaluation
        self.figures_frame: Optional[int] = None  # the frame of the last TensorBoard figures of this process
        self.stop_requested: Optional[str] = None
        # after each evaluation: (frames, mean validation return) -> True to stop the run (`PRUNED`)
        self.on_evaluation: Optional[EvaluationHook] = None
        # the runs folder whose cache keeps the baselines' levels for later runs (`runs.baseline_cache`); None: not kept
        self.baseline_cache_dir: Optional[Path] = None
        # (frame, result) of a validation evaluation computed elsewhere for this frame (a vectorized run
        # evaluates all its seeds in one rollout); `_evaluate` at that frame uses it instead of rolling out
        self.next_evaluation: Optional[tuple[int, EvaluationResult]] = None
        self.accumulator = EpisodeAccumulator(parts.env.n_envs, parts.env.config, parts.device)
        self.nstep = NStepTransitions(self.config.agent.n_step, self.config.agent.gamma, TRANSITION_KEYS)
        self.shaping = make_shaping(parts.env, self.config)  # None unless train.sdp_potential_weight > 0
        # the teacher's transitions (DQfD, `reservoir_rl.training.demonstrations`); None unless a teacher is set
        self.demonstrations = collect_demonstrations(self.config, parts.inflow, parts.device, self.shaping)
        self.pretrain_updates = 0  # updates on demonstrations alone done so far (before the first frame)
        self.window = TrainingWindow(parts.device)
        self._display: dict[str, float] = {}
        self._log_clock = (time.perf_counter(), 0)

    @property
    def episodes(self) -> int:
        """Episodes finished since the start of the run (syncs with the device)."""
        return int(self._episode_count)

    # ------------------------------------------------------------------ schedules (absolute frames)
    def epsilon_at(self, frames: int) -> float:
        train = self.config.train
        if frames < train.init_random_frames:
            return 1.0
        return linear_schedule(frames, train.eps_start, train.eps_end, train.eps_decay_frames)

    def lr_at(self, frames: int) -> float:
        train = self.config.train
        if train.lr_end is None:
            return train.lr
        return linear_schedule(frames, train.lr, train.lr_end, train.lr_decay_frames)

    # ------------------------------------------------------------------ the loop
    def run(self, total_frames: int) -> str:
        """Train until ``total_frames`` (or a stop request); returns why it stopped ("done", a signal
        name, or `PRUNED` when ``on_evaluation`` asked to stop after an evaluation). A checkpoint is saved on the way out. A finished run is also evaluated on the validation
        years at its last frame and draws its figures there; that evaluation touches no training state
        (the eval env has its own generator and seed), so a run finished at N and extended later still
        trains exactly like one that never stopped (only its ``eval/`` curve has the extra point at N, which
        may also become ``best.pt``)."""
        parts = self.parts
        agent = parts.agent
        train = self.config.train
        agent.set_epsilon(self.epsilon_at(self.frames))
        agent.set_learning_rate(self.lr_at(self.frames))
        self.view.start(total_frames, self.frames)
        self._log_clock = (time.perf_counter(), self.frames)
        self.pretrain()
        if self.frames < total_frames and not self.stop_requested:
            for batch in parts.collector:
                before = self.frames
                self.frames += batch.numel()
                transitions = self.replay_transitions(batch)
                if transitions.shape[0]:  # (TensorDict.numel() of an empty batch is 1)
                    parts.replay_buffer.extend(transitions)
                self._observe_batch(batch)
                target = updates_due(self.frames, train.init_random_frames, train.updates_per_frame)
                while self.updates < target and len(parts.replay_buffer):  # (n-step: the buffer may still be empty)
                    self._update()
                agent.set_epsilon(self.epsilon_at(self.frames))
                agent.set_learning_rate(self.lr_at(self.frames))
                self._periodic(before, self.frames, batch)
                if self.frames >= total_frames or self.stop_requested:
                    break
        stopped_by = self.stop_requested or "done"
        self.check_finite()
        if stopped_by == "done" and (self.last_eval is None or self.last_eval.get("frames") != self.frames):
            self._evaluate()
            self.view.update(self.frames, self._display_stats(self.frames))  # show the final evaluation
        if stopped_by == "done" and self.figures_frame != self.frames:
            self._draw_figures()
        self.save_checkpoint()
        parts.close()  # process / ray: stop the workers (a later run() starts new ones that continue the episodes)
        return stopped_by

    def replay_transitions(self, batch):
        """What a collected batch adds to the replay buffer: its n-step transitions, their rewards shaped when
        ``train.sdp_potential_weight`` is set (`reservoir_rl.training.shaping`; ``batch`` itself, which the
        episode statistics read, keeps the env's rewards)."""
        if self.shaping is not None:
            batch = self.shaping(batch)
        return self.nstep(batch)

    def pretrain(self) -> None:
        """DQfD's pre-training: ``train.demonstrations.pretrain_updates`` updates on demonstrations alone (each
        a whole batch of the teacher's transitions with the large-margin loss), before the first frame; a run
        resumed after them does none. Not counted in ``updates`` (the updates owed per frame)."""
        demonstrations = self.demonstrations
        if demonstrations is None or self.frames:
            return
        train = self.config.train
        margin = DemonstrationMargin(train.batch_size, demonstrations.margin.margin, demonstrations.margin.weight)
        while self.pretrain_updates < train.demonstrations.pretrain_updates and not self.stop_requested:
            sample = demonstrations.sample(train.batch_size)
            self.parts.agent.gradient_step(
                sample["observation"], sample["action"], sample[("next", "observation")], sample[("next", "reward")],
                sample[("next", "terminated")], max_grad_norm=train.grad_clip_norm,
                steps_to_next_obs=sample.get("steps_to_next_obs"), demonstration=margin,
            )
            self.pretrain_updates += 1

    def replay_sample(self) -> tuple[dict, torch.Tensor, Optional[torch.Tensor]]:
        """One update's batch: a replay sample (`sample_transitions`: tensors, storage indices, importance
        weights or None) with the demonstration rows appended when the run has a teacher (the last
        ``train.demonstrations.batch_size`` rows; the indices stay the replay rows')."""
        sample, index, weights = sample_transitions(self.parts.replay_buffer, SAMPLE_KEYS)
        if self.demonstrations is not None:
            sample, weights = self.demonstrations.extend(sample, weights)
        return sample, index, weights

    @property
    def demonstration_margin(self) -> Optional[DemonstrationMargin]:
        return None if self.demonstrations is None else self.demonstrations.margin

    def _update(self) -> None:
        """One gradient step on a replay batch (`DQNAgent.gradient_step`: the fused plain-tensor DQN loss,
        which computes TorchRL's `DQNLoss` — tested —, clipping, Adam, target update), then priorities."""
        parts = self.parts
        agent = parts.agent
        sample, index, weights = self.replay_sample()
        loss, grad_norm, td_error_squared = agent.gradient_step(
            sample["observation"], sample["action"], sample[("next", "observation")], sample[("next", "reward")],
            sample[("next", "terminated")], max_grad_norm=self.config.train.grad_clip_norm, weights=weights,
            steps_to_next_obs=sample.get("steps_to_next_obs"), demonstration=self.demonstration_margin,
        )
        td_error_squared = td_error_squared[:index.shape[0]]  # the replay rows (demonstrations come last)
        if is_prioritized(parts.replay_buffer):
            update_priorities(parts.replay_buffer, index, td_error_squared)
        self.updates += 1
        self.window.add_update(loss, grad_norm, td_error_squared.detach().sqrt().mean())

    def _observe_batch(self, batch) -> None:
        finished = self.accumulator.update_batch(batch)
        self._episode_count += finished.count()
        self.window.add_batch(batch.get("action_value"), finished, batch.get(GUARD_OVERRIDE_KEY, None))

    # ------------------------------------------------------------------ periodic work
    def _periodic(self, before: int, after: int, batch) -> None:
        logging = self.config.logging
        train = self.config.train
        periods = (logging.log_every_frames, logging.histogram_every_frames, train.eval_every_frames,
                   train.checkpoint_every_frames)
        if any(crossed(before, after, every) for every in periods):  # nothing non-finite is logged or saved
            self.check_finite()
        if crossed(before, after, logging.log_every_frames):
            self._log_window(after)
        if crossed(before, after, logging.histogram_every_frames):
            self.logger.histogram("agent/q_values", batch.get("action_value"), after)
            self.logger.histogram(
                "agent/actions", batch.get("action"), after, bins=np.arange(self.parts.env.n_actions + 1) - 0.5
            )
        if crossed(before, after, train.eval_every_frames):
            self._evaluate()
        if crossed(before, after, logging.figure_every_frames):
            self._draw_figures()
        if crossed(before, after, train.checkpoint_every_frames):
            self.save_checkpoint()
        self.view.update(after, self._display_stats(after))

    def _display_stats(self, frames: int) -> dict[str, float]:
        stats = dict(self._display)
        stats["epsilon"] = self.epsilon_at(frames)
        stats["lr"] = self.lr_at(frames)
        stats["best_eval_return"] = self.best_eval_return if math.isfinite(self.best_eval_return) else math.nan
        return stats

    def _log_window(self, frames: int) -> None:
        now = time.perf_counter()
        clock, clock_frames = self._log_clock
        fps = (frames - clock_frames) / (now - clock) if now > clock else math.nan
        self._log_clock = (now, frames)
        groups = self.window.summary()
        loss = groups.get("train", {}).get("loss")
        if loss is not None and not math.isfinite(loss):
            self._diverged(f"loss ({loss})")
        train_values = {
            "epsilon": self.epsilon_at(frames),
            "learning_rate": self.lr_at(frames),
            "buffer_size": len(self.parts.replay_buffer),
            "frames_per_second": fps,
            "updates": self.updates,
            **groups.pop("train", {}),
        }
        self.logger.scalars("train", train_values, frames)
        for group, values in groups.items():
            self.logger.scalars(group, values, frames)
        self._display["fps"] = fps
        if "loss" in train_values:
            self._display["loss"] = train_values["loss"]
        if "guard_override_fraction" in groups.get("agent", {}):
            self._display["guard_override_fraction"] = groups["agent"]["guard_override_fraction"]
        episodes = self.window.finished_episodes()
        if episodes is not None:
            total = self.episodes  # episodes finished since the run began, this window's included
            self.view.add_episodes(episode_rows(episodes, first_index=total - int(episodes["return"].numel()) + 1))
            self._display["episode_return"] = float(episodes["return"].mean())
        self.window.reset()

    def _draw_figures(self) -> None:
        """TensorBoard ``figures/``: trajectory, release levels and reward breakdown of the greedy policy on the
        validation episodes at this frame (every ``logging.figure_every_frames`` and at the end of a finished
        run). It uses this frame's evaluation when there is one; otherwise it rolls the greedy policy out on
        the same episodes for the figures alone (nothing logged to ``eval/``, ``best.pt`` untouched; the eval
        env has its own generator, so no training state changes)."""
        parts = self.parts
        if self._latest_eval is not None and self._latest_eval[0] == self.frames:
            result = self._latest_eval[1]
        else:
            result = evaluate_policy(parts.eval_env, parts.agent.actor, parts.eval_seed)
        for tag, figure in evaluation_figures(result, parts.eval_env, episodes="validation").items():
            self.logger.figure(f"figures/{tag}", figure, self.frames)
        self.figures_frame = self.frames

    def _evaluate(self) -> EvaluationResult:
        """Greedy policy on the validation episodes (``make_env(config, "validation")``: training years unless
        ``inflow.validation_water_years`` is set; the same traces every time); ``best.pt`` follows its return."""
        parts = self.parts
        if self.next_evaluation is not None and self.next_evaluation[0] == self.frames:
            result = self.next_evaluation[1]
        else:
            result = evaluate_policy(parts.eval_env, parts.greedy_policy, parts.eval_seed)
        self.next_evaluation = None
        summary = result.summary()
        summary["frames"] = self.frames
        self.last_eval = summary
        values = {k: summary[k] for k in ("return", "return_min", "return_max", "success", *RESERVOIR_GROUP)}
        self.logger.scalars("eval", values, self.frames)
        if parts.config.logging.baseline_levels:
            self.logger.scalars("baselines", self.baseline_levels(), self.frames)
        self._display["eval_return"] = summary["return"]
        self._latest_eval = (self.frames, result)
        if summary["return"] > self.best_eval_return:
            self.best_eval_return = summary["return"]
            ckpt.atomic_save(self.state_payload(kind="best"), self.run_dir.best_checkpoint)
        if self.on_evaluation is not None and self.on_evaluation(self.frames, summary["return"]):
            self.stop_requested = self.stop_requested or PRUNED  # stops after this batch, with a checkpoint
        return result

    def baseline_levels(self) -> dict[str, float]:
        """Mean return of every catalog baseline that optimises the raw return on the validation episodes the greedy agent is evaluated on
        (TensorBoard ``baselines/<name>``, beside ``eval/return``); computed once per process, or read from
        the cache of ``baseline_cache_dir`` when a run of the same reservoir, record, episodes and code
        computed them before (`reservoir_rl.runs.baseline_cache`). The baselines are deterministic and reset
        the eval env with its own seed, so no training state changes."""
        if self._baseline_levels is None:
            parts = self.parts
            self._baseline_levels = cached_levels(
                self.baseline_cache_dir, parts.config, parts.inflow,
                lambda: baseline_returns(parts.eval_env, parts.config, parts.eval_seed),
            )
        return self._baseline_levels

    # ------------------------------------------------------------------ divergence
    def check_finite(self) -> None:
        """`TrainingDiverged` if a weight of the Q-network is NaN or infinite (an exploding loss, e.g. a
        learning rate far too high): the run stops before anything non-finite is logged or saved."""
        for name, tensor in self.parts.agent.q_network.state_dict().items():
            if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
                self._diverged(f"weights in q_network.{name}")

    def _diverged(self, what: str) -> None:
        last = self.run_dir.last_checkpoint
        kept = f"the last finite checkpoint, {last}, is kept" if last.exists() else "no checkpoint was saved"
        raise TrainingDiverged(
            f"{self.run_dir.path}: training diverged at frame {self.frames:,}: non-finite {what}; stopped without "
            f"saving it ({kept}); lower train.lr or train.grad_clip_norm and train again"
        )

    # ------------------------------------------------------------------ checkpoints
    def save_checkpoint(self) -> None:
        """Periodic checkpoint ``frame-N.pt`` (atomic), ``last.pt`` pointing at it, keep the newest K.

        TensorBoard events are flushed first: everything logged up to this frame is on disk before
        the checkpoint that a resume would start from."""
        self.logger.flush()
        folder = self.run_dir.checkpoints
        path = folder / ckpt.frame_checkpoint_name(self.frames)
        ckpt.atomic_save(self.state_payload(), path)
        ckpt.link_or_copy(path, self.run_dir.last_checkpoint)
        ckpt.rotate(folder, self.config.train.keep_checkpoints)

    def state_payload(self, kind: str = "periodic") -> dict[str, Any]:
        """Everything needed to resume (``kind="periodic"``) or, for ``best.pt``, to use the policy
        (``kind="best"``: networks, config and metadata; no optimizer, replay buffer or RNG)."""
        parts = self.parts
        payload: dict[str, Any] = {
            "format": ckpt.FORMAT_NAME,
            "format_version": ckpt.FORMAT_VERSION,
            "kind": kind,
            "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            "run_name": self.run_dir.name,
            "package_versions": package_versions(),
            "config": config_to_dict(self.config),
            ckpt.REFERENCE_INFLOW_KEY: float(parts.env.reference_inflow_cms),
            "counters": {"frames": self.frames, "updates": self.updates, "episodes": self.episodes,
                         "pretrain_updates": self.pretrain_updates},
            "epsilon": self.epsilon_at(self.frames),
            "learning_rate": self.lr_at(self.frames),
            "best_eval_return": self.best_eval_return if math.isfinite(self.best_eval_return) else None,
            "last_eval": self.last_eval,
            "q_network": {k: v.detach().cpu().clone() for k, v in parts.agent.q_network.state_dict().items()},
        }
        if kind == "best":
            return payload
        payload.update(
            {
                "loss_module": {k: v.detach().cpu().clone() for k, v in parts.agent.loss.state_dict().items()},
                "optimizer": cpu_tree(parts.agent.optimizer.state_dict()),  # (Adam's moments live on the device)
                "target_updater_counter": int(getattr(parts.agent.target_updater, "counter", 0)),
                "replay_buffer": replay_state(parts.replay_buffer),
                "nstep": self.nstep.state_dict(),
                **parts.collection_state(),  # "env_state", "carrier": the in-flight episodes
                "episode_accumulator": self.accumulator.state_dict(),
                "episode_count": self._episode_count.cpu().clone(),
                "window": self.window.state_dict(),
                "logger_step": self.frames,
                "rng": ckpt.rng_state(),
            }
        )
        return payload

    def load_state(self, payload: dict[str, Any]) -> None:
        """Restore everything `state_payload` saved (the parts must be built from the same config)."""
        parts = self.parts
        device = parts.device
        if payload.get("kind", "periodic") != "periodic":
            raise CheckpointError(f"a {payload.get('kind')!r} checkpoint holds no training state to resume")
        missing = [key for key in RESUME_KEYS if key not in payload]
        if missing:
            raise CheckpointError(
                f"the checkpoint of {payload.get('run_name', 'this run')} at frame "
                f"{payload.get('counters', {}).get('frames', '?')} lacks {', '.join(missing)}: it was written by "
                "another version of reservoir-rl and cannot be resumed exactly"
            )
        counters = payload["counters"]
        self.frames, self.updates = int(counters["frames"]), int(counters["updates"])
        self.pretrain_updates = int(counters.get("pretrain_updates", 0))
        self._episode_count = payload["episode_count"].to(device).clone()
        best = payload.get("best_eval_return")
        self.best_eval_return = -math.inf if best is None else float(best)
        self.last_eval = payload.get("last_eval")
        parts.agent.loss.load_state_dict(payload["loss_module"])
        parts.agent.optimizer.load_state_dict(payload["optimizer"])
        if hasattr(parts.agent.target_updater, "counter"):
            parts.agent.target_updater.counter = int(payload["target_updater_counter"])
        load_replay_state(parts.replay_buffer, payload["replay_buffer"])
        self.nstep.load_state_dict(payload["nstep"], device)
        parts.load_collection_state(payload)
        self.accumulator.load_state_dict(payload["episode_accumulator"])
        self.window.load_state_dict(payload["window"])
        ckpt.set_rng_state(payload["rng"])


def episode_rows(episodes: dict[str, torch.Tensor], first_index: int = 1) -> list[dict[str, float]]:
    """Finished episodes as rows for the live view: number, return, energy (GWh), spill (hm³), failure days (0
    or 1 when a failure ends the episode), env-flow deficit days and length (days); keys as in
    `reservoir_rl.catalog.LIVE_EPISODE_COLUMNS`."""
    keys = ("return", "energy_gwh", "spill_hm3", "failures", "env_flow_deficit_days", "length")
    picked = {name: episodes[name].tolist() for name in keys}
    return [
        {"index": float(first_index + i), **{name: picked[name][i] for name in keys}}
        for i in range(len(picked["return"]))
    ]
