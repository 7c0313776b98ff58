"""`scripts/setup.sh`: the CPU build of torch by default, another index on request, a fallback to pip's own
indexes when that index cannot be reached (offline CI with a local index), a line saying what it installed,
and torch pinned while the package and its extras are installed.

The script runs for real (bash) against stand-ins for ``python3`` and ``.venv/bin/python``: pip calls are
recorded, not made (a real install is what CI's own ``scripts/test.sh`` does), and ``import torch`` finds a
stand-in module whose version and CUDA build each case sets.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CPU_INDEX = "https://download.pytorch.org/whl/cpu"

VENV_PYTHON = r'''#!/usr/bin/env bash
echo "$*" >> "$STUB_LOG"
if [ "$1 $2" = "-m pip" ]; then
    args=("$@"); report=""; index=""; constraint=""
    for ((i = 0; i < ${#args[@]}; i++)); do
        case "${args[$i]}" in
            --report) report="${args[$((i + 1))]}" ;;
            --index-url) index="${args[$((i + 1))]}" ;;
            --constraint) constraint="${args[$((i + 1))]}" ;;
        esac
    done
    if [ -n "$index" ] && [ "$index" = "${STUB_FAILING_INDEX:-}" ]; then
        echo "ERROR: Could not find a version that satisfies the requirement" >&2; exit 1
    fi
    if [ -n "$constraint" ]; then echo "constraints: $(cat "$constraint")" >> "$STUB_LOG"; fi
    if [ -n "$report" ]; then
        printf '{"install": [{"metadata": {"name": "torch"}, "download_info": {"url": "%s/torch-%s.whl"}}]}' \
            "${index:-file:///opt/local-index}" "$STUB_TORCH_VERSION" > "$report"
    fi
    exit 0
fi
PYTHONPATH="$STUB_FAKE_TORCH" exec "$STUB_REAL_PYTHON" "$@"
'''

PYTHON3 = r'''#!/usr/bin/env bash
if [ "$1 $2" = "-m venv" ]; then
    mkdir -p "$3/bin" && cp "$STUB_VENV_PYTHON" "$3/bin/python" && chmod +x "$3/bin/python"; exit 0
fi
exit 3
'''


def run_setup(tmp_path: Path, extras: str = "test,ray", torch_version: str = "2.13.0+cpu", cuda: str | None = None,
              **env: str) -> tuple[subprocess.CompletedProcess, list[str]]:
    repo = tmp_path / "repo"
    (repo / "scripts").mkdir(parents=True)
    shutil.copy(ROOT / "scripts" / "setup.sh", repo / "scripts" / "setup.sh")
    stubs = tmp_path / "stubs"
    (stubs / "bin").mkdir(parents=True)
    (stubs / "fake" / "torch").mkdir(parents=True)
    (stubs / "fake" / "torch" / "__init__.py").write_text(
        f"__version__ = {torch_version!r}\nclass version:\n    cuda = {cuda!r}\n")
    (stubs / "venv_python").write_text(VENV_PYTHON)
    (stubs / "bin" / "python3").write_text(PYTHON3)
    (stubs / "bin" / "python3").chmod(0o755)
    log = tmp_path / "calls.log"
    environment = {
        "PATH": f"{stubs / 'bin'}:/usr/bin:/bin", "HOME": str(tmp_path), "STUB_LOG": str(log),
        "STUB_VENV_PYTHON": str(stubs / "venv_python"), "STUB_FAKE_TORCH": str(stubs / "fake"),
        "STUB_REAL_PYTHON": sys.executable, "STUB_TORCH_VERSION": torch_version, **env,
    }
    result = subprocess.run(["bash", str(repo / "scripts" / "setup.sh"), extras], env=environment,
                            capture_output=True, text=True, timeout=60)
    return result, log.read_text().splitlines() if log.exists() else []


def _torch_installs(calls: list[str]) -> list[str]:
    return [c for c in calls if c.startswith("-m pip install") and "torch==" in c and "--constraint" not in c]


def test_the_cpu_build_by_default_and_torch_pinned_for_everything_else(tmp_path: Path) -> None:
    result, calls = run_setup(tmp_path)
    assert result.returncode == 0, result.stderr
    (install,) = _torch_installs(calls)
    assert f"--index-url {CPU_INDEX}" in install and install.endswith("torch==2.13.0")
    assert f"setup: torch 2.13.0+cpu, CPU build, from {CPU_INDEX}/torch-2.13.0+cpu.whl" in result.stdout
    package = next(c for c in calls if "-e .[test,ray]" in c)
    assert "--constraint" in package and "constraints: torch==2.13.0+cpu" in calls  # no range pulls another torch
    assert calls.index(package) > calls.index(install)


def test_an_unreachable_torch_index_falls_back_to_pips_own_indexes(tmp_path: Path) -> None:
    """Offline, as CI here: the CPU index cannot be used, the local index pip is configured with serves torch."""
    result, calls = run_setup(tmp_path, STUB_FAILING_INDEX=CPU_INDEX)
    assert result.returncode == 0, result.stderr
    first, second = _torch_installs(calls)
    assert f"--index-url {CPU_INDEX}" in first and "--index-url" not in second and second.endswith("torch==2.13.0")
    assert f"not available from {CPU_INDEX}" in result.stderr
    assert "setup: torch 2.13.0+cpu, CPU build, from file:///opt/local-index/torch-2.13.0+cpu.whl" in result.stdout
    assert "constraints: torch==2.13.0+cpu" in calls


@pytest.mark.parametrize("index, expected", [
    ("https://download.pytorch.org/whl/cu126", "--index-url https://download.pytorch.org/whl/cu126"),
    ("pip", None),
])
def test_an_environment_variable_chooses_another_build_or_index(tmp_path: Path, index, expected) -> None:
    cuda = "12.6" if "cu126" in index else None
    result, calls = run_setup(tmp_path, extras="", torch_version="2.13.0+cu126" if cuda else "2.13.0", cuda=cuda,
                              RESERVOIR_RL_TORCH_INDEX_URL=index, RESERVOIR_RL_TORCH="torch==2.13.0")
    assert result.returncode == 0, result.stderr
    (install,) = _torch_installs(calls)
    if expected:
        assert expected in install
        assert "setup: torch 2.13.0+cu126, CUDA 12.6 build, from https://download.pytorch.org/whl/cu126/" in result.stdout
    else:
        assert "--index-url" not in install and "setup: torch 2.13.0, CPU build" in result.stdout
    assert any(c.endswith("-e .") and "--constraint" in c for c in calls)


def test_ci_installs_the_ray_extra() -> None:
    """.ci/run → scripts/test.sh → setup.sh with the ray extra, so the Ray collector tests run on every change."""
    assert "bash scripts/test.sh" in (ROOT / ".ci" / "run").read_text()
    test_sh = (ROOT / "scripts" / "test.sh").read_text()
    assert any(line.startswith("bash scripts/setup.sh") and "ray" in line.split("#")[0].split()[-1].split(",")
               for line in test_sh.splitlines())


def test_ci_installs_the_tune_extra() -> None:
    """scripts/test.sh installs the tune extra (Optuna), so the `tune` tests run instead of being skipped."""
    test_sh = (ROOT / "scripts" / "test.sh").read_text()
    assert any(line.startswith("bash scripts/setup.sh") and "tune" in line.split("#")[0].split()[-1].split(",")
               for line in test_sh.splitlines())
