"""Schedules in absolute frames: extending or resuming a run continues them instead of stretching them."""

from __future__ import annotations


def linear_schedule(frame: int, start: float, end: float, duration_frames: int) -> float:
    """``start`` at frame 0, ``end`` from ``duration_frames`` on, linear in between."""
    progress = min(max(frame, 0) / duration_frames, 1.0)
    return start + (end - start) * progress


def updates_due(frames: int, init_random_frames: int, updates_per_frame: float) -> int:
    """Total gradient updates owed after ``frames`` collected frames (none during the random warm-up)."""
    if frames < init_random_frames:
        return 0
    return int((frames - init_random_frames) * updates_per_frame)
