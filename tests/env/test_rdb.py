"""USGS RDB daily-value files: a good file, value codes (Ice, Eqp, blanks), a missing qualifier column, a
wrong parameter, gaps; every problem one line naming the row and the value."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest

from reservoir_rl.config import InflowConfig
from reservoir_rl.env.inflow import CFS_TO_CMS, synthetic
from reservoir_rl.env.rdb import is_rdb, load_rdb
from reservoir_rl.env.sources import load_inflow
from reservoir_rl.errors import InflowDataError

from rivers import write_csv, write_rdb

RECORD = synthetic(n_years=3, mean_inflow_cms=25.0, seed=2)


def test_a_good_file_reads_as_m3_per_second(tmp_path: Path) -> None:
    path = write_rdb(RECORD, tmp_path / "site.rdb")
    record = load_rdb(path)
    assert np.array_equal(record.dates, RECORD.dates)
    assert np.allclose(record.inflow_cms, RECORD.inflow_cms, rtol=1e-7)
    assert is_rdb(path) and not is_rdb(write_csv(RECORD, tmp_path / "site.csv"))
    gz = tmp_path / "site.rdb.gz"
    gz.write_bytes(gzip.compress(path.read_bytes()))
    assert is_rdb(gz) and np.allclose(load_rdb(gz).inflow_cms, record.inflow_cms)
    config = InflowConfig(source="rdb", path=str(path))
    assert np.allclose(load_inflow(config).inflow_cms, record.inflow_cms)


def test_a_file_without_the_qualifier_column_reads_the_same(tmp_path: Path) -> None:
    record = load_rdb(write_rdb(RECORD, tmp_path / "q.rdb", qualifier=False))
    assert np.allclose(record.inflow_cms, RECORD.inflow_cms, rtol=1e-7)


@pytest.mark.parametrize("value, fragments", [
    ("Ice", ["row 41 (line 46)", str(RECORD.dates[40]), "'Ice'", "ice affected", "fill or cut the gap"]),
    ("Eqp", ["row 41", "'Eqp'", "equipment malfunction"]),
    ("Ssn", ["row 41", "'Ssn'", "seasonally"]),
    ("", ["row 41", "no value (a blank day)"]),
    ("12abc", ["row 41", "'12abc'", "not a number"]),
    ("-5", ["row 41", "'-5' is not a discharge >= 0"]),
])
def test_a_day_without_a_discharge_is_one_line(tmp_path: Path, value: str, fragments: list[str]) -> None:
    path = write_rdb(RECORD, tmp_path / "codes.rdb", values={40: value})
    with pytest.raises(InflowDataError) as error:
        load_rdb(path)
    message = str(error.value)
    assert "\n" not in message and message.startswith("codes.rdb: ")
    for fragment in fragments:
        assert fragment in message, (fragment, message)


def test_a_file_of_another_parameter_is_refused(tmp_path: Path) -> None:
    path = write_rdb(RECORD, tmp_path / "stage.rdb")
    path.write_text(path.read_text().replace("_00060_00003", "_00065_00003"))
    with pytest.raises(InflowDataError, match=r"no daily mean discharge \(parameter 00060.*it holds parameter 00065"):
        load_rdb(path)
    with pytest.raises(InflowDataError, match="is not a daily mean discharge"):
        load_rdb(path, flow_column="123456_00065_00003")


def test_gaps_and_a_missing_format_line_are_one_line(tmp_path: Path) -> None:
    path = write_rdb(RECORD, tmp_path / "gap.rdb")
    lines = path.read_text().splitlines()
    del lines[100:103]  # three days missing
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(InflowDataError, match=r"a gap of 3 missing day\(s\).*consecutive days"):
        load_rdb(path)
    no_format = write_rdb(RECORD, tmp_path / "nf.rdb")
    no_format.write_text("\n".join(l for l in no_format.read_text().splitlines() if not l.startswith("5s")) + "\n")
    with pytest.raises(InflowDataError, match="expected the RDB format line"):
        load_rdb(no_format)
    with pytest.raises(InflowDataError, match="record file not found"):
        load_rdb(tmp_path / "missing.rdb")


def test_two_discharge_columns_need_a_name(tmp_path: Path) -> None:
    path = write_rdb(RECORD, tmp_path / "two.rdb")
    lines = path.read_text().splitlines()
    out = [l for l in lines if l.startswith("#")]
    body = [l for l in lines if not l.startswith("#")]
    out.append(body[0] + "\t777_00060_00003")
    out.append(body[1] + "\t14n")
    out += [l + "\t1.0" for l in body[2:]]
    path.write_text("\n".join(out) + "\n")
    with pytest.raises(InflowDataError, match="several daily mean discharge columns"):
        load_rdb(path)
    assert np.allclose(load_rdb(path, flow_column="777_00060_00003").inflow_cms, CFS_TO_CMS)
