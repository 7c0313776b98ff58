"""`ReservoirLogger`: TensorBoard scalars, histograms, figures and hyperparameters of a run.

Groups (tags are ``group/name``): ``train/`` (loss, epsilon, learning rate, grad norm, buffer size,
frames/s), ``episode/`` (return mean/min/max, length, success rate), ``reservoir/`` (storage, energy,
spill, flood-zone days, env-flow deficit days, supply deficit), ``agent/`` (Q-value statistics, TD error;
histograms of Q-values and actions), ``eval/`` (greedy return and reservoir metrics of the in-training
evaluation, on the validation episodes: training years unless ``inflow.validation_water_years`` is set),
``baselines/`` (every baseline's mean return on those episodes, logged with each evaluation) and ``figures/``. The step of every entry is the number of environment frames collected so far.

It receives plain numbers, numpy arrays and CPU tensors only.
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any, Mapping, Optional, Sequence

import numpy as np
from torch.utils.tensorboard import SummaryWriter
from torch.utils.tensorboard.summary import hparams as hparams_summaries

from reservoir_rl.errors import UserError
from reservoir_rl.files import os_error_text


class ReservoirLogger:
    """Writes one run's TensorBoard events into ``log_dir``.

    Args:
        log_dir: the run's TensorBoard folder; a resumed run writes into the same folder.
        purge_step: on resume, the first frame after the checkpoint: TensorBoard drops events at or
            after this step written by the interrupted process, so curves hold no duplicated steps.
    """

    def __init__(self, log_dir: str | Path, purge_step: Optional[int] = None) -> None:
        self.log_dir = Path(log_dir)
        _wait_until_new_files_sort_last(self.log_dir)
        try:
            self._writer = SummaryWriter(log_dir=str(self.log_dir), purge_step=purge_step, flush_secs=30)
        except OSError as error:  # a full disk, a read-only folder
            raise UserError(f"{self.log_dir}: cannot start the TensorBoard writer ({os_error_text(error)})") from None

    def scalars(self, group: str, values: Mapping[str, float], step: int) -> None:
        """One scalar per ``group/name``; non-finite values are skipped, never written as zeros."""
        for name, value in values.items():
            if value is None:
                continue
            value = float(value)
            if math.isfinite(value):
                self._writer.add_scalar(f"{group}/{name}", value, global_step=step)

    def histogram(self, tag: str, values: Any, step: int, bins: Any = "auto") -> None:
        array = np.asarray(values, dtype=np.float64).reshape(-1)
        if array.size:
            self._writer.add_histogram(tag, array, global_step=step, bins=bins)

    def figure(self, tag: str, figure: Any, step: int) -> None:
        """Render a matplotlib Figure into the ``figures/`` group (the figure is closed)."""
        self._writer.add_figure(tag, figure, global_step=step, close=True)

    def text(self, tag: str, text: str, step: int = 0) -> None:
        self._writer.add_text(tag, text, global_step=step)

    def hyperparameters(self, hparams: Mapping[str, Any], metric_tags: Sequence[str], step: int = 0) -> None:
        """Record hyperparameters (flattened; numbers, booleans and strings, anything else as text) in
        this run, for TensorBoard's HPARAMS view.

        ``metric_tags`` name scalars this logger writes (e.g. ``"eval/return"``); the view shows their
        latest values next to the hyperparameters, so no metric value is written here.
        """
        clean = {k: (v if isinstance(v, (int, float, str, bool)) else str(v)) for k, v in hparams.items()}
        # the metric values passed here are not written anywhere: only their tags enter the summary
        experiment, session_start, _session_end = hparams_summaries(clean, {tag: 0.0 for tag in metric_tags})
        writer = self._writer.file_writer
        for summary in (experiment, session_start):
            writer.add_summary(summary, step)

    def flush(self) -> None:
        self._writer.flush()

    def close(self) -> None:
        self._writer.close()


def _wait_until_new_files_sort_last(log_dir: Path) -> None:
    """TensorBoard reads a folder's event files in name order, and a name starts with the creation
    second (``events.out.tfevents.<seconds>.<host>.<pid>.<n>``). A resumed run must be read after
    the run it continues (its purge of the interrupted steps applies to what was read before), so a
    new file is never created in the same second as an existing one (the wait is below one second,
    and only when a run is resumed within a second of its previous file)."""
    newest = 0
    for path in log_dir.glob("events.out.tfevents.*"):
        try:
            newest = max(newest, int(path.name.split(".")[3]))
        except (IndexError, ValueError):
            continue
    while int(time.time()) <= newest:
        time.sleep(min(0.05, max(0.0, newest + 1 - time.time())) or 0.01)


def flatten(data: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": 1}}`` → ``{"a.b": 1}``; lists become strings."""
    flat: dict[str, Any] = {}
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(flatten(value, name + "."))
        elif isinstance(value, (list, tuple)):
            flat[name] = str(list(value))
        else:
            flat[name] = value
    return flat
