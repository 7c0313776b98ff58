"""The baselines' levels of a run (TensorBoard ``baselines/<name>``), kept in the runs folder for the next run.

Every baseline's mean return on the validation episodes (`Trainer.baseline_levels`) costs about 11 s for
configs/base.yaml (most of it MPC and the perfect-foresight DP) and is the same for every run that shares
what it depends on. It is kept as ``RUNS/.cache/baseline-levels/KEY.json`` (RUNS: the runs folder, also for the seeds of a
multi-seed run), KEY the SHA-256 of everything the
numbers depend on (`levels_key`):

- the config's ``env``, ``inflow`` and ``baselines`` sections, ``agent.gamma`` (the SDP's default
  discount), ``train.validation_env_seed`` (the validation episodes' seed: ``train.eval_seed``, or one derived
  from ``train.seed``; the seeds of a run with one ``eval_seed`` share the levels), ``train.eval_episodes`` and
  ``train.device``;
- the inflow record itself (its dates and flows: a CSV edited in place changes the key);
- the package's source code (every ``.py`` file of ``reservoir_rl``) and the torch version: a change of the
  code gives new numbers.

While one process computes a key's levels it holds ``KEY.lock`` (`_computing`): another process that needs the
same levels waits and reads them. A file that cannot be read or holds something else is ignored (the levels are computed and the file
rewritten); a cache folder that cannot be written leaves the run as it was (the levels are only not kept).
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import math
from pathlib import Path
from typing import Callable, Iterator, Optional

import torch

from reservoir_rl.config import Config, config_to_dict
from reservoir_rl.env.inflow import InflowRecord
from reservoir_rl.files import write_text_atomic
from reservoir_rl.runs.folders import SEEDS_FILE

CACHE_FOLDER = ".cache"
LEVELS_FOLDER = "baseline-levels"
PACKAGE_ROOT = Path(__file__).resolve().parents[1]


@functools.lru_cache(maxsize=1)
def source_fingerprint() -> str:
    """SHA-256 over the relative path and bytes of every ``.py`` file of the package (hex)."""
    digest = hashlib.sha256()
    for path in sorted(PACKAGE_ROOT.rglob("*.py")):
        digest.update(str(path.relative_to(PACKAGE_ROOT)).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def levels_key(config: Config, inflow: InflowRecord) -> str:
    """SHA-256 (hex) of everything the validation baselines' mean returns depend on (module docstring)."""
    sections = config_to_dict(config)
    described = {
        "env": sections["env"], "inflow": sections["inflow"], "baselines": sections["baselines"],
        "agent.gamma": config.agent.gamma, "validation_env_seed": config.train.validation_env_seed,
        "train.eval_episodes": config.train.eval_episodes, "train.device": config.train.device,
        "torch": torch.__version__, "source": source_fingerprint(),
    }
    digest = hashlib.sha256(json.dumps(described, sort_keys=True, default=str).encode())
    digest.update(inflow.dates.astype("int64").tobytes())
    digest.update(inflow.inflow_cms.tobytes())
    return digest.hexdigest()


def runs_folder(run_path: Path) -> Path:
    """The runs folder a run was created in: ``RUNS`` for ``RUNS/run-N`` and for a seed ``RUNS/run-N/seed-K``
    of a multi-seed run (whose folder holds ``seeds.yaml``)."""
    parent = Path(run_path).parent
    return parent.parent if (parent / SEEDS_FILE).is_file() else parent


def levels_path(runs_dir: Path, key: str) -> Path:
    return runs_dir / CACHE_FOLDER / LEVELS_FOLDER / f"{key}.json"


def _read(path: Path) -> Optional[dict[str, float]]:
    try:
        levels = json.loads(path.read_text(encoding="utf-8"))["levels"]
    except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError):
        return None
    if not isinstance(levels, dict) or not all(isinstance(v, (int, float)) for v in levels.values()):
        return None
    return {str(name): float(value) for name, value in levels.items()}


def cached_levels(
    runs_dir: Optional[Path], config: Config, inflow: InflowRecord, compute: Callable[[], dict[str, float]]
) -> dict[str, float]:
    """The levels kept in ``runs_dir`` for this config and record, else ``compute()`` (then kept there).
    ``runs_dir`` None: always computed, nothing kept."""
    if runs_dir is None:
        return compute()
    key = levels_key(config, inflow)
    path = levels_path(Path(runs_dir), key)
    levels = _read(path) if path.is_file() else None
    if levels is not None:
        return levels
    with _computing(path):  # another process computing them: wait for its file
        levels = _read(path) if path.is_file() else None
        if levels is not None:
            return levels
        levels = compute()
        if all(math.isfinite(value) for value in levels.values()):
            try:
                write_text_atomic(path, json.dumps({"key": key, "levels": levels}, indent=1) + "\n")
            except OSError:
                pass  # a cache that cannot be written only costs the next run the computation
    return levels


def has_levels(runs_dir: Path, config: Config, inflow: InflowRecord) -> bool:
    """True when ``runs_dir`` keeps the levels of this config and record (a run of it reads them)."""
    return _read(levels_path(Path(runs_dir), levels_key(config, inflow))) is not None


@contextlib.contextmanager
def _computing(path: Path) -> Iterator[None]:
    """Held while this process computes the levels of ``path``: a process that needs the same levels meanwhile
    (another group of seeds of a vectorized run, a seed of process mode, a parallel `tune` trial in the same runs
    folder) waits for them and reads the file instead of computing them too. An exclusive ``flock`` on
    ``KEY.lock`` beside it; where there is none (no ``fcntl``, a folder that cannot be written) nothing waits."""
    try:
        import fcntl

        path.parent.mkdir(parents=True, exist_ok=True)
        handle = open(path.with_suffix(".lock"), "a", encoding="utf-8")
    except (ImportError, OSError):
        yield
        return
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX)
        except OSError:
            pass  # (a file system without locks: compute without waiting)
        yield
    finally:
        handle.close()  # (releases the lock)
