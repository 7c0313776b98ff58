"""Training progress display: a Rich live panel on terminals, rate-limited plain lines otherwise.

The trainer drives a :class:`ProgressView` with plain numbers only::

    view = make_view("auto")
    view.start(total_frames=200_000, start_frame=0)
    view.update(frames, {"fps": 1530.0, "epsilon": 0.76, "loss": 0.0123})
    view.add_episodes([{"return": -3.2, "energy_gwh": 1.9, "spill_hm3": 0.0, "violations": 2, "length": 365}])
    view.stop()

Missing keys and NaN values are shown as "–".
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Protocol, runtime_checkable

from rich.console import Console, Group
from rich.live import Live
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

__all__ = ["ProgressView", "LiveView", "PlainView", "QuietView", "make_view", "format_duration"]

DASH = "–"
RECENT_EPISODES = 8
MIN_RATE_SECONDS = 0.5  # no rate / ETA before this much time has passed (avoids absurd early values)
Clock = Callable[[], float]
Column = tuple[str, str, str]  # (row key, header, format spec or "int")


@runtime_checkable
class ProgressView(Protocol):
    """What a trainer needs from a progress display."""

    def start(self, total_frames: int, start_frame: int) -> None: ...

    def update(self, frames: int, stats: dict[str, float]) -> None: ...

    def add_episodes(self, rows: list[dict[str, float]]) -> None: ...

    def message(self, text: str) -> None: ...

    def stop(self) -> None: ...


def _num(value: object) -> float | None:
    """``value`` as a finite float, or None (missing, NaN, inf, not a number)."""
    try:
        x = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return x if math.isfinite(x) else None


def _fmt(value: object, spec: str) -> str:
    x = _num(value)
    return DASH if x is None else format(x, spec)


def _percent(value: object) -> float | None:
    """A share (0 … 1) in percent, or None when it is not a finite number."""
    x = _num(value)
    return None if x is None else 100.0 * x


def _fmt_int(value: object) -> str:
    x = _num(value)
    return DASH if x is None else f"{round(x):,d}"


def format_duration(seconds: float | None) -> str:
    """``125`` → ``"2m05s"``, ``3725`` → ``"1h02m"``, ``9`` → ``"9s"``; missing/NaN → ``"–"``."""
    s = _num(seconds)
    if s is None or s < 0:
        return DASH
    s = int(round(s))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{s % 3600 // 60:02d}m"


class _Tracker:
    """Shared state: frames, latest stats, recent episodes, rates measured since ``start``."""

    def __init__(self, clock: Clock | None = None, recent: int = RECENT_EPISODES) -> None:
        self._clock: Clock = clock or time.monotonic
        self.total_frames = 0
        self.start_frame = 0
        self.frames = 0
        self.stats: dict[str, float] = {}
        self.episodes: deque[dict[str, float]] = deque(maxlen=max(1, recent))
        self.n_episodes = 0
        self._t0: float | None = None

    def _begin(self, total_frames: int, start_frame: int) -> None:
        self.total_frames = max(0, int(total_frames))
        self.start_frame = self.frames = max(0, int(start_frame))
        self._t0 = self._clock()

    def _record(self, frames: int, stats: Mapping[str, float] | None) -> None:
        if self._t0 is None:  # tolerate update() without start()
            self._t0 = self._clock()
        self.frames = int(frames)
        self.stats = dict(stats or {})

    def _record_episodes(self, rows: Iterable[Mapping[str, float]]) -> None:
        """Rows may carry their own ``index`` (e.g. the episode number since the run began, so a
        resumed run keeps counting); otherwise they are numbered from 1 since ``start``."""
        for row in rows:
            self.n_episodes = max(self.n_episodes + 1, int(_num(row.get("index")) or 0))
            self.episodes.append({"index": float(self.n_episodes), **row})

    def elapsed(self) -> float:
        return 0.0 if self._t0 is None else max(0.0, self._clock() - self._t0)

    def rate(self) -> float | None:
        """Frames per second since ``start`` (frames before ``start_frame`` excluded)."""
        elapsed, done = self.elapsed(), self.frames - self.start_frame
        return done / elapsed if elapsed >= MIN_RATE_SECONDS and done > 0 else None

    def fps(self) -> float | None:
        fps = _num(self.stats.get("fps"))
        return fps if fps is not None else self.rate()

    def eta(self) -> float | None:
        rate = self.rate()
        return max(0, self.total_frames - self.frames) / rate if rate else None

    def fraction(self) -> float | None:
        return min(1.0, self.frames / self.total_frames) if self.total_frames > 0 else None

    def mean_return(self) -> float | None:
        values = [v for v in (_num(e.get("return")) for e in self.episodes) if v is not None]
        return sum(values) / len(values) if values else None

    def status_line(self) -> str:
        """One plain-text summary line (no markup, no ANSI)."""
        frac = self.fraction()
        parts = [
            f"frames {self.frames:,}/{self.total_frames:,} ({_fmt(None if frac is None else 100 * frac, '.1f')}%)",
            f"{_fmt(self.fps(), ',.0f')} fps",
            f"eps {_fmt(self.stats.get('epsilon'), '.2f')}",
            f"loss {_fmt(self.stats.get('loss'), '.3g')}",
            *([f"guard {_fmt(_percent(self.stats.get('guard_override_fraction')), '.1f')}%"]
              if "guard_override_fraction" in self.stats else []),
            f"ep return {_fmt(self.mean_return(), '.1f')} (last {len(self.episodes) or self.episodes.maxlen} mean)",
        ]
        if "eval_return" in self.stats or "best_eval_return" in self.stats:
            parts.append(f"eval {_fmt(self.stats.get('eval_return'), '.2f')} "
                         f"(best {_fmt(self.stats.get('best_eval_return'), '.2f')})")
        parts.append(f"eta {format_duration(self.eta())}")
        return " | ".join(parts)


class PlainView(_Tracker):
    """Plain, rate-limited lines for logs and pipes: no ANSI codes, no carriage returns.

    Prints at ``start``, at most once every ``every_seconds`` on ``update`` and always at ``stop``.
    ``clock`` (seconds, monotonic) is injectable for tests.
    """

    def __init__(self, console: Console | None = None, every_seconds: float = 10.0, clock: Clock | None = None,
                 recent: int = RECENT_EPISODES) -> None:
        super().__init__(clock, recent)
        self.console = console or Console()
        self.every_seconds = float(every_seconds)
        self._last_print: float | None = None
        self._stopped = False

    def _emit(self, line: str) -> None:
        self.console.out(line, highlight=False)  # low-level: no markup, wrapping or styling
        self._last_print = self._clock()

    def start(self, total_frames: int, start_frame: int = 0) -> None:
        self._begin(total_frames, start_frame)
        self._stopped = False
        resumed = f" (resuming at frame {self.start_frame:,})" if self.start_frame else ""
        self._emit(f"training {self.total_frames:,} frames{resumed}")
        self._emit(self.status_line())

    def update(self, frames: int, stats: dict[str, float]) -> None:
        self._record(frames, stats)
        if self._last_print is None or self._clock() - self._last_print >= self.every_seconds:
            self._emit(self.status_line())

    def add_episodes(self, rows: list[dict[str, float]]) -> None:
        self._record_episodes(rows)

    def message(self, text: str) -> None:
        self._emit(str(text))

    def stop(self) -> None:
        if not self._stopped:
            self._stopped = True
            self._emit(f"{self.status_line()} | elapsed {format_duration(self.elapsed())}")


class LiveView(_Tracker):
    """Rich live display refreshed in place: progress bar + stats above a table of recent episodes.

    ``stop()`` leaves the final state on screen. Messages print above the live area.
    """

    def __init__(self, console: Console | None = None, refresh_per_second: float = 4.0, clock: Clock | None = None,
                 recent: int = RECENT_EPISODES, episode_columns: Sequence[Column] | None = None) -> None:
        super().__init__(clock, recent)
        self.console = console or Console()
        self.episode_columns = tuple(episode_columns) if episode_columns is not None else None
        self._lock = threading.Lock()  # state is mutated by the trainer, rendered by Live's refresh thread
        self._live = Live(console=self.console, refresh_per_second=refresh_per_second, transient=False,
                          auto_refresh=True, redirect_stdout=False, redirect_stderr=False,
                          get_renderable=self._locked_render)
        self._running = False

    def _locked_render(self) -> Group:
        with self._lock:
            return self.render()

    def render(self) -> Group:
        """The current display (also usable without a running ``Live``)."""
        frac = self.fraction()
        bar = Table.grid(padding=(0, 1))
        bar.add_row(
            Text("training", style="bold cyan"),
            ProgressBar(total=max(1, self.total_frames), completed=min(self.frames, max(1, self.total_frames)),
                        width=30, pulse=frac is None),
            Text(f"{_fmt(None if frac is None else 100 * frac, '5.1f')}%"),
            Text(f"{self.frames:,}/{self.total_frames:,} frames"),
            Text(f"{_fmt(self.fps(), ',.0f')} fps", style="green"),
            Text(f"elapsed {format_duration(self.elapsed())}"),
            Text(f"eta {format_duration(self.eta())}", style="yellow"),
            Text(f"ε {_fmt(self.stats.get('epsilon'), '.3f')}"),
            Text(f"loss {_fmt(self.stats.get('loss'), '.3g')}"),
            *([Text(f"guard {_fmt(_percent(self.stats.get('guard_override_fraction')), '.1f')}% of days",
                    style="red")] if "guard_override_fraction" in self.stats else []),
        )
        parts: list[object] = [bar]
        if "eval_return" in self.stats or "best_eval_return" in self.stats:
            parts.append(Text(f"eval return (validation) {_fmt(self.stats.get('eval_return'), '.2f')} | "
                              f"best {_fmt(self.stats.get('best_eval_return'), '.2f')} | "
                              f"lr {_fmt(self.stats.get('lr'), '.2e')}", style="magenta"))
        table = Table(title=f"recent episodes ({self.n_episodes:,} total)", title_justify="left",
                      expand=False, header_style="bold")
        columns = self.episode_columns or tuple(
            (key, key, "int" if key == "index" else ",.2f") for key in (self.episodes[0] if self.episodes else ("index",))
        )
        for _, header, _ in columns:
            table.add_column(header, justify="right")
        for ep in self.episodes:
            table.add_row(*(_fmt_int(ep.get(key)) if spec == "int" else _fmt(ep.get(key), spec) for key, _, spec in columns))
        if not self.episodes:
            table.add_row(*(DASH for _ in columns))
        parts.append(table)
        return Group(*parts)  # type: ignore[arg-type]

    def start(self, total_frames: int, start_frame: int = 0) -> None:
        with self._lock:
            self._begin(total_frames, start_frame)
        if not self._running:
            self._live.start()
            self._running = True

    def update(self, frames: int, stats: dict[str, float]) -> None:  # cheap: rendering happens on refresh
        with self._lock:
            self._record(frames, stats)

    def add_episodes(self, rows: list[dict[str, float]]) -> None:
        with self._lock:
            self._record_episodes(rows)

    def message(self, text: str) -> None:
        self.console.print(str(text), markup=False, highlight=False)

    def stop(self) -> None:
        if self._running:
            self._live.stop()  # renders the final state
            self._running = False
            if not self.console.is_terminal:  # Rich leaves the final render unterminated on files/pipes
                self.console.line()


class QuietView:
    """Prints nothing at all (messages included); the caller reports the summary itself."""

    def start(self, total_frames: int, start_frame: int = 0) -> None:
        pass

    def update(self, frames: int, stats: dict[str, float]) -> None:
        pass

    def add_episodes(self, rows: list[dict[str, float]]) -> None:
        pass

    def message(self, text: str) -> None:
        pass

    def stop(self) -> None:
        pass


def make_view(mode: str = "auto", console: Console | None = None, plain_every_seconds: float = 10.0,
              episode_columns: Sequence[Column] | None = None) -> ProgressView:
    """View for ``mode`` in {"auto", "live", "plain", "quiet"}; "auto" = live on a terminal, else plain.

    ``episode_columns``: the live view's table of recent episodes, (row key, header, format) per column
    (format: a format spec such as ",.2f", or "int"); None shows the rows' own keys."""
    mode = mode.lower()
    if mode not in ("auto", "live", "plain", "quiet"):
        raise ValueError(f"progress mode must be one of auto, live, plain, quiet; got {mode!r}")
    if mode == "quiet":
        return QuietView()
    console = console or Console()
    if mode == "live" or (mode == "auto" and console.is_terminal):
        return LiveView(console, episode_columns=episode_columns)
    return PlainView(console, plain_every_seconds)
