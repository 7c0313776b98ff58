"""Run folders: ``runs/run-N`` numbering, lookup by name or path, and the files a run records."""

from __future__ import annotations

import contextlib
import functools
import re
import subprocess
import sys
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Iterator, Optional

from reservoir_rl.errors import UserError
from reservoir_rl.files import os_error_text, write_text_atomic

RUN_PATTERN = re.compile(r"^run-(\d+)$")
NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
SEEDS_FILE = "seeds.yaml"  # marks a multi-seed run folder (run-N/seed-K/ are ordinary runs)
TRACKED_PACKAGES = ("reservoir-rl", "torch", "torchrl", "tensordict", "numpy", "tensorboard", "pydantic")


@dataclass(frozen=True)
class RunDir:
    """The files of one run."""

    path: Path

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def config_path(self) -> Path:
        return self.path / "config.yaml"

    @property
    def checkpoints(self) -> Path:
        return self.path / "checkpoints"

    @property
    def tensorboard(self) -> Path:
        return self.path / "tensorboard"

    @property
    def last_checkpoint(self) -> Path:
        return self.checkpoints / "last.pt"

    @property
    def best_checkpoint(self) -> Path:
        return self.checkpoints / "best.pt"

    @property
    def metadata_path(self) -> Path:
        return self.path / "metadata.yaml"

    @property
    def lock_path(self) -> Path:
        return self.path / ".lock"


@contextlib.contextmanager
def run_lock(run: RunDir) -> Iterator[None]:
    """Hold the run folder for one training process: a second `train`/`resume` of the same run while
    this one works is refused (the lock dies with the process, even after SIGKILL)."""
    import fcntl

    try:
        handle = open(run.lock_path, "a+")
    except OSError as error:
        raise UserError(f"{run.lock_path}: cannot open the run's lock file ({os_error_text(error)})") from None
    try:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise UserError(f"{run.path}: another process is training this run right now") from None
        yield
    finally:
        handle.close()  # closing the file releases the lock


def write_run_file(path: Path, text: str) -> None:
    """Write a file the program produces — those a run folder records (``config.yaml``, ``metadata.yaml``,
    ``seeds.yaml``, ``evaluation.json``) and `evaluate`'s ``--out`` / ``--csv`` — atomically, UTF-8; a file-system error (a full disk, a lost mount) is a one-line `UserError` naming
    the file, which then still holds what it held before."""
    try:
        write_text_atomic(path, text)
    except OSError as error:
        raise UserError(f"{path}: cannot write it ({os_error_text(error)}); any earlier version is unchanged") from None


def check_writable_folder(folder: Path, what: str) -> None:
    """Create ``folder`` if needed and make sure a file can be created in it, before any long work whose
    results would go there; a read-only folder or file system is a one-line `UserError` naming the folder
    and the OS error (``what`` says which option or folder it is)."""
    import tempfile

    try:
        Path(folder).mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as error:
        raise UserError(f"{what} {folder}: cannot write there ({os_error_text(error)})") from None


def next_run_name(runs_dir: Path) -> str:
    """``run-N`` with N one above the highest existing number (``run-1`` in an empty folder)."""
    numbers = [int(m.group(1)) for p in runs_dir.glob("run-*") if (m := RUN_PATTERN.match(p.name))]
    return f"run-{max(numbers, default=0) + 1}"


def create_run(runs_dir: Path, name: Optional[str] = None, checkpoints: bool = True) -> RunDir:
    """Create a new, empty run folder; an existing name is an error (nothing is overwritten), except a folder
    that a process stopped before it wrote anything (no config.yaml, no checkpoint, nobody training it),
    which is taken over.

    ``checkpoints=False`` leaves out the ``checkpoints`` folder (a multi-seed run holds seed runs instead).
    A file-system error (a read-only folder, a name too long) is a one-line `UserError` naming the path."""
    runs_dir = Path(runs_dir)
    if runs_dir.exists() and not runs_dir.is_dir():
        raise UserError(f"{runs_dir}: runs folder is not a directory")
    path = runs_dir
    try:
        runs_dir.mkdir(parents=True, exist_ok=True)
        if name is not None:
            if not NAME_PATTERN.match(name):
                raise UserError(f"--name {name!r}: use letters, digits, '.', '_' or '-'")
            path = runs_dir / name
            try:
                path.mkdir()
            except FileExistsError:
                if not never_started(RunDir(path)):
                    raise UserError(
                        f"{path}: run already exists; choose another --name or `reservoir-rl resume {name}`"
                    ) from None
        else:
            while True:  # another process may take the same number: mkdir is the atomic claim
                path = runs_dir / next_run_name(runs_dir)
                try:
                    path.mkdir()
                    break
                except FileExistsError:
                    continue
        run = RunDir(path)
        if checkpoints:
            run.checkpoints.mkdir(exist_ok=True)
    except OSError as error:
        raise UserError(f"{path}: cannot create the run folder ({os_error_text(error)})") from None
    return run


def never_started(run: RunDir) -> bool:
    """True for a run folder a process left in its first milliseconds, before it wrote its config.yaml:
    it holds at most the empty ``checkpoints`` folder and the ``.lock`` nobody holds."""
    try:
        entries = {entry.name for entry in run.path.iterdir()}
        if not entries <= {"checkpoints", ".lock"} or (run.checkpoints.is_dir() and any(run.checkpoints.iterdir())):
            return False
        if run.lock_path.exists():
            import fcntl

            with open(run.lock_path, "a+") as handle:
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:  # BlockingIOError included: a process is setting it up right now
        return False
    return True


def find_run(run: str, runs_dir: Path) -> RunDir:
    """A run given as a path, or as a name under ``runs_dir``."""
    candidates = [Path(run), Path(runs_dir) / run]
    for path in candidates:
        if path.is_dir() and (path / "checkpoints").is_dir():
            return RunDir(path)
    for path in candidates:
        if (path / SEEDS_FILE).is_file():
            seeds = sorted(p.name for p in path.glob("seed-*") if (p / "checkpoints").is_dir())
            example = f"{run.rstrip('/')}/{seeds[0]}" if seeds else f"{run.rstrip('/')}/seed-K"
            raise UserError(f"{path} holds several seeds ({', '.join(seeds) or 'none started yet'}): name one, e.g. {example}")
    raise UserError(f"unknown run {run!r}{_runs_hint(Path(runs_dir))}")


HINT_RUNS = 8  # runs an unknown-run error names (the newest); it says how many more there are


def _natural(name: str) -> tuple:
    """Sort key: ``run-2`` before ``run-10``."""
    return tuple(int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name))


def _runs_hint(runs_dir: Path) -> str:
    """``; runs in DIR: run-1, run-2`` — every run, or the newest `HINT_RUNS` and how many more exist."""
    if not runs_dir.is_dir():
        return f"; no runs in {runs_dir}"
    known = sorted((p.name for p in runs_dir.iterdir()
                    if (p / "checkpoints").is_dir() or (p / SEEDS_FILE).is_file()), key=_natural)
    if not known:
        return f"; no runs in {runs_dir}"
    if len(known) <= HINT_RUNS:
        return f"; runs in {runs_dir}: {', '.join(known)}"
    return (f"; {len(known)} runs in {runs_dir}, the last {HINT_RUNS}: {', '.join(known[-HINT_RUNS:])} "
            f"({len(known) - HINT_RUNS} more: ls {runs_dir})")


def package_versions() -> dict[str, str]:
    """Versions of Python and of the packages a run depends on (plain strings)."""
    return dict(_package_versions())


@functools.lru_cache(maxsize=1)
def _package_versions() -> tuple[tuple[str, str], ...]:
    versions = [("python", sys.version.split()[0])]
    for package in TRACKED_PACKAGES:
        try:
            versions.append((package, str(metadata.version(package))))
        except metadata.PackageNotFoundError:
            continue
    return tuple(versions)


def _git(args: list[str], cwd: Path) -> Optional[str]:
    try:
        result = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, timeout=5, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return result.stdout if result.returncode == 0 else None


def git_state(source: Optional[Path] = None) -> tuple[Optional[str], Optional[bool]]:
    """(commit SHA, has uncommitted changes) of the git checkout holding the code that runs (by default
    this package's own folder), or (None, None) when it is not in a git checkout (e.g. a wheel)."""
    folder = Path(source) if source is not None else Path(__file__).resolve().parents[1]
    sha = (_git(["rev-parse", "HEAD"], folder) or "").strip()
    if len(sha) != 40:
        return None, None
    status = _git(["status", "--porcelain", "--untracked-files=no", "--", "."], folder)
    return sha, (bool(status.strip()) if status is not None else None)


def git_sha(cwd: Optional[Path] = None) -> Optional[str]:
    """The commit of the git checkout holding ``cwd`` (default: this package's code), if any."""
    return git_state(cwd)[0]
