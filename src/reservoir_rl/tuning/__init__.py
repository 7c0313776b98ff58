"""Hyperparameter search with Optuna (`reservoir-rl tune`): the search space read from YAML, the study and
its storage, the trials' table and the parameters' importances.

Optuna is an optional extra (``pip install 'reservoir-rl[tune]'``): `optuna_module` imports it or says in one
line what to install; nothing here imports it at module level.
"""

from __future__ import annotations

from types import ModuleType

from reservoir_rl.errors import UserError

INSTALL_HINT = "pip install 'reservoir-rl[tune]'"


def optuna_module() -> ModuleType:
    """The ``optuna`` package; a one-line `UserError` naming the extra to install when it is missing."""
    try:
        import optuna
    except ImportError:
        raise UserError(f"tune needs Optuna, which is not installed: {INSTALL_HINT}") from None
    return optuna
