"""A run's TensorBoard scalars read back: tag → (frames, values)."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

Series = tuple[np.ndarray, np.ndarray]  # (frames (N,) int64, values (N,) float64)


def read_scalars(tensorboard_dir: Path) -> dict[str, Series]:
    """Every scalar tag of a run's TensorBoard folder → (frames, values), sorted by frame, last write wins.

    Reads all event files of the folder (a resumed run adds one); a partial record at the end of a file
    being written is skipped. A missing folder gives an empty dict.
    """
    if not tensorboard_dir.is_dir():
        return {}
    from tensorboard.backend.event_processing.event_accumulator import SCALARS, EventAccumulator

    # The reader warns on a truncated last record (a run still writing): expected, not the user's concern.
    quiet = [logging.getLogger(name) for name in ("tensorboard", "tensorflow")]
    levels = [lg.level for lg in quiet]
    for lg in quiet:
        lg.setLevel(logging.ERROR)
    try:
        accumulator = EventAccumulator(str(tensorboard_dir), size_guidance={SCALARS: 0})
        accumulator.Reload()
        out: dict[str, Series] = {}
        for tag in accumulator.Tags().get("scalars", []):
            by_step = {int(e.step): float(e.value) for e in accumulator.Scalars(tag)}
            steps = np.array(sorted(by_step), dtype=np.int64)
            out[tag] = (steps, np.array([by_step[s] for s in steps], dtype=np.float64))
        return out
    finally:
        for lg, level in zip(quiet, levels):
            lg.setLevel(level)
