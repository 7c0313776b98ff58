"""The public Python API (``import reservoir_rl``): load a trained agent and ask it for releases, build the
reservoir env, evaluate and train — the same use cases the command line runs, returning what it renders.

    Policy.load(checkpoint)    a checkpoint's greedy agent: act / release_cms / q_values, a TorchRL policy
    make_env(config, split)    the TorchRL env of a config on its train / validation / held-out water years
    evaluate(checkpoint, …)    the paired comparison with the baselines (`EvaluationReport`, as `evaluate`)
    train(config, …)           a new run (`TrainedRun`: its folder, best checkpoint and numbers)

Bad input (a missing or damaged checkpoint, an invalid config, an observation of the wrong size) raises a
`UserError` subclass whose message is one line naming what is wrong. See docs/api.md.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Optional, Sequence

import numpy as np
import torch
from tensordict import TensorDictBase
from tensordict.nn import TensorDictModuleBase

from reservoir_rl.commands import evaluate as evaluate_command
from reservoir_rl.commands import train as train_command
from reservoir_rl.config import Config, apply_overrides, check_seed, check_total_frames, config_from_dict, load_config
from reservoir_rl.env.reservoir_env import DiscreteReservoirEnv
from reservoir_rl.baselines.features import build_env as _make_env
from reservoir_rl.env.safety import guarded as _guarded
from reservoir_rl.errors import CheckpointError, ConfigError, InflowDataError, UserError
from reservoir_rl.evaluation.report import EvaluationReport
from reservoir_rl.monitor.live import make_view
from reservoir_rl.runs.policy import CheckpointPolicy, load_policy

__all__ = ["CheckpointError", "ConfigError", "EvaluationReport", "InflowDataError", "Policy", "TrainedRun",
           "UserError", "evaluate", "make_env", "train"]


class Policy(TensorDictModuleBase):
    """The greedy agent of a checkpoint (`Policy.load`).

    Attributes:
        observation_layout: the name of each observation entry, in order (length ``obs_dim``; docs/reservoir.md).
        release_levels_cms: float64 (n_release_levels,): the target release of each level, m³/s.
        obs_dim, n_release_levels: sizes.
        config: the checkpoint's whole `Config` (``make_env(policy.config, "heldout")`` builds its reservoir).
        checkpoint_path: the file loaded; params_sha256: the fingerprint of its Q-network (as inspect-checkpoint
            and an exported file show it).
        reference_inflow_cms: the inflow (m³/s) the observation's forecast features are divided by, as the
            checkpoint was trained (the training years' mean; the whole record's for older checkpoints).

    As a TorchRL policy (a `TensorDictModuleBase`): ``policy(td)`` reads ``observation`` (float32
    (..., obs_dim)) and writes ``action`` (int64 (...), the release level index the env expects) and
    ``action_value`` (float32 (..., n_release_levels)). That is the agent's own choice; `guarded` puts it
    under the release guard as ``evaluate`` runs it.
    """

    in_keys = ["observation"]
    out_keys = ["action", "action_value"]

    def __init__(self, loaded: CheckpointPolicy) -> None:
        super().__init__()
        self.q_network = loaded.q_network
        self._loaded = loaded  # everything else is read from the loaded checkpoint
        self.observation_layout: tuple[str, ...] = tuple(loaded.observation_layout)

    config = property(lambda self: self._loaded.config, doc="The checkpoint's whole `Config`.")
    checkpoint_path = property(lambda self: self._loaded.path, doc="The checkpoint file loaded.")
    params_sha256 = property(lambda self: self._loaded.params_sha256, doc="The Q-network's fingerprint.")
    release_levels_cms = property(lambda self: self._loaded.release_levels_cms,
                                  doc="float64 (n_release_levels,): the target release of each level, m³/s.")
    frames = property(lambda self: self._loaded.frames, doc="Frames the checkpoint was trained for.")
    obs_dim = property(lambda self: self._loaded.obs_dim, doc="Length of an observation.")
    n_release_levels = property(lambda self: self._loaded.n_release_levels, doc="Number of release levels.")
    reference_inflow_cms = property(lambda self: self._loaded.reference_inflow_cms,
                                    doc="The inflow (m³/s) the observation's forecast features are divided by.")

    @classmethod
    def load(cls, checkpoint: str | Path, runs_dir: str | Path = "runs") -> "Policy":
        """Load a checkpoint file (``.pt``), or a run (folder, or name under ``runs_dir``: its
        ``checkpoints/best.pt``, ``last.pt`` before the first evaluation). Nothing in the file is executed;
        a file that is not a usable checkpoint raises `CheckpointError`."""
        return cls(load_policy(checkpoint, runs_dir))

    def _observation(self, observation: Any) -> torch.Tensor:
        tensor = torch.as_tensor(np.asarray(observation) if not isinstance(observation, torch.Tensor) else observation)
        if tensor.ndim == 0 or tensor.shape[-1] != self.obs_dim:
            raise UserError(f"observation of shape {tuple(tensor.shape)}: expected ({self.obs_dim},) or "
                            f"(batch, {self.obs_dim}) ({', '.join(self.observation_layout[:3])}, …)")
        return tensor.to(torch.float32)

    def q_values(self, observation: Any) -> Any:
        """Q-values float32 (n_release_levels,) for one observation (obs_dim,), (B, n_release_levels) for a
        batch (B, obs_dim) (any leading batch dimensions: (..., obs_dim) → (..., n_release_levels));
        numpy in, numpy out; torch in, torch out."""
        with torch.no_grad():
            values = self.q_network(self._observation(observation))
        return values if isinstance(observation, torch.Tensor) else values.numpy()

    def act(self, observation: Any) -> Any:
        """The greedy release level, int64: a scalar for one observation (obs_dim,), (B,) for a batch
        (B, obs_dim) ((...) for (..., obs_dim)); numpy in, numpy out; torch in, torch out. Ties go to the
        lowest level."""
        with torch.no_grad():
            action = self.q_network(self._observation(observation)).argmax(dim=-1)
        return action if isinstance(observation, torch.Tensor) else action.numpy()

    def release_cms(self, observation: Any) -> Any:
        """The target release of the chosen level, m³/s, float64, shaped as `act`'s result (the env releases
        less when the lake holds too little water, and the release guard may move it)."""
        action = self.act(observation)
        levels = self.release_levels_cms
        if isinstance(action, torch.Tensor):
            return levels[action]
        return levels.numpy()[action]

    def forward(self, tensordict: TensorDictBase) -> TensorDictBase:
        """Write ``action`` (int64, the batch shape) and ``action_value`` from ``observation``."""
        values = self.q_network(tensordict.get("observation").to(torch.float32))
        tensordict.set("action_value", values)
        tensordict.set("action", values.argmax(dim=-1))
        return tensordict

    def guarded(self, env: DiscreteReservoirEnv) -> TensorDictModuleBase:
        """This policy under ``env``'s release guard (``env.safety``), as `evaluate` runs the agent: the
        tensordict's ``action`` becomes the executed level and ``guard_override`` says where it changed.
        Returns the policy itself when the env's guard is off."""
        return _guarded(self, env)


def _config(config: Any, overrides: Sequence[str] = ()) -> Config:
    """A `Config` from a YAML path, a mapping of sections or a `Config`, with ``section.key=value`` overrides.

    A relative ``inflow.path`` of a mapping or a `Config` is relative to the working directory (as with
    ``--set``); the result holds it absolute, so a run's saved config finds the record from any folder."""
    overrides = list(overrides)
    if isinstance(config, (str, Path)):
        return load_config(config, overrides)
    if isinstance(config, Config):
        config = config.model_dump(mode="json")
    if not isinstance(config, Mapping):
        raise ConfigError(f"config of type {type(config).__name__}: give a YAML file path, a dict of sections or a Config")
    resolved = config_from_dict(apply_overrides(dict(config), overrides), source="config")
    if resolved.inflow.path:
        resolved.inflow.path = os.path.abspath(Path(resolved.inflow.path).expanduser())
    return resolved


def make_env(
    config: Any,
    split: str = "train",
    n_envs: int = 1,
    seed: Optional[int] = None,
    device: str | torch.device = "cpu",
    overrides: Sequence[str] = (),
) -> DiscreteReservoirEnv:
    """The reservoir env (a TorchRL `EnvBase`, batch size ``(n_envs,)``) of ``config`` — a YAML path, a
    dict of sections or a `Config` (``policy.config``) — on the water years of ``split``: ``train`` (the
    years training collects on), ``validation`` (the in-training evaluation's), ``heldout`` (never trained
    on) or ``all``. Its ``action`` is an int64 release level (n_envs,); its ``observation`` float32
    (n_envs, obs_dim); the root and ``next`` keys are listed in docs/reservoir.md. Episodes are the record's
    inflow as it is (the training's inflow scaling is not applied)."""
    resolved = _config(config, overrides)
    if seed is not None:
        check_seed(seed)
    if n_envs < 1:
        raise UserError(f"n_envs {n_envs}: must be at least 1")
    return _make_env(resolved, split, n_envs=n_envs, device=device, seed=seed)


def evaluate(
    checkpoint: str | Path,
    episodes: int = 50,
    years: str = "heldout",
    baselines: str | Sequence[str] = "all",
    seed: Optional[int] = None,
    out: Optional[str | Path] = None,
    csv: Optional[str | Path] = None,
    force: bool = False,
    runs_dir: str | Path = "runs",
    guard_baselines: bool = False,
    allow_changed_inflow: bool = False,
    strict: bool = False,
    trace: Optional[str | Path] = None,
    start_dates: Sequence[str] = (),
) -> EvaluationReport:
    """``reservoir-rl evaluate``: the greedy agent of ``checkpoint`` (every seed of a multi-seed run) and the
    ``baselines`` ("all", "none", or names such as "sop,rule,dp") on the same ``episodes`` episodes of
    ``years`` (heldout, validation, train or all). Returns the `EvaluationReport` the command renders:
    ``report.summary[policy][metric]`` (an `Estimate`: ``.value``, ``.ci_low``, ``.ci_high``),
    ``report.per_episode``, ``report.to_json()``, ``report.to_csv()``.

    As the command does, a run named by folder or name also gets ``evaluation.json`` in its folder (unless
    that holds a larger evaluation); ``out`` / ``csv`` write the JSON / CSV (existing files need ``force``);
    ``trace`` a folder for the day-by-day ``trace.csv`` of the episodes starting on ``start_dates``
    ("YYYY-MM-DD"; default: every episode up to 10, else the first), as ``evaluate --trace``.
    Plausibility warnings are kept in ``report.notes``."""
    warnings: list[str] = []
    report = evaluate_command.evaluate(
        checkpoint, episodes, years, baselines, seed, out, csv, force, runs_dir,
        allow_changed_inflow=allow_changed_inflow, strict=strict, on_warning=warnings.append,
        guard_baselines=guard_baselines, trace=trace, start_dates=tuple(start_dates),
    )
    report.notes.extend(f"warning: {text}" for text in warnings)
    return report


@dataclass
class TrainedRun:
    """What `train` returns: the run folder, its checkpoints and the training's numbers.

    ``best_checkpoint`` is ``checkpoints/best.pt`` (None when no in-training evaluation ran); ``last_eval``
    the mean metrics of the last evaluation on the validation episodes (return, energy_gwh, …);
    ``warnings`` the config's plausibility warnings."""

    run_dir: Path
    best_checkpoint: Optional[Path]
    last_checkpoint: Path
    frames: int
    updates: int
    episodes: int
    stopped_by: str
    best_eval_return: Optional[float]
    last_eval: Optional[dict[str, float]]
    seconds: float
    warnings: list[str] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.run_dir.name

    def policy(self) -> Policy:
        """The run's greedy agent (best.pt, else last.pt)."""
        return Policy.load(self.best_checkpoint or self.last_checkpoint)


def train(
    config: Any,
    runs_dir: str | Path = "runs",
    name: Optional[str] = None,
    total_frames: Optional[int] = None,
    seed: Optional[int] = None,
    overrides: Sequence[str] = (),
    device: Optional[str] = None,
    quiet: bool = True,
    strict: bool = False,
) -> TrainedRun:
    """``reservoir-rl train``: a new run folder ``runs_dir/name`` (default the next ``run-N``) trained on
    ``config`` — a YAML path, a dict of sections or a `Config` — with ``overrides`` (``"section.key=value"``),
    ``total_frames`` (train.total_frames, env steps) and ``seed`` (train.seed) applied. ``quiet=False``
    shows the live view on the terminal. SIGINT / SIGTERM stop it with a checkpoint, as on the command line
    (``stopped_by`` says so)."""
    extra = list(overrides)
    if total_frames is not None:
        extra.append(f"train.total_frames={check_total_frames(total_frames)}")
    resolved = _config(config, extra)
    view = make_view("quiet" if quiet else "auto")
    warnings: list[str] = []
    summary = train_command.train(resolved, [], view, runs_dir, name, seed, device, command=["reservoir_rl.train"],
                                  strict=strict, on_warning=warnings.append)
    checkpoints = summary.run_dir / "checkpoints"
    best, last = checkpoints / "best.pt", checkpoints / "last.pt"
    return TrainedRun(
        run_dir=summary.run_dir, best_checkpoint=best if best.is_file() else None,
        last_checkpoint=last if last.is_file() else summary.checkpoint, frames=summary.frames, updates=summary.updates,
        episodes=summary.episodes, stopped_by=summary.stopped_by, best_eval_return=summary.best_eval_return,
        last_eval=summary.last_eval, seconds=summary.seconds, warnings=warnings,
    )
