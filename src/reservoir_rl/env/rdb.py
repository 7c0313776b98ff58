"""USGS NWIS RDB daily-value files: the tab-separated format the USGS water data services return.

An RDB file is ``#`` comment lines, one line of column names, one line of column formats (``5s 15s 20d 14n
10s``: width and type s = string, d = date, n = number), then one line per day. Daily mean discharge is the
column ``<ts>_00060_00003`` (parameter 00060 = discharge in ft³/s, statistic 00003 = daily mean; ``<ts>`` is
the time series number), its qualifier in ``<ts>_00060_00003_cd`` (``A`` approved, ``P`` provisional,
``e`` estimated, …), and the day in ``datetime``.

A day whose value is not a number (``Ice``, ``Eqp`` equipment failure, ``Ssn`` seasonal, ``Bkw`` backwater,
``Dis`` discontinued, a blank, …) cannot be simulated: it is refused with one line naming the row, the day
and the value (the record must be consecutive days; fill or cut such gaps first). Flows are returned in
m³/s (`reservoir_rl.env.inflow.InflowRecord`).
"""

from __future__ import annotations

import datetime as dt
import gzip
import io
import math
import os
import re
from pathlib import Path
from typing import Optional

import numpy as np

from reservoir_rl.env.inflow import CFS_TO_CMS, MIN_RECORD_DAYS, InflowRecord
from reservoir_rl.errors import InflowDataError

DATE_COLUMN = "datetime"
DISCHARGE_SUFFIX = "_00060_00003"  # parameter 00060 (discharge, ft³/s), statistic 00003 (daily mean)
_DISCHARGE = re.compile(r"^\d+_00060_00003$")
_PARAMETER = re.compile(r"^\d+_(\d{5})_(\d{5})$")
_FORMAT = re.compile(r"^\d+[sdn]$")
# what the USGS writes in place of a daily value, and what it means
VALUE_CODES: dict[str, str] = {
    "Ice": "ice affected",
    "Eqp": "equipment malfunction",
    "Ssn": "parameter monitored seasonally",
    "Bkw": "backwater",
    "Dis": "discontinued",
    "Mnt": "maintenance",
    "Fld": "flood damage",
    "Dry": "dry",
    "Rat": "rating being developed",
    "Zfl": "zero flow",
    "***": "temporarily unavailable",
}


def is_rdb(path: str | os.PathLike[str]) -> bool:
    """True when the file (plain or gzip) starts like an RDB file: a ``#`` comment line, or a tab-separated
    column line followed by a format line. False for a file that cannot be read (the reader then says why)."""
    try:
        lines = _head_lines(Path(path), 400)
    except (OSError, EOFError, UnicodeDecodeError):
        return False
    lines = [line for line in lines if line.strip()]
    if not lines:
        return False
    if lines[0].startswith("#"):
        return True
    return len(lines) > 1 and "\t" in lines[0] and all(_FORMAT.match(f) for f in lines[1].rstrip("\r\n").split("\t"))


def _open_text(path: Path):
    with open(path, "rb") as raw:
        gzipped = raw.read(2) == b"\x1f\x8b"
    return gzip.open(path, "rt", encoding="utf-8-sig", newline="") if gzipped else open(path, encoding="utf-8-sig", newline="")


def _head_lines(path: Path, n: int) -> list[str]:
    with _open_text(path) as f:
        return [line for _, line in zip(range(n), f)]


def load_rdb(path: str | os.PathLike[str], flow_column: Optional[str] = None) -> InflowRecord:
    """Read the daily mean discharge of a USGS RDB file, converted from ft³/s to m³/s.

    ``flow_column`` names the ``<ts>_00060_00003`` column; None takes the only such column. Every problem is
    an `InflowDataError` of one line naming the file and, for a value, its data row (1-based), line and day.
    """
    path = Path(path)
    label = path.name or str(path)
    try:
        with _open_text(path) as f:
            text = f.read()
    except FileNotFoundError:
        raise InflowDataError(f"{label}: record file not found ({path})") from None
    except (OSError, EOFError, UnicodeDecodeError) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise InflowDataError(f"{label}: cannot read record file ({reason})") from None
    return parse_rdb(label, io.StringIO(text), flow_column)


def parse_rdb(label: str, lines: io.TextIOBase, flow_column: Optional[str] = None) -> InflowRecord:
    """The record in RDB text ``lines`` (see `load_rdb`); ``label`` names it in messages."""
    header: Optional[list[str]] = None
    formats_seen = False
    rows: list[tuple[int, list[str]]] = []
    for number, line in enumerate(lines, start=1):
        line = line.rstrip("\r\n")
        if line.startswith("#") or not line.strip():
            continue
        fields = line.split("\t")
        if header is None:
            header = [name.strip() for name in fields]
        elif not formats_seen:
            if not all(_FORMAT.match(f.strip()) for f in fields):
                raise InflowDataError(f"{label}: line {number}: expected the RDB format line (such as '5s 15s 20d "
                                      f"14n 10s') after the column names, got {line[:40]!r}")
            formats_seen = True
        else:
            rows.append((number, fields))
    if header is None:
        raise InflowDataError(f"{label}: no column line (an RDB file has '#' comments, column names, formats, data)")
    present = ", ".join(header)
    if DATE_COLUMN not in header:
        raise InflowDataError(f"{label}: no {DATE_COLUMN!r} column; columns present: {present}")
    column = _discharge_column(label, header, flow_column)
    if not rows:
        raise InflowDataError(f"{label}: no data rows after the column and format lines")
    i_date, i_flow = header.index(DATE_COLUMN), header.index(column)
    dates = np.empty(len(rows), dtype="datetime64[D]")
    flows = np.empty(len(rows), dtype=np.float64)
    for k, (number, fields) in enumerate(rows):
        date_text = fields[i_date].strip() if i_date < len(fields) else ""
        value_text = fields[i_flow].strip() if i_flow < len(fields) else ""
        where = f"{label}: row {k + 1} (line {number})"
        try:
            dates[k] = np.datetime64(dt.date.fromisoformat(date_text), "D")
        except ValueError:
            raise InflowDataError(f"{where}: cannot read the date {date_text!r} (expected YYYY-MM-DD)") from None
        flows[k] = _value(f"{where}, {date_text}, column {column!r}", value_text)
    steps = np.diff(dates).astype(np.int64)
    bad = np.flatnonzero(steps != 1)
    if bad.size:
        k = int(bad[0]) + 1
        what = f"a gap of {int(steps[k - 1]) - 1} missing day(s)" if steps[k - 1] > 1 else "a date repeated or out of order"
        raise InflowDataError(f"{label}: row {k + 1} (line {rows[k][0]}), {dates[k]}: {what} after {dates[k - 1]}; "
                              "the record must be consecutive days")
    if len(rows) < MIN_RECORD_DAYS:
        raise InflowDataError(f"{label}: only {len(rows)} days ({dates[0]} .. {dates[-1]}); "
                              f"need at least {MIN_RECORD_DAYS} (2 years)")
    return InflowRecord(label, dates, flows * CFS_TO_CMS)


def _discharge_column(label: str, header: list[str], flow_column: Optional[str]) -> str:
    """The daily-mean-discharge column to read, or one line saying why there is none."""
    if flow_column is not None:
        if flow_column not in header:
            raise InflowDataError(f"{label}: no column {flow_column!r}; columns present: {', '.join(header)}")
        if not flow_column.endswith(DISCHARGE_SUFFIX):
            raise InflowDataError(f"{label}: column {flow_column!r} is not a daily mean discharge "
                                  f"(parameter 00060, statistic 00003: a '<ts>{DISCHARGE_SUFFIX}' column)")
        return flow_column
    found = [name for name in header if _DISCHARGE.match(name)]
    if len(found) == 1:
        return found[0]
    if len(found) > 1:
        raise InflowDataError(f"{label}: several daily mean discharge columns ({', '.join(found)}); "
                              "name one with --flow-column (inflow.flow_column)")
    others = sorted({f"{m.group(1)} statistic {m.group(2)}" for name in header if (m := _PARAMETER.match(name))})
    held = f"it holds parameter {', '.join(others)}" if others else f"columns present: {', '.join(header)}"
    raise InflowDataError(f"{label}: no daily mean discharge (parameter 00060, statistic 00003, in ft³/s); {held}")


def _value(where: str, text: str) -> float:
    """A daily value in ft³/s, or one line naming the row, day and value."""
    if text == "":
        raise InflowDataError(f"{where}: no value (a blank day); the record must be consecutive days with a "
                              "discharge each: fill or cut the gap")
    try:
        value = float(text)
    except ValueError:
        meaning = next((m for code, m in VALUE_CODES.items() if text.startswith(code)), None)
        reason = f"USGS code for {meaning}" if meaning else "not a number"
        raise InflowDataError(f"{where}: value {text!r} ({reason}); the record must be consecutive days with a "
                              "discharge each: fill or cut the gap") from None
    if not math.isfinite(value) or value < 0:
        raise InflowDataError(f"{where}: value {text!r} is not a discharge >= 0")
    return value
