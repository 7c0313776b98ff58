"""Error types shared by every layer.

`UserError` marks a problem with what the user gave us (a file, a YAML key, a CLI value, a checkpoint).
The CLI prints its message as one line and exits non-zero without a traceback; anything else is a bug
and keeps its traceback.
"""

from __future__ import annotations


class UserError(Exception):
    """Bad input from the user; the message names what is wrong (file, row, key, value)."""


class ConfigError(UserError):
    """An invalid configuration value; the message carries the dotted path and the bad value."""


class InflowDataError(UserError):
    """An inflow file that cannot be used; the message names the file, row and column."""


class CheckpointError(UserError):
    """A file that is not a usable checkpoint of this program."""
