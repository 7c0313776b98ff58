"""Progress views: plain lines for pipes, a Rich live panel for terminals, silence on demand."""

from __future__ import annotations

import io
import math

import pytest
from rich.console import Console

from reservoir_rl.catalog import LIVE_EPISODE_COLUMNS

from reservoir_rl.monitor.live import (
    LiveView,
    PlainView,
    ProgressView,
    QuietView,
    format_duration,
    make_view,
)

ESC = "\x1b"


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _plain_console() -> tuple[Console, io.StringIO]:
    buf = io.StringIO()
    return Console(file=buf, force_terminal=False, width=80), buf


def _records(text: str) -> list[str]:
    """The plain view's output with each status record's continuation lines (indented by two spaces) joined
    back to it with " | "; the lines of an episode table (indented by four) are kept as they are."""
    records: list[str] = []
    for line in text.splitlines():
        if line.startswith("  ") and not line.startswith("    ") and records:
            records[-1] += " | " + line[2:]
        else:
            records.append(line)
    return records


def _episode(ret: float) -> dict[str, float]:
    return {"return": ret, "energy_gwh": 1.234, "spill_hm3": 5.67, "failures": 1, "env_flow_deficit_days": 3,
            "length": 365}


def test_format_duration() -> None:
    assert format_duration(9) == "9s"
    assert format_duration(123) == "2m03s"
    assert format_duration(3725) == "1h02m"
    assert format_duration(float("nan")) == "–"
    assert format_duration(None) == "–"


def test_plain_view_lines_rate_limit_and_eta() -> None:
    console, buf = _plain_console()
    clock = FakeClock()
    view = PlainView(console, every_seconds=10.0, clock=clock, episode_columns=LIVE_EPISODE_COLUMNS)
    view.start(total_frames=200_000, start_frame=0)
    after_start = _records(buf.getvalue())
    assert len(after_start) == 2 and "frames 0/200,000" in after_start[-1]

    clock.now += 1.0
    view.update(1_000, {"fps": 1000.0, "epsilon": 0.9, "loss": 0.5})  # within 10 s: suppressed
    assert _records(buf.getvalue()) == after_start

    view.add_episodes([_episode(-3.0), _episode(-3.4)])
    clock.now += 9.0  # 10 s since the start line
    view.update(12_288, {"fps": 1530.0, "epsilon": 0.76, "loss": 0.0123})
    lines = _records(buf.getvalue())
    assert len(lines) == 3 + 4  # the status line, then the two episodes finished since the last line
    line = lines[2]
    assert "frames 12,288/200,000 (6.1%)" in line
    assert "1,530 fps" in line and "eps 0.76" in line and "loss 0.0123" in line
    assert "ep return -3.2 (last 2 mean)" in line
    # eta from measured rate since start: 12,288 frames in 10 s -> 187,712 / 1228.8 = 152.8 s
    assert "eta 2m33s" in line

    clock.now += 3.0
    view.update(15_000, {"fps": 1500.0})
    assert len(_records(buf.getvalue())) == 7
    view.message("checkpoint saved")
    view.stop()
    out = buf.getvalue()
    assert max(len(line) for line in out.splitlines()) <= 80
    lines = _records(out)
    assert lines[-2] == "checkpoint saved"
    assert lines[-1].startswith("frames 15,000/200,000") and "elapsed 13s" in lines[-1]
    assert ESC not in out and "\r" not in out
    view.stop()  # idempotent
    assert buf.getvalue() == out


def test_plain_view_resumed_eta_excludes_start_offset() -> None:
    console, buf = _plain_console()
    clock = FakeClock()
    view = PlainView(console, every_seconds=0.0, clock=clock)
    view.start(total_frames=100_000, start_frame=50_000)
    assert "resuming at frame 50,000" in buf.getvalue()
    clock.now += 10.0
    view.update(60_000, {})  # 10,000 frames in 10 s -> 40 s left
    line = _records(buf.getvalue())[-1]
    assert "eta 40s" in line and "1,000 fps" in line  # fps falls back to the measured rate


def test_plain_view_tolerates_missing_and_nan() -> None:
    console, buf = _plain_console()
    view = PlainView(console, every_seconds=0.0, clock=FakeClock())
    view.start(total_frames=1_000, start_frame=0)
    view.add_episodes([{"return": math.nan}])
    view.update(10, {"fps": math.nan, "epsilon": None, "eval_return": math.nan})  # type: ignore[dict-item]
    lines = _records(buf.getvalue())
    assert lines[-1].split() == ["1", "–"]  # the episode table: a NaN return shown as "–"
    line = lines[-4]
    assert "– fps" in line and "eps –" in line and "loss –" in line and "ep return –" in line
    assert "eval – (best –)" in line and "eta –" in line


def test_plain_view_lines_fit_80_columns_without_splitting_a_number() -> None:
    console, buf = _plain_console()
    view = PlainView(console, every_seconds=0.0, clock=FakeClock())
    view.start(total_frames=10**9, start_frame=0)
    view.update(10**8, {"fps": 123456.0, "epsilon": 0.5, "loss": 1.0, "eval_return": 1.0, "best_eval_return": 2.0})
    lines = buf.getvalue().splitlines()
    assert max(len(line) for line in lines) <= 80
    assert any("frames 100,000,000/1,000,000,000 (10.0%)" in line for line in lines)
    assert any("123,456 fps" in line for line in lines) and any("eval 1.00 (best 2.00)" in line for line in lines)
    assert _records(buf.getvalue())[-1] == view.status_line()  # one record, broken only between its pieces


def test_live_view_renders_episode_table() -> None:
    buf = io.StringIO()
    console = Console(file=buf, force_terminal=True, width=120)
    clock = FakeClock()
    view = LiveView(console, clock=clock, episode_columns=LIVE_EPISODE_COLUMNS)  # the catalog's labels
    view.start(total_frames=10_000, start_frame=0)
    view.message("warming up replay buffer")
    clock.now += 5.0
    view.update(5_000, {"fps": 1000.0, "epsilon": 0.42, "loss": math.nan, "eval_return": 7.5})
    view.add_episodes([_episode(-3.21), _episode(4.56)] + [_episode(float(i)) for i in range(10, 20)])
    view.stop()
    out = buf.getvalue()
    assert ESC in out  # a real terminal rendering
    assert "warming up replay buffer" in out
    for text in ("recent episodes", "energy GWh", "spill hm³", "failures", "e-flow days", "19.00", "1.23", "5.7",
                 "365"):
        assert text in out, text
    assert "5,000/10,000 frames" in out and "1,000 fps" in out and "ε 0.420" in out and "loss –" in out
    assert "eval return (validation) 7.50" in out  # the in-training evaluation runs on the validation episodes
    # only the 8 most recent episodes are shown: the final table starts at episode #5 (return 12.00)
    table = view.render().renderables[-1]
    assert table.row_count == 8
    assert list(table.columns[0].cells) == [str(i) for i in range(5, 13)]
    assert list(table.columns[1].cells)[0] == "12.00"
    view.stop()  # idempotent


def test_episode_rows_keep_the_numbers_of_a_resumed_run() -> None:
    """Rows numbered by the trainer (episodes since the run began) keep their numbers and the total."""
    view = LiveView(Console(file=io.StringIO(), force_terminal=True, width=120), clock=FakeClock())
    view.start(total_frames=10_000, start_frame=5_000)
    view.add_episodes([{**_episode(1.0), "index": 41.0}, {**_episode(2.0), "index": 42.0}])
    view.add_episodes([_episode(3.0)])  # unnumbered: the next number
    table = view.render().renderables[-1]
    assert list(table.columns[0].cells) == ["41", "42", "43"]
    assert table.title == "recent episodes (43 total)"
    view.stop()


def test_quiet_view_prints_nothing(capsys: pytest.CaptureFixture[str]) -> None:
    view = QuietView()
    view.start(100, 0)
    view.update(50, {"fps": 1.0})
    view.add_episodes([_episode(1.0)])
    view.message("hello")
    view.stop()
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err == ""
    assert make_view("quiet").__class__ is QuietView


def test_make_view_auto_follows_is_terminal() -> None:
    term = Console(file=io.StringIO(), force_terminal=True)
    pipe = Console(file=io.StringIO(), force_terminal=False)
    assert isinstance(make_view("auto", term), LiveView)
    assert isinstance(make_view("auto", pipe), PlainView)
    assert isinstance(make_view("live", pipe), LiveView)
    plain = make_view("plain", term, plain_every_seconds=3.0)
    assert isinstance(plain, PlainView) and plain.every_seconds == 3.0
    for view in (make_view("auto", term), make_view("plain", pipe), make_view("quiet")):
        assert isinstance(view, ProgressView)
    with pytest.raises(ValueError):
        make_view("fancy", pipe)


def test_live_view_without_columns_shows_the_rows_own_keys() -> None:
    buf = io.StringIO()
    view = LiveView(Console(file=buf, force_terminal=True, width=120), clock=FakeClock())
    view.start(total_frames=100, start_frame=0)
    view.add_episodes([_episode(2.5)])
    view.stop()
    out = buf.getvalue()
    assert "energy_gwh" in out and "spill_hm3" in out and "2.50" in out and "energy GWh" not in out


def test_live_view_fits_80_columns_without_splitting_a_number() -> None:
    """Large values on an 80-column terminal: every line fits, and every number is whole on one line."""
    buf = io.StringIO()
    console = Console(file=buf, force_terminal=True, width=80, color_system=None)
    clock = FakeClock()
    view = LiveView(console, clock=clock, episode_columns=LIVE_EPISODE_COLUMNS)
    view.start(total_frames=12_000_000, start_frame=0)
    clock.now += 100.0
    view.update(9_876_543, {"fps": 123456.0, "epsilon": 0.123, "loss": 1.234e-5, "lr": 1e-4,
                            "eval_return": -1234.56, "best_eval_return": -999.99})
    view.add_episodes([{"index": 123456, "return": -12345.67, "energy_gwh": 1234.56, "spill_hm3": 98765.4,
                        "failures": 1, "env_flow_deficit_days": 365, "length": 365}])
    console.print(view.render())
    lines = buf.getvalue().splitlines()
    assert max(len(line) for line in lines) <= 80
    for number in ("9,876,543/12,000,000", "123,456 fps", "1.23e-05", "1.00e-04", "-1,234.56", "-999.99",
                   "-12,345.67", "1,234.56", "98,765.4", "123,456", "e-flow days", "failures", "0.123"):
        assert any(number in line for line in lines), number
    assert "…" not in buf.getvalue()


def test_live_view_counts_failures_and_env_flow_days_in_their_own_columns() -> None:
    view = LiveView(Console(file=io.StringIO(), force_terminal=True, width=80), clock=FakeClock(),
                    episode_columns=LIVE_EPISODE_COLUMNS)
    view.start(total_frames=100, start_frame=0)
    view.add_episodes([{**_episode(1.0), "failures": 1, "env_flow_deficit_days": 17}])
    table = view.render().renderables[-1]
    cells = {column.header: list(column.cells) for column in table.columns}
    assert cells["failures"] == ["1"] and cells["e-flow days"] == ["17"]
    assert "violations" not in cells


def test_plain_view_prints_the_episode_table_periodically() -> None:
    """Piped output: every periodic line is followed by the episodes finished since the previous one."""
    console, buf = _plain_console()
    clock = FakeClock()
    view = PlainView(console, every_seconds=10.0, clock=clock, episode_columns=LIVE_EPISODE_COLUMNS)
    view.start(total_frames=100_000, start_frame=0)
    view.add_episodes([_episode(float(i)) for i in range(12)])
    clock.now += 10.0
    view.update(10_000, {})
    first = _records(buf.getvalue())
    assert first[3] == "episodes finished (last 8 of 12):"
    assert first[4].split() == ["#", "return", "energy", "GWh", "spill", "hm³", "failures", "e-flow", "days", "days"]
    assert [line.split()[:2] for line in first[5:]] == [[str(i + 1), f"{i:.2f}"] for i in range(4, 12)]
    view.add_episodes([_episode(99.0)])
    clock.now += 10.0
    view.update(20_000, {})
    second = _records(buf.getvalue())[len(first):]
    assert second[1] == "episodes finished (last 1 of 13):" and second[-1].split()[:2] == ["13", "99.00"]
    assert max(len(line) for line in buf.getvalue().splitlines()) <= 80


def test_both_views_show_the_guard_share_only_when_the_guard_runs() -> None:
    console, buf = _plain_console()
    view = PlainView(console, every_seconds=0.0, clock=FakeClock())
    view.start(total_frames=1_000, start_frame=0)
    view.update(10, {"fps": 10.0, "epsilon": 0.5, "loss": 1.0})
    assert "guard" not in _records(buf.getvalue())[-1]  # env.safety.enabled: false
    view.update(20, {"fps": 10.0, "epsilon": 0.5, "loss": 1.0, "guard_override_fraction": 0.125})
    assert "| guard 12.5% |" in _records(buf.getvalue())[-1]
    assert max(len(line) for line in buf.getvalue().splitlines()) <= 80
    live_buf = io.StringIO()
    live = LiveView(Console(file=live_buf, force_terminal=True, width=160), clock=FakeClock())
    live.start(total_frames=1_000, start_frame=0)
    live.update(20, {"fps": 10.0, "guard_override_fraction": 0.031})
    live.stop()
    assert "guard 3.1% of days" in live_buf.getvalue()


def test_live_view_fits_the_guard_share_in_80_columns() -> None:
    buf = io.StringIO()
    console = Console(file=buf, force_terminal=True, width=80, color_system=None)
    clock = FakeClock()
    view = LiveView(console, clock=clock, episode_columns=LIVE_EPISODE_COLUMNS)
    view.start(total_frames=12_000_000, start_frame=0)
    clock.now += 100.0
    view.update(9_876_543, {"fps": 123456.0, "epsilon": 0.123, "loss": 1.234e-5, "lr": 1e-4,
                            "guard_override_fraction": 0.0456})
    console.print(view.render())
    lines = buf.getvalue().splitlines()
    assert max(len(line) for line in lines) <= 80
    assert any("guard 4.6% of days" in line for line in lines)


def test_the_episode_table_is_laid_out_once_per_change_of_its_rows(monkeypatch) -> None:
    """Live redraws 4 times a second: the table of recent episodes is laid out again only when its rows (or
    the width) change, and what it shows is what a freshly built table shows."""
    from reservoir_rl.monitor import live

    built = []
    cells = live._cells
    monkeypatch.setattr(live, "_cells", lambda columns, row: built.append(row) or cells(columns, row))
    console = Console(file=io.StringIO(), force_terminal=True, width=100, color_system="truecolor")
    view = live.LiveView(console, episode_columns=LIVE_EPISODE_COLUMNS)
    row = {"index": 1.0, "return": 51.5, "energy_gwh": 300.0, "spill_hm3": 0.0, "failures": 0.0,
           "env_flow_deficit_days": 10.0, "length": 365.0}
    view._record_episodes([row])
    first = view._episode_table(100)
    assert view._episode_table(100) is first and len(built) == 1  # redrawn without a new layout
    view._record_episodes([{**row, "index": 2.0, "return": 77.25}])
    again = view._episode_table(100)
    assert again is not first and len(built) == 3  # both rows laid out anew
    text = Console(file=io.StringIO(), width=100)
    text.print(again)
    assert "77.25" in text.file.getvalue() and "recent episodes (2 total)" in text.file.getvalue()
    assert view._episode_table(60) is not again  # another width: laid out for it
