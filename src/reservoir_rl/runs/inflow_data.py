"""A run owns its data: which inflow record it trained on (absolute path and SHA-256 of the file), kept in
its ``metadata.yaml``, and the check that `resume` and `evaluate` make against it.

A synthetic record has no file: its parameters are in the run's config, which already fixes it.
"""

from __future__ import annotations

import hashlib
import importlib.resources
from pathlib import Path
from typing import Any, Optional

import yaml

from reservoir_rl.config import InflowConfig
from reservoir_rl.env.inflow import BUNDLED_FILE
from reservoir_rl.errors import UserError
from reservoir_rl.runs.folders import RunDir

METADATA_KEY = "inflow"
_CHUNK = 1 << 20


def file_sha256(path: str | Path) -> str:
    """SHA-256 (hex) of a file's bytes, as ``sha256sum`` prints it; an unreadable file is one line."""
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as f:
            while chunk := f.read(_CHUNK):
                digest.update(chunk)
    except OSError as error:
        raise UserError(f"{path}: cannot read the inflow record ({error.strerror or error})") from None
    return digest.hexdigest()


def inflow_fingerprint(inflow: InflowConfig) -> Optional[dict[str, str]]:
    """``{"path": ..., "sha256": ...}`` of the file the ``inflow`` section reads (the package's own file for
    a bundled gauge); None for a synthetic record."""
    if inflow.source in ("csv", "rdb"):
        path = Path(inflow.path).absolute()
        return {"path": str(path), "sha256": file_sha256(path)}
    if inflow.source == "bundled":
        data = (importlib.resources.files("reservoir_rl.data") / BUNDLED_FILE).read_bytes()
        return {"path": f"bundled:{BUNDLED_FILE}", "sha256": hashlib.sha256(data).hexdigest()}
    return None


def recorded_fingerprint(run: RunDir) -> Optional[dict[str, Any]]:
    """The inflow record of the run's newest ``metadata.yaml`` entry that names one (None for runs made
    before runs recorded it, or with a synthetic record)."""
    try:
        history = yaml.safe_load(run.metadata_path.read_text(encoding="utf-8")) if run.metadata_path.exists() else None
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return None
    if not isinstance(history, list):
        return None
    for entry in reversed(history):
        if isinstance(entry, dict) and isinstance(entry.get(METADATA_KEY), dict):
            return entry[METADATA_KEY]
    return None


def check_inflow_unchanged(run: RunDir, inflow: InflowConfig, allow_changed: bool = False) -> Optional[dict[str, str]]:
    """The current fingerprint of the run's record, after checking it against the one the run recorded: a
    different file content is one-line `UserError` unless ``allow_changed``."""
    current = inflow_fingerprint(inflow)
    recorded = recorded_fingerprint(run)
    if current is None or recorded is None or allow_changed:
        return current
    if recorded.get("sha256") != current["sha256"]:
        where = current["path"] if recorded.get("path") == current["path"] else f"{current['path']} (recorded: {recorded.get('path')})"
        raise UserError(
            f"{run.path}: the inflow record {where} changed since the run recorded it (SHA-256 "
            f"{str(recorded.get('sha256'))[:12]}… now {current['sha256'][:12]}…); add --allow-changed-inflow to go on with it"
        )
    return current
