"""Multi-seed run folders: ``run-N/seeds.yaml`` names the seeds, ``run-N/seed-K/`` are ordinary runs.

`find_group` tells whether a run argument names such a folder; `SeedGroup` gives its files.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import yaml

from reservoir_rl.config import check_seed
from reservoir_rl.errors import UserError
from reservoir_rl.runs.folders import SEEDS_FILE, RunDir

SEEDS_FORMAT = "reservoir-rl-seeds"


@dataclass(frozen=True)
class SeedGroup:
    """The files of a multi-seed run."""

    path: Path
    seeds: tuple[int, ...]

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def seeds_path(self) -> Path:
        return self.path / SEEDS_FILE

    @property
    def config_path(self) -> Path:
        return self.path / "config.yaml"

    @property
    def logs(self) -> Path:
        return self.path / "logs"

    def run(self, seed: int) -> RunDir:
        return RunDir(self.path / f"seed-{seed}")

    def log_path(self, seed: int) -> Path:
        return self.logs / f"seed-{seed}.log"


def parse_seeds(text: str) -> list[int]:
    """``"0,1,2"`` → [0, 1, 2]; an empty list, a non-integer, a seed outside 0 <= seed < 2**63 or a repeated seed
    is a one-line error."""
    parts = [p.strip() for p in str(text).split(",")]
    if not any(parts):
        raise UserError(f"--seeds {text!r}: give a comma-separated list of seeds, e.g. --seeds 0,1,2")
    seeds = []
    for part in parts:
        if not re.fullmatch(r"\d+", part):
            what = "an empty entry" if not part else repr(part)
            raise UserError(f"--seeds {text!r}: {what} is not a whole number ≥ 0; e.g. --seeds 0,1,2")
        seed = int(part)
        check_seed(seed, f"--seeds {text!r}: {seed}:")
        if seed in seeds:
            raise UserError(f"--seeds {text!r}: seed {seed} is listed twice")
        seeds.append(seed)
    return seeds


def read_group(path: Path) -> SeedGroup:
    """The multi-seed run in ``path`` (its seeds.yaml checked)."""
    file = path / SEEDS_FILE
    try:
        document = yaml.safe_load(file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as error:
        raise UserError(f"{file}: cannot read it ({' '.join(str(error).split())[:120]})") from None
    seeds = document.get("seeds") if isinstance(document, dict) else None
    if not (isinstance(seeds, list) and seeds and all(type(s) is int and s >= 0 for s in seeds) and len(set(seeds)) == len(seeds)):
        raise UserError(f"{file}: not a seeds file of reservoir-rl (needs 'seeds': a list of distinct whole numbers)")
    return SeedGroup(path, tuple(seeds))


def find_group(run: str | Path, runs_dir: str | Path = "runs") -> Optional[SeedGroup]:
    """The multi-seed run named by ``run`` (a folder, or a name under ``runs_dir``), or None if it is not one."""
    for path in (Path(run), Path(runs_dir) / str(run)):
        if (path / SEEDS_FILE).is_file():
            return read_group(path)
    return None
