"""Rich rendering of what `tune` returns: the trials (state and value, then their parameters in tables
that each fit 80 columns), the best trial and the files written."""

from __future__ import annotations

import math
from typing import Any, Sequence

from rich import box
from rich.table import Table

from reservoir_rl.cli.console import console

WIDTH = 80  # every table fits this many columns
_GAP = 3  # between two columns of a SIMPLE_HEAD table: padding, separator, padding
_EDGES = 2  # the table's left and right edge


def short_names(names: Sequence[str]) -> dict[str, str]:
    """Parameter names without their config section (``train.lr`` → ``lr``,
    ``train.eps_decay_frames/train.total_frames`` → ``eps_decay_frames/total_frames``); the full name where
    two would look alike."""
    def short(name: str) -> str:
        return "/".join(part.split(".", 1)[-1] for part in name.split("/"))

    shorts = {name: short(name) for name in names}
    counts: dict[str, int] = {}
    for value in shorts.values():
        counts[value] = counts.get(value, 0) + 1
    return {name: value if counts[value] == 1 else name for name, value in shorts.items()}


def param_text(value: Any) -> str:
    """A parameter value as the table shows it: floats to 4 significant digits."""
    if value is None:
        return "–"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        return f"{value:.4g}" if math.isfinite(value) else str(value)
    return str(value)


def column_groups(headers: Sequence[str], cells: Sequence[Sequence[str]], first: int, width: int = WIDTH) -> list[list[int]]:
    """Indices of ``headers`` split into groups whose table (a first column ``first`` characters wide, then
    each group's columns, as wide as their header or widest cell) fits ``width`` characters."""
    groups: list[list[int]] = []
    used = width + 1
    for index, header in enumerate(headers):
        column = max([len(header), *(len(row[index]) for row in cells)])
        if groups and used + _GAP + column <= width:
            groups[-1].append(index)
            used += _GAP + column
        else:
            groups.append([index])
            used = _EDGES + first + _GAP + column
    return groups


def _table(title: str) -> Table:
    console.print(title, highlight=False)  # on its own line: a table title would wrap at the table's width
    return Table(box=box.SIMPLE_HEAD, pad_edge=False)


def render_tune(result: Any) -> None:
    """The trials, the best trial and what was written; notes last."""
    rows = result.trials
    console.print(f"Study {result.study_name} in {result.storage}: {len(rows)} trial{'s' if len(rows) != 1 else ''}, "
                  f"runs in {result.tune_dir}", highlight=False, markup=False, overflow="fold")
    if rows:
        states = _table("Trials (value: best validation return; pruned: the last one)")
        for header in ("trial", "state", "value", "frames", "note"):
            states.add_column(header, justify="right" if header in ("trial", "value", "frames") else "left",
                              overflow="fold")
        for row in rows:
            mark = " *" if row.number == result.best_number else ""
            value = f"{row.value:,.2f}{mark}" if row.value is not None else "–"
            frames = f"{row.frames:,}" if row.frames is not None else "–"
            states.add_row(str(row.number), row.state.lower(), value, frames, row.note)
        console.print(states, width=WIDTH)
        names = sorted({name for row in rows for name in row.params})
        if names:
            headers = short_names(names)
            cells = [[param_text(row.params.get(name)) for name in names] for row in rows]
            first = max(len("trial"), *(len(str(row.number)) for row in rows))
            for group in column_groups([headers[n] for n in names], cells, first):
                table = _table("Parameters")
                table.add_column("trial", justify="right")
                for index in group:
                    table.add_column(headers[names[index]], justify="right", no_wrap=True)
                for row, row_cells in zip(rows, cells):
                    table.add_row(str(row.number), *(row_cells[i] for i in group))
                console.print(table, width=WIDTH)
    if result.best_number is not None:
        console.print(f"best: trial {result.best_number}, validation return {result.best_value:,.4f}",
                      highlight=False)
    if result.best_config is not None:
        console.print(f"best config: {result.best_config} (reservoir-rl train {result.best_config})",
                      highlight=False, markup=False, overflow="fold")
    if result.importance_figure is not None:
        ranked = sorted(result.importances.items(), key=lambda item: -item[1])
        top = ", ".join(f"{short_names([n])[n]} {v:.2f}" for n, v in ranked[:3])
        console.print(f"parameter importance: {result.importance_figure} ({top})", highlight=False, markup=False,
                      overflow="fold")
    for number in result.marked_failed:
        console.print(f"note: trial {number} was left running by a process that ended; marked failed",
                      highlight=False, markup=False)
    for note in result.notes:
        console.print(f"note: {note}", highlight=False, markup=False, overflow="fold")
    if result.stopped_by == "timeout":
        console.print("stopped: --timeout reached; the same command continues the study", highlight=False)
    elif result.stopped_by:
        console.print(f"stopped by {result.stopped_by}: the trial in progress ended as failed (its run folder "
                      "kept); the same command continues the study", highlight=False)
