"""The Optuna study of `tune`: its storage, sampler and pruner, trials abandoned by a killed process, the
table of trials and the parameters' importances.

Every trial records in its user attributes the run folder it trains (``run_dir``), the host and process id
that train it (``host``, ``pid``), the ``--set`` overrides and the complete config it trained
(``overrides``, ``config``), and why it stopped (``stopped_by``) or failed (``error``).
"""

from __future__ import annotations

import math
import os
import socket
import warnings
from dataclasses import dataclass, field
from typing import Any, Optional

from reservoir_rl.errors import UserError
from reservoir_rl.tuning import optuna_module

# Optuna's heartbeat: a trial that has not beaten for GRACE_SECONDS (its process was killed, on any machine)
# is marked failed when a trial of the study starts
HEARTBEAT_SECONDS = 60
GRACE_SECONDS = 180
# trials in these states count towards --trials (a trial killed with its process is one of them, as failed)
FINISHED_STATES = ("COMPLETE", "PRUNED", "FAIL")


@dataclass
class TrialRow:
    """One trial as the table shows it: its number, state, value (its best validation return; for a pruned
    trial its last one), its parameters and its run folder."""

    number: int
    state: str  # COMPLETE, PRUNED, FAIL, RUNNING or WAITING
    value: Optional[float]
    params: dict[str, Any]
    run_dir: Optional[str]
    note: str = ""  # why a trial failed or stopped early
    frames: Optional[int] = None  # the frame of its last validation report


@dataclass
class StudyInfo:
    """What `open_study` found: the study, the storage it lives in (password hidden) and the trials it
    marked failed because the process training them is gone."""

    study: Any  # optuna.Study
    storage: str
    marked_failed: list[int] = field(default_factory=list)


def storage_label(url: str) -> str:
    """A storage URL with its password hidden, to print."""
    try:
        from sqlalchemy.engine import make_url

        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # not an SQLAlchemy URL: Optuna will say so
        return url


def open_study(storage_url: str, study_name: str, seed: int, pruner: Any = None) -> StudyInfo:
    """Create the study or load it (``load_if_exists``: a killed tune continues it), maximising the
    validation return, with a TPE sampler and (default) a median pruner.

    The sampler is seeded with ``seed`` + the number of trials the study already holds, so a continued
    study does not repeat its first trials' random samples. The storage has Optuna's heartbeat on (see
    `HEARTBEAT_SECONDS`); a bad URL or an unreachable database is a one-line `UserError`."""
    optuna = optuna_module()
    label = storage_label(storage_url)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        try:
            storage = optuna.storages.RDBStorage(
                storage_url, heartbeat_interval=HEARTBEAT_SECONDS, grace_period=GRACE_SECONDS
            )
            existing = _existing_trials(storage, study_name)
            study = optuna.create_study(
                storage=storage,
                study_name=study_name,
                sampler=optuna.samplers.TPESampler(seed=seed + existing),
                pruner=pruner if pruner is not None else optuna.pruners.MedianPruner(n_startup_trials=3),
                direction="maximize",
                load_if_exists=True,
            )
        except (ImportError, ValueError, RuntimeError) as error:
            raise UserError(f"--storage {label}: {_first_line(error)}") from None
        except Exception as error:  # SQLAlchemy's errors: no database there, access refused, …
            if type(error).__module__.split(".")[0] not in ("sqlalchemy", "optuna"):
                raise
            raise UserError(f"--storage {label}: cannot open the study ({_first_line(error)})") from None
    if study.direction != optuna.study.StudyDirection.MAXIMIZE:
        raise UserError(f"--storage {label}: study {study_name!r} exists and minimises; tune maximises the "
                        "validation return: choose another --study")
    return StudyInfo(study, label, fail_abandoned_trials(study))


def _existing_trials(storage: Any, study_name: str) -> int:
    """Trials the study already holds in ``storage`` (0: no such study yet)."""
    try:
        study_id = storage.get_study_id_from_name(study_name)
    except KeyError:
        return 0
    return len(storage.get_all_trials(study_id, deepcopy=False))


def _first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return text[0] if text else type(error).__name__


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True


def fail_abandoned_trials(study: Any) -> list[int]:
    """Mark failed the RUNNING trials whose process on this host is gone (a killed tune); returns their
    numbers. Trials of other hosts are left to Optuna's heartbeat (failed `GRACE_SECONDS` after their
    last beat). A failed trial is not tried again: its run folder stays as a stopped run."""
    optuna = optuna_module()
    host = socket.gethostname()
    marked = []
    for trial in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
        attrs = trial.user_attrs
        if attrs.get("host") != host or not isinstance(attrs.get("pid"), int) or _process_alive(attrs["pid"]):
            continue
        storage = study._storage  # (Optuna has no public call to fail another process's trial)
        storage.set_trial_user_attr(trial._trial_id, "stopped_by", "its process ended without finishing it")
        if storage.set_trial_state_values(trial._trial_id, optuna.trial.TrialState.FAIL):
            marked.append(trial.number)
    return marked


def finished_count(study: Any) -> int:
    """Trials of the study in `FINISHED_STATES` (on every machine sharing it)."""
    optuna = optuna_module()
    states = tuple(getattr(optuna.trial.TrialState, name) for name in FINISHED_STATES)
    return len(study.get_trials(deepcopy=False, states=states))


def trial_rows(study: Any) -> list[TrialRow]:
    """Every trial of the study, in number order."""
    rows = []
    for trial in study.get_trials(deepcopy=False):
        value = trial.value if trial.value is not None and math.isfinite(trial.value) else None
        attrs = trial.user_attrs
        steps = sorted(trial.intermediate_values)
        rows.append(TrialRow(
            number=trial.number,
            state=trial.state.name,
            value=value,
            params=dict(trial.params),
            run_dir=attrs.get("run_dir"),
            note=str(attrs.get("error") or attrs.get("stopped_by") or ""),
            frames=steps[-1] if steps else None,
        ))
    return rows


def best_trial(study: Any) -> Optional[Any]:
    """The complete trial with the highest value (None: no trial completed)."""
    optuna = optuna_module()
    complete = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    return max(complete, key=lambda t: t.value) if complete else None


def param_importances(study: Any) -> tuple[dict[str, float], str]:
    """Each parameter's importance for the validation return (`optuna.importance.get_param_importances` with
    its default evaluator, PED-ANOVA, which needs neither scikit-learn nor SciPy), summing to 1; with ``""``,
    or ``{}`` with the reason there are none (fewer than two complete trials, nothing varied)."""
    optuna = optuna_module()
    complete = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    if len(complete) < 2:
        return {}, f"no parameter importances: they need two complete trials, the study has {len(complete)}"
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            importances = optuna.importance.get_param_importances(study)
    except (ValueError, RuntimeError, ZeroDivisionError) as error:
        return {}, f"no parameter importances: {_first_line(error)}"
    values = {name: float(v) for name, v in importances.items() if math.isfinite(v)}
    if not values:
        return {}, "no parameter importances: no parameter varied between the complete trials"
    return values, ""
