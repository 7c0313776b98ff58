"""Training progress display: a Rich live panel on terminals, rate-limited plain lines otherwise.

The trainer drives a :class:`ProgressView` with plain numbers only::

    view = make_view("auto")
    view.start(total_frames=200_000, start_frame=0)
    view.update(frames, {"fps": 1530.0, "epsilon": 0.76, "loss": 0.0123})
    view.add_episodes([{"return": -3.2, "energy_gwh": 1.9, "spill_hm3": 0.0, "failures": 0,
                        "env_flow_deficit_days": 2, "length": 365}])
    view.stop()

Missing keys and NaN values are shown as "–". Everything the views print fits the console's width (80
columns and more): the live panel flows its numbers into lines without splitting one, and its table of recent
episodes uses compact headers.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Protocol, runtime_checkable

from rich import box
from rich.console import Console, Group
from rich.live import Live
from rich.progress_bar import ProgressBar
from rich.segment import Segments
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


def _cells(columns: Sequence[Column], row: Mapping[str, float]) -> list[str]:
    return [_fmt_int(row.get(key)) if spec == "int" else _fmt(row.get(key), spec) for key, _, spec in columns]


def _default_columns(rows: Sequence[Mapping[str, float]]) -> tuple[Column, ...]:
    """The rows' own keys as columns (when no columns were given)."""
    keys = rows[0] if rows else ("index",)
    return tuple((key, key, "int" if key == "index" else ",.2f") for key in keys)


def flow_lines(chunks: Sequence[str], width: int, separator: str = "  ") -> list[str]:
    """``chunks`` joined by ``separator`` into lines of at most ``width`` characters (two fewer after the
    first, which a caller may indent), broken only between chunks: a number is never split across lines."""
    lines: list[str] = []
    for chunk in chunks:
        room = width - (2 if len(lines) > 1 else 0)
        if lines and len(lines[-1]) + len(separator) + len(chunk) <= room:
            lines[-1] += separator + chunk
        else:
            lines.append(chunk)
    return lines


def episode_table_lines(columns: Sequence[Column], rows: Sequence[Mapping[str, float]]) -> list[str]:
    """A plain-text table (header line, then one line per row; columns right-aligned, two spaces apart)."""
    body = [_cells(columns, row) for row in rows]
    widths = [max([len(header)] + [len(cells[i]) for cells in body]) for i, (_, header, _) in enumerate(columns)]
    def line(cells: Sequence[str]) -> str:
        return "  ".join(cell.rjust(w) for cell, w in zip(cells, widths))
    return [line([header for _, header, _ in columns]), *(line(cells) for cells in body)]


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
        return " | ".join(self.status_parts())

    def status_parts(self) -> list[str]:
        """The pieces of the summary line: progress, rate, ε, loss, episode returns, evaluation, ETA."""
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
        return parts


class PlainView(_Tracker):
    """Plain, rate-limited lines for logs and pipes: no ANSI codes, no carriage returns.

    Prints at ``start``, at most once every ``every_seconds`` on ``update`` and always at ``stop``; each
    periodic line is followed by the table of the episodes finished since the previous one (at most
    ``recent``, with a header: ``episode_columns`` as in `LiveView`). ``clock`` (seconds, monotonic) is
    injectable for tests.
    """

    def __init__(self, console: Console | None = None, every_seconds: float = 10.0, clock: Clock | None = None,
                 recent: int = RECENT_EPISODES, episode_columns: Sequence[Column] | None = None) -> None:
        super().__init__(clock, recent)
        self.console = console or Console()
        self.every_seconds = float(every_seconds)
        self.episode_columns = tuple(episode_columns) if episode_columns is not None else None
        self._new_episodes: deque[dict[str, float]] = deque(maxlen=max(1, recent))
        self._last_print: float | None = None
        self._stopped = False

    def _emit(self, line: str) -> None:
        self.console.out(line, highlight=False)  # low-level: no markup, wrapping or styling
        self._last_print = self._clock()

    def _emit_episodes(self) -> None:
        """The episodes finished since the last table (the newest ``recent`` of them), then none pending."""
        if not self._new_episodes:
            return
        rows = list(self._new_episodes)
        self._new_episodes.clear()
        shown = f"last {len(rows)} of {self.n_episodes:,}" if self.n_episodes > len(rows) else f"{len(rows)}"
        self._emit(f"episodes finished ({shown}):")
        for line in episode_table_lines(self.episode_columns or _default_columns(rows), rows):
            self._emit("    " + line)

    def _emit_status(self, *extra: str) -> None:
        """The summary as lines of at most the console's width (broken between its pieces; continuation
        lines indented by two spaces)."""
        lines = flow_lines([*self.status_parts(), *extra], max(20, self.console.width), " | ")
        for i, line in enumerate(lines):
            self._emit(("  " if i else "") + line)

    def start(self, total_frames: int, start_frame: int = 0) -> None:
        self._begin(total_frames, start_frame)
        self._stopped = False
        resumed = f" (resuming at frame {self.start_frame:,})" if self.start_frame else ""
        self._emit(f"training {self.total_frames:,} frames{resumed}")
        self._emit_status()

    def update(self, frames: int, stats: dict[str, float]) -> None:
        self._record(frames, stats)
        if self._last_print is None or self._clock() - self._last_print >= self.every_seconds:
            self._emit_status()
            self._emit_episodes()

    def add_episodes(self, rows: list[dict[str, float]]) -> None:
        before = self.n_episodes
        self._record_episodes(rows)
        self._new_episodes.extend(list(self.episodes)[-(self.n_episodes - before):] if self.n_episodes > before else [])

    def message(self, text: str) -> None:
        self._emit(str(text))

    def stop(self) -> None:
        if not self._stopped:
            self._stopped = True
            self._emit_episodes()
            self._emit_status(f"elapsed {format_duration(self.elapsed())}")


class LiveView(_Tracker):
    """Rich live display refreshed in place: progress bar + stats above a table of recent episodes.

    Every line fits the console's width: the statistics flow into as many lines as needed, broken only
    between two of them. ``stop()`` leaves the final state on screen. Messages print above the live area.
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
            return self.render(laid_out_table=True)

    @staticmethod
    def _flowed(chunks: Sequence[tuple[str, str]], width: int) -> list[Text]:
        """(text, style) chunks two spaces apart as lines of at most ``width`` cells, broken only between
        chunks (a number is never split; a chunk wider than ``width`` gets a line of its own)."""
        lines: list[Text] = []
        for text, style in chunks:
            if lines and lines[-1].cell_len + 2 + Text(text).cell_len <= width:
                lines[-1].append("  ")
                lines[-1].append(text, style=style)
            else:
                lines.append(Text(text, style=style))
        return lines

    def render(self, laid_out_table: bool = False) -> Group:
        """The current display (also usable without a running ``Live``); its last part is the table of recent
        episodes, a Rich ``Table`` or, with ``laid_out_table`` (what ``Live`` redraws), the same table already
        laid out (`_episode_table`)."""
        width = max(20, self.console.width)
        frac = self.fraction()
        percent = f"{_fmt(None if frac is None else 100 * frac, '5.1f')}%"
        frames = f"{self.frames:,}/{self.total_frames:,} frames"
        bar_width = max(10, min(30, width - len("training") - len(percent) - len(frames) - 3))
        bar = Table.grid(padding=(0, 1))
        cells: list[object] = [
            Text("training", style="bold cyan"),
            ProgressBar(total=max(1, self.total_frames), completed=min(self.frames, max(1, self.total_frames)),
                        width=bar_width, pulse=frac is None),
            Text(percent),
        ]
        fits = len("training") + bar_width + len(percent) + len(frames) + 3 <= width
        if fits:
            cells.append(Text(frames))
        bar.add_row(*cells)
        stats = [] if fits else [(frames, "")]
        stats += [
            (f"{_fmt(self.fps(), ',.0f')} fps", "green"),
            (f"elapsed {format_duration(self.elapsed())}", ""),
            (f"eta {format_duration(self.eta())}", "yellow"),
            (f"ε {_fmt(self.stats.get('epsilon'), '.3f')}", ""),
            (f"loss {_fmt(self.stats.get('loss'), '.3g')}", ""),
            (f"lr {_fmt(self.stats.get('lr'), '.2e')}", ""),
        ]
        if "guard_override_fraction" in self.stats:
            stats.append((f"guard {_fmt(_percent(self.stats.get('guard_override_fraction')), '.1f')}% of days", "red"))
        parts: list[object] = [bar, *self._flowed(stats, width)]
        if "eval_return" in self.stats or "best_eval_return" in self.stats:
            evaluation = [(f"eval return (validation) {_fmt(self.stats.get('eval_return'), ',.2f')}", "magenta"),
                          (f"best {_fmt(self.stats.get('best_eval_return'), ',.2f')}", "magenta")]
            parts += self._flowed(evaluation, width)
        parts.append(self._episode_table(width) if laid_out_table else self._episode_rich_table())
        return Group(*parts)  # type: ignore[arg-type]

    def _episode_rich_table(self) -> Table:
        table = Table(title=f"recent episodes ({self.n_episodes:,} total)", title_justify="left",
                      expand=False, header_style="bold", box=box.SIMPLE_HEAD, pad_edge=False)
        columns = self.episode_columns or _default_columns(list(self.episodes))
        for _, header, _ in columns:
            table.add_column(header, justify="right", no_wrap=True)
        for ep in self.episodes:
            table.add_row(*_cells(columns, ep))
        if not self.episodes:
            table.add_row(*(DASH for _ in columns))
        return table

    def _episode_table(self, width: int) -> Segments:
        """The table of recent episodes laid out (as segments) once per change of its rows or of the width:
        laying a Rich table out costs tens of milliseconds, and ``Live`` redraws 4 times a second in a thread
        that holds the interpreter while it renders (time the training loop would otherwise have)."""
        key = (self.n_episodes, width, tuple(tuple(ep.items()) for ep in self.episodes))
        cached = self.__dict__.get("_table_cache")
        if cached is None or cached[0] != key:
            lines = self.console.render_lines(self._episode_rich_table(), self.console.options.update_width(width),
                                              pad=False, new_lines=True)
            cached = self.__dict__["_table_cache"] = (key, Segments([segment for line in lines for segment in line]))
        return cached[1]

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

    ``episode_columns``: the table of recent episodes (live panel; periodic lines of the plain view), (row key, header, format) per column
    (format: a format spec such as ",.2f", or "int"); None shows the rows' own keys."""
    mode = mode.lower()
    if mode not in ("auto", "live", "plain", "quiet"):
        raise ValueError(f"progress mode must be one of auto, live, plain, quiet; got {mode!r}")
    if mode == "quiet":
        return QuietView()
    console = console or Console()
    if mode == "live" or (mode == "auto" and console.is_terminal):
        return LiveView(console, episode_columns=episode_columns)
    return PlainView(console, plain_every_seconds, episode_columns=episode_columns)
