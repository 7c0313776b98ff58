"""The ``train`` section (training loop, and where its envs are stepped) and the ``logging`` section."""

from __future__ import annotations

from typing import Literal, Optional

from pydantic import Field, ValidationError, model_validator

from reservoir_rl.config.section import SEED_LIMIT, Section, seed_problem
from reservoir_rl.errors import ConfigError


# The validation env's seed when ``train.eval_seed`` is None is train.seed + EVAL_SEED_OFFSET: evaluation envs never
# share the training env's random stream, and `evaluate --years validation` reproduces the training's evaluation.
EVAL_SEED_OFFSET = 1_000_003


class CollectorConfig(Section):
    """Where the environment steps of training are collected (see docs/scaling.md)."""

    backend: Literal["sync", "process", "ray"] = Field(
        "sync", description="sync: in the training process; process: worker processes; ray: Ray actors"
    )
    workers: int = Field(
        2, ge=1, le=256, description="process / ray: worker processes or actors, each stepping n_envs / workers reservoirs"
    )
    ray_address: Optional[str] = Field(
        None, description="ray: address of a running cluster ('auto', 'ray://host:10001'); None starts Ray locally"
    )


class DemonstrationsConfig(Section):
    """Demonstrations from a baseline in every update (DQfD, Hester et al. 2018; docs/training.md)."""

    teacher: Optional[str] = Field(
        None, description="the baseline whose episodes on the training years are the demonstrations: one that does "
        "not know the future (sop, hedging, rule, sdp, mpc); None = no demonstrations"
    )
    episodes: int = Field(32, ge=1, le=10_000, description="teacher episodes (one year each), run once before training")
    pretrain_updates: int = Field(1_000, ge=0, description="updates on demonstrations alone before the first frame")
    batch_size: int = Field(16, ge=1, description="demonstration transitions added to every update's replay batch")
    margin: float = Field(0.8, ge=0, allow_inf_nan=False,
                          description="large-margin loss: max_a[Q(s,a) + margin·(a ≠ a_teacher)] − Q(s, a_teacher)")
    margin_weight: float = Field(1.0, ge=0, allow_inf_nan=False, description="weight of that loss (λ)")


class TrainConfig(Section):
    """Training loop; schedules are in absolute frames so a resumed or extended run continues them."""

    total_frames: int = Field(200_000, ge=1)
    n_envs: int = Field(32, ge=1)
    frames_per_batch: int = Field(64, ge=1)
    init_random_frames: int = Field(5_000, ge=0)
    updates_per_frame: float = Field(0.25, gt=0, description="gradient updates per collected frame")
    batch_size: int = Field(64, ge=1)
    buffer_size: int = Field(100_000, ge=1)
    prioritized_replay: bool = False
    priority_alpha: float = Field(0.6, ge=0, le=1, description="prioritized replay: p^alpha sampling (0 = uniform)")
    priority_beta: float = Field(0.4, ge=0, le=1, description="prioritized replay: importance-weight exponent")
    lr: float = Field(1e-3, gt=0)
    lr_end: Optional[float] = Field(None, gt=0, description="linear decay target; None = constant")
    lr_decay_frames: int = Field(200_000, ge=1)
    eps_start: float = Field(1.0, ge=0, le=1)
    eps_end: float = Field(0.01, ge=0, le=1)
    eps_decay_frames: int = Field(50_000, ge=1)
    target_update: Literal["hard", "soft"] = "hard"
    target_update_period: int = Field(500, ge=1, description="hard: updates between copies")
    tau: float = Field(0.005, gt=0, le=1, description="soft: Polyak rate per update")
    grad_clip_norm: float = Field(10.0, gt=0)
    sdp_potential_weight: float = Field(
        0.0, ge=0, allow_inf_nan=False,
        description="potential-based reward shaping of the transitions the agent learns from: + w·(γ·V̄(s') − V̄(s)), "
        "V̄ the stochastic DP's value of the training years (Φ(terminal) = 0); 0 = off. Reported and evaluated "
        "returns stay unshaped (docs/training.md)",
    )
    demonstrations: DemonstrationsConfig = DemonstrationsConfig()
    checkpoint_every_frames: int = Field(5_000, ge=1)
    keep_checkpoints: int = Field(5, ge=1)
    eval_every_frames: int = Field(20_000, ge=1)
    eval_episodes: int = Field(10, ge=1)
    seed: int = Field(0, ge=0, lt=SEED_LIMIT, description="0 <= seed < 2**63")
    eval_seed: Optional[int] = Field(
        None, ge=0, lt=SEED_LIMIT,
        description="env seed of the validation episodes (start days, initial storages, forecast errors) of the "
        "in-training evaluations: one value makes every training seed of a run (``--seeds``) meet the same "
        "episodes, so their validation returns pair up and the baselines' levels are computed once; None = "
        "train.seed + EVAL_SEED_OFFSET (1,000,003), each training seed its own episodes",
    )
    device: Literal["cpu", "cuda"] = "cpu"
    torch_threads: int = Field(
        1, ge=0, description="CPU threads of torch in the training process; 0 = torch's default (one per core)"
    )
    collector: CollectorConfig = CollectorConfig()

    @property
    def validation_env_seed(self) -> int:
        """The env seed of the in-training evaluation's validation episodes: ``eval_seed``, or
        ``seed + EVAL_SEED_OFFSET`` when it is None."""
        return self.seed + EVAL_SEED_OFFSET if self.eval_seed is None else self.eval_seed

    @model_validator(mode="after")
    def _envs_split_evenly(self) -> "TrainConfig":
        workers = self.collector.workers
        if self.collector.backend != "sync" and self.n_envs % workers:
            raise ValueError(
                f"n_envs ({self.n_envs}) must be a multiple of collector.workers ({workers}): "
                "each worker steps n_envs / workers reservoirs"
            )
        if self.frames_per_batch % self.n_envs:
            raise ValueError(
                f"frames_per_batch ({self.frames_per_batch}) must be a multiple of n_envs ({self.n_envs}): "
                "every batch holds the same number of days of each env"
            )
        return self


def check_total_frames(total_frames: int) -> int:
    """``--total-frames`` (all frames of a run, not additional ones), checked by the rule of
    ``train.total_frames``; a bad value is a one-line `ConfigError` naming the option, the key and the value."""
    try:
        TrainConfig().total_frames = total_frames
    except ValidationError as error:
        reason = error.errors()[0]["msg"].removeprefix("Value error, ")
        raise ConfigError(f"--total-frames {total_frames} (train.total_frames): {reason}") from None
    return total_frames


def check_seed(seed: int, option: str = "--seed") -> int:
    """A seed given on the command line (``--seed``, each of ``--seeds``), checked by the one rule of every seed
    (0 <= seed < 2**63, as ``train.seed``); a bad one is a one-line `ConfigError` naming the option."""
    problem = seed_problem(seed)
    if problem is not None:
        raise ConfigError(f"{option} {seed}: {problem}")
    return seed


class LoggingConfig(Section):
    """How often (in frames) TensorBoard gets scalars, figures and histograms."""

    log_every_frames: int = Field(1_000, ge=1)
    figure_every_frames: int = Field(50_000, ge=1)
    histogram_every_frames: int = Field(10_000, ge=1)
    baseline_levels: bool = Field(
        True, description="log every baseline's mean return on the validation episodes (baselines/<name>), "
        "computed once (about 11 s for configs/base.yaml on 2 cores, most of it MPC and DP), then read back from "
        "the runs folder's .cache/baseline-levels by later runs of the same reservoir, record and episodes"
    )
