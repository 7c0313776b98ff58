"""The DQN training loop: collect, store, update, log, evaluate, checkpoint — and its exact state.

Schedules (ε, learning rate, updates owed) are functions of absolute frame counts, and everything that
evolves is saved (networks, optimizer, replay buffer, counters, every RNG, the envs' in-flight episodes),
so a run stopped at frame N and resumed ends bitwise identical to a run that never stopped.
"""

from __future__ import annotations

import datetime as dt
import math
import random
import time
from collections import deque
from typing import Any, Callable, Optional

import numpy as np
import torch

from reservoir_rl.agent.dqn import TRANSITION_KEYS
from reservoir_rl.agent.schedules import linear_schedule, updates_due
from reservoir_rl.config import config_to_dict
from reservoir_rl.env.metrics import EpisodeAccumulator
from reservoir_rl.monitor.logger import ReservoirLogger
from reservoir_rl.service import checkpoint as ckpt
from reservoir_rl.service.build import TrainingParts
from reservoir_rl.service.evaluation import EvaluationResult, evaluate_policy
from reservoir_rl.service.figures import evaluation_figures
from reservoir_rl.service.runs import RunDir, package_versions

EPISODE_GROUP = ("return", "length", "success")
RESERVOIR_GROUP = (
    "storage_mean_hm3",
    "storage_min_hm3",
    "storage_max_hm3",
    "energy_gwh",
    "spill_hm3",
    "flood_zone_days",
    "env_flow_deficit_days",
    "supply_deficit_hm3",
    "failures",
)


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
        self.episodes = 0
        self.best_eval_return = -math.inf
        self.last_eval: Optional[dict[str, float]] = None
        self.accumulator = EpisodeAccumulator(parts.env.n_envs, parts.env.config, parts.device)
        self.recent_rows: deque[dict[str, float]] = deque(maxlen=8)
        self.stop_requested: Optional[str] = None
        self._window = self._fresh_window()
        self._display: dict[str, float] = {}
        self._params = [p for p in parts.agent.loss.parameters() if p.requires_grad]

    # ------------------------------------------------------------------ schedules
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
        """Train until ``total_frames`` (or a stop request); returns why it stopped ("done" or a signal name)."""
        parts = self.parts
        agent = parts.agent
        agent.set_epsilon(self.epsilon_at(self.frames))
        agent.set_learning_rate(self.lr_at(self.frames))
        self.view.start(total_frames, self.frames)
        self._clock = time.perf_counter()
        self._frames_at_clock = self.frames
        if self.frames >= total_frames:
            return "done"
        for batch in parts.collector:
            before = self.frames
            self.frames += batch.numel()
            parts.replay_buffer.extend(batch.select(*TRANSITION_KEYS).reshape(-1))
            self._observe_batch(batch)
            target = updates_due(self.frames, self.config.train.init_random_frames, self.config.train.updates_per_frame)
            while self.updates < target:
                self._update()
            agent.set_epsilon(self.epsilon_at(self.frames))
            agent.set_learning_rate(self.lr_at(self.frames))
            self._periodic(before, self.frames, batch)
            if self.frames >= total_frames or self.stop_requested:
                break
        if self.last_eval is None or self.last_eval.get("frames") != self.frames:
            self._evaluate(figures=True)
        self.save_checkpoint()
        self.logger.flush()
        return self.stop_requested or "done"

    def _update(self) -> None:
        parts = self.parts
        agent = parts.agent
        sample = parts.replay_buffer.sample().to(parts.device)
        loss = agent.loss(sample)["loss"]
        agent.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        grad_norm = torch.nn.utils.clip_grad_norm_(self._params, self.config.train.grad_clip_norm)
        agent.optimizer.step()
        agent.target_updater.step()
        if self.config.train.prioritized_replay:
            parts.replay_buffer.update_tensordict_priority(sample)
        self.updates += 1
        window = self._window
        window["loss"] += loss.detach()
        window["grad_norm"] += grad_norm.detach()
        window["td_error"] += sample.get("td_error").detach().abs().mean()
        window["n_updates"] += 1

    def _observe_batch(self, batch) -> None:
        for finished in self.accumulator.update_batch(batch):
            self._window["episodes"].append(finished)
            self.episodes += int(finished["return"].numel())
        q_values = batch.get("action_value")
        window = self._window
        window["q_sum"] += q_values.mean() * q_values.shape[0] * q_values.shape[1]
        window["q_count"] += q_values.shape[0] * q_values.shape[1]
        window["q_max"] = torch.maximum(window["q_max"], q_values.max())
        window["q_min"] = torch.minimum(window["q_min"], q_values.min())
        window["last_batch"] = batch

    @staticmethod
    def _fresh_window() -> dict[str, Any]:
        zero = torch.zeros(())
        return {
            "loss": zero.clone(), "grad_norm": zero.clone(), "td_error": zero.clone(), "n_updates": 0,
            "q_sum": zero.clone(), "q_count": 0, "q_max": torch.tensor(-math.inf), "q_min": torch.tensor(math.inf),
            "episodes": [], "last_batch": None,
        }

    # ------------------------------------------------------------------ periodic work
    def _periodic(self, before: int, after: int, batch) -> None:
        logging = self.config.logging
        train = self.config.train
        if crossed(before, after, logging.log_every_frames):
            self._log_window(after)
        if crossed(before, after, logging.histogram_every_frames):
            self.logger.histogram("agent/q_values", batch.get("action_value"), after)
            self.logger.histogram(
                "agent/actions", batch.get("action"), after, bins=np.arange(self.parts.env.n_actions + 1) - 0.5
            )
        if crossed(before, after, train.eval_every_frames):
            self._evaluate(figures=crossed(before, after, logging.figure_every_frames))
        if crossed(before, after, train.checkpoint_every_frames):
            self.save_checkpoint()
        self.view.update(after, self._display_stats(after))

    def _display_stats(self, frames: int) -> dict[str, float]:
        elapsed = time.perf_counter() - self._clock
        stats = dict(self._display)
        stats["fps"] = (frames - self._frames_at_clock) / elapsed if elapsed > 0 else math.nan
        stats["epsilon"] = self.epsilon_at(frames)
        stats["best_eval_return"] = self.best_eval_return if math.isfinite(self.best_eval_return) else math.nan
        return stats

    def _log_window(self, frames: int) -> None:
        window = self._window
        elapsed = time.perf_counter() - self._clock
        fps = (frames - self._frames_at_clock) / elapsed if elapsed > 0 else math.nan
        train_values = {
            "epsilon": self.epsilon_at(frames),
            "learning_rate": self.lr_at(frames),
            "buffer_size": len(self.parts.replay_buffer),
            "frames_per_second": fps,
            "updates": self.updates,
        }
        if window["n_updates"]:
            n = window["n_updates"]
            train_values.update(loss=float(window["loss"]) / n, grad_norm=float(window["grad_norm"]) / n)
            self.logger.scalars("agent", {"td_error": float(window["td_error"]) / n}, frames)
            self._display["loss"] = train_values["loss"]
        self.logger.scalars("train", train_values, frames)
        if window["q_count"]:
            self.logger.scalars(
                "agent",
                {"q_mean": float(window["q_sum"]) / window["q_count"], "q_max": float(window["q_max"]), "q_min": float(window["q_min"])},
                frames,
            )
        if window["episodes"]:
            episodes = {k: torch.cat([e[k] for e in window["episodes"]]) for k in window["episodes"][0]}
            count = int(episodes["return"].numel())
            returns = episodes["return"]
            self.logger.scalars(
                "episode",
                {
                    "return_mean": float(returns.mean()), "return_min": float(returns.min()),
                    "return_max": float(returns.max()), "length": float(episodes["length"].mean()),
                    "success_rate": float(episodes["success"].mean()), "count": self.episodes,
                },
                frames,
            )
            self.logger.scalars("reservoir", {k: float(episodes[k].mean()) for k in RESERVOIR_GROUP}, frames)
            rows = [
                {"return": float(returns[i]), "energy_gwh": float(episodes["energy_gwh"][i]),
                 "spill_hm3": float(episodes["spill_hm3"][i]),
                 "violations": float(episodes["failures"][i] + episodes["env_flow_deficit_days"][i]),
                 "length": float(episodes["length"][i])}
                for i in range(max(0, count - 8), count)
            ]
            self.recent_rows.extend(rows)
            self.view.add_episodes(rows)
            self._display["episode_return"] = float(returns.mean())
        self._window = self._fresh_window()

    def _evaluate(self, figures: bool) -> EvaluationResult:
        parts = self.parts
        result = evaluate_policy(parts.eval_env, parts.agent.actor, parts.eval_seed)
        summary = result.summary()
        summary["frames"] = self.frames
        self.last_eval = summary
        values = {k: summary[k] for k in ("return", "return_min", "return_max", "success", *RESERVOIR_GROUP)}
        self.logger.scalars("eval", values, self.frames)
        self._display["eval_return"] = summary["return"]
        if figures:
            for tag, figure in evaluation_figures(result, parts.eval_env).items():
                self.logger.figure(f"figures/{tag}", figure, self.frames)
        if summary["return"] > self.best_eval_return:
            self.best_eval_return = summary["return"]
            ckpt.atomic_save(self.state_payload(), self.run_dir.best_checkpoint)
        return result

    # ------------------------------------------------------------------ checkpoints
    def save_checkpoint(self) -> None:
        folder = self.run_dir.checkpoints
        path = folder / ckpt.frame_checkpoint_name(self.frames)
        ckpt.atomic_save(self.state_payload(), path)
        ckpt.link_or_copy(path, self.run_dir.last_checkpoint)
        ckpt.rotate(folder, self.config.train.keep_checkpoints)
        self.logger.flush()

    def state_payload(self) -> dict[str, Any]:
        parts = self.parts
        carrier = parts.collector._carrier  # the collector's in-flight root tensordict (next obs of each env)
        observation_keys = list(parts.env.observation_spec.keys(True, True)) + ["done", "terminated", "truncated"]
        return {
            "format": ckpt.FORMAT_NAME,
            "format_version": ckpt.FORMAT_VERSION,
            "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            "run_name": self.run_dir.name,
            "package_versions": package_versions(),
            "config": config_to_dict(self.config),
            "counters": {"frames": self.frames, "updates": self.updates, "episodes": self.episodes},
            "epsilon": self.epsilon_at(self.frames),
            "best_eval_return": self.best_eval_return if math.isfinite(self.best_eval_return) else None,
            "last_eval": self.last_eval,
            "q_network": {k: v.detach().cpu().clone() for k, v in parts.agent.q_network.state_dict().items()},
            "loss_module": {k: v.detach().cpu().clone() for k, v in parts.agent.loss.state_dict().items()},
            "optimizer": parts.agent.optimizer.state_dict(),
            "target_updater_counter": getattr(parts.agent.target_updater, "counter", 0),
            "replay_buffer": parts.replay_buffer.state_dict(),
            "env_state": parts.env.get_state(),
            "carrier": {"/".join(k) if isinstance(k, tuple) else k: carrier.get(k).cpu().clone() for k in observation_keys},
            "episode_accumulator": self.accumulator.state_dict(),
            "rng": rng_state(),
        }

    def load_state(self, payload: dict[str, Any]) -> None:
        """Restore everything `state_payload` saved (the parts must be built from the same config)."""
        parts = self.parts
        counters = payload["counters"]
        self.frames, self.updates, self.episodes = counters["frames"], counters["updates"], counters["episodes"]
        best = payload.get("best_eval_return")
        self.best_eval_return = -math.inf if best is None else float(best)
        self.last_eval = payload.get("last_eval")
        parts.agent.loss.load_state_dict(payload["loss_module"])
        parts.agent.optimizer.load_state_dict(payload["optimizer"])
        if hasattr(parts.agent.target_updater, "counter"):
            parts.agent.target_updater.counter = int(payload["target_updater_counter"])
        parts.replay_buffer.load_state_dict(payload["replay_buffer"])
        parts.env.set_state(payload["env_state"])
        carrier = parts.collector._carrier
        for key, value in payload["carrier"].items():
            carrier.set(tuple(key.split("/")) if "/" in key else key, value.to(parts.device))
        self.accumulator.load_state_dict(payload["episode_accumulator"])
        set_rng_state(payload["rng"])


def rng_state() -> dict[str, Any]:
    """Every global random stream as plain data (tensors and lists): torch, numpy, python."""
    np_state = np.random.get_state()
    py_state = random.getstate()
    return {
        "torch": torch.get_rng_state(),
        "numpy": {"keys": torch.from_numpy(np_state[1].astype(np.int64)), "pos": int(np_state[2]),
                  "has_gauss": int(np_state[3]), "cached_gaussian": float(np_state[4])},
        "python": {"version": py_state[0], "state": list(py_state[1]), "gauss": py_state[2]},
    }


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    np_state = state["numpy"]
    np.random.set_state(
        ("MT19937", np_state["keys"].numpy().astype(np.uint32), np_state["pos"], np_state["has_gauss"], np_state["cached_gaussian"])
    )
    py = state["python"]
    random.setstate((py["version"], tuple(py["state"]), py["gauss"]))
