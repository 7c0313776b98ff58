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


def _episode(ret: float) -> dict[str, float]:
    return {"return": ret, "energy_gwh": 1.234, "spill_hm3": 5.67, "violations": 3, "length": 365}


def test_format_duration() -> None:
    assert format_duration(9) == "9s"
    assert format_duration(123) == "2m03s"
    assert format_duration(3725) == "1h02m"
    assert format_duration(float("nan")) == "–"
    assert format_duration(None) == "–"


def test_plain_view_lines_rate_limit_and_eta() -> None:
    console, buf = _plain_console()
    clock = FakeClock()
    view = PlainView(console, every_seconds=10.0, clock=clock)
    view.start(total_frames=200_000, start_frame=0)
    after_start = buf.getvalue().splitlines()
    assert len(after_start) == 2 and "frames 0/200,000" in after_start[-1]

    clock.now += 1.0
    view.update(1_000, {"fps": 1000.0, "epsilon": 0.9, "loss": 0.5})  # within 10 s: suppressed
    assert buf.getvalue().splitlines() == after_start

    view.add_episodes([_episode(-3.0), _episode(-3.4)])
    clock.now += 9.0  # 10 s since the start line
    view.update(12_288, {"fps": 1530.0, "epsilon": 0.76, "loss": 0.0123})
    lines = buf.getvalue().splitlines()
    assert len(lines) == 3
    line = lines[-1]
    assert "frames 12,288/200,000 (6.1%)" in line
    assert "1,530 fps" in line and "eps 0.76" in line and "loss 0.0123" in line
    assert "ep return -3.2 (last 2 mean)" in line
    # eta from measured rate since start: 12,288 frames in 10 s -> 187,712 / 1228.8 = 152.8 s
    assert "eta 2m33s" in line

    clock.now += 3.0
    view.update(15_000, {"fps": 1500.0})
    assert len(buf.getvalue().splitlines()) == 3
    view.message("checkpoint saved")
    view.stop()
    out = buf.getvalue()
    lines = out.splitlines()
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
    line = buf.getvalue().splitlines()[-1]
    assert "eta 40s" in line and "1,000 fps" in line  # fps falls back to the measured rate


def test_plain_view_tolerates_missing_and_nan() -> None:
    console, buf = _plain_console()
    view = PlainView(console, every_seconds=0.0, clock=FakeClock())
    view.start(total_frames=1_000, start_frame=0)
    view.add_episodes([{"return": math.nan}])
    view.update(10, {"fps": math.nan, "epsilon": None, "eval_return": math.nan})  # type: ignore[dict-item]
    line = buf.getvalue().splitlines()[-1]
    assert "– fps" in line and "eps –" in line and "loss –" in line and "ep return –" in line
    assert "eval – (best –)" in line and "eta –" in line


def test_plain_view_long_line_is_not_wrapped() -> None:
    console, buf = _plain_console()
    view = PlainView(console, every_seconds=0.0, clock=FakeClock())
    view.start(total_frames=10**9, start_frame=0)
    view.update(10**8, {"fps": 123456.0, "epsilon": 0.5, "loss": 1.0, "eval_return": 1.0, "best_eval_return": 2.0})
    assert len(buf.getvalue().splitlines()[-1]) > 80


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
    for text in ("recent episodes", "energy (GWh)", "spill (hm³)", "violations", "19.00", "1.23", "5.7", "365"):
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
    assert "energy_gwh" in out and "spill_hm3" in out and "2.50" in out and "energy (GWh)" not in out


def test_both_views_show_the_guard_share_only_when_the_guard_runs() -> None:
    console, buf = _plain_console()
    view = PlainView(console, every_seconds=0.0, clock=FakeClock())
    view.start(total_frames=1_000, start_frame=0)
    view.update(10, {"fps": 10.0, "epsilon": 0.5, "loss": 1.0})
    assert "guard" not in buf.getvalue().splitlines()[-1]  # env.safety.enabled: false
    view.update(20, {"fps": 10.0, "epsilon": 0.5, "loss": 1.0, "guard_override_fraction": 0.125})
    assert "| guard 12.5% |" in buf.getvalue().splitlines()[-1]
    live_buf = io.StringIO()
    live = LiveView(Console(file=live_buf, force_terminal=True, width=160), clock=FakeClock())
    live.start(total_frames=1_000, start_frame=0)
    live.update(20, {"fps": 10.0, "guard_override_fraction": 0.031})
    live.stop()
    assert "guard 3.1% of days" in live_buf.getvalue()
