"""reservoir-rl: DQN agents for the daily release decision of a reservoir, on real river records.

The public Python API (docs/api.md), imported on first use so that ``import reservoir_rl`` stays light::

    from reservoir_rl import Policy, make_env, evaluate, train
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

__all__ = ["CheckpointError", "ConfigError", "EvaluationReport", "InflowDataError", "Policy", "TrainedRun",
           "UserError", "__version__", "evaluate", "make_env", "train"]


def __getattr__(name: str) -> Any:
    """``reservoir_rl.Policy`` and the rest of `__all__`, from `reservoir_rl.api` (loaded on first use)."""
    if name in __all__ and name != "__version__":
        from reservoir_rl import api

        return getattr(api, name)
    raise AttributeError(f"module 'reservoir_rl' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
