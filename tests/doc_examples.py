"""The ```python blocks of a docs page, run in order in one namespace, as a reader would paste them."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BLOCK = re.compile(r"^```python\n(.*?)^```", re.DOTALL | re.MULTILINE)


def python_blocks(page: str | Path) -> list[str]:
    """The code of each ```python block of ``page`` (a path under the repository, e.g. docs/api.md)."""
    return BLOCK.findall((REPO / page).read_text(encoding="utf-8"))


def run_python_blocks(page: str | Path, folder: Path, monkeypatch) -> dict:
    """Run every ```python block of ``page`` in ``folder`` (holding a copy of ``configs/``) in one namespace;
    a failing block names its number and first line. Returns the namespace."""
    shutil.copytree(REPO / "configs", folder / "configs", dirs_exist_ok=True)
    monkeypatch.chdir(folder)
    namespace: dict = {"__name__": "__doc_example__"}
    blocks = python_blocks(page)
    assert blocks, f"{page} has no python examples"
    for number, code in enumerate(blocks, 1):
        try:
            exec(compile(code, f"{page} example {number}", "exec"), namespace)  # noqa: S102 - our own docs
        except Exception as error:
            raise AssertionError(f"{page} example {number} ({code.splitlines()[0]!r}) failed: {error!r}") from error
    return namespace
