"""The search space of `tune`: config key paths, each with a distribution, read from a YAML file.

A space file is a mapping from a config key path (``section.key``, as ``--set`` takes it) to a distribution::

    train.lr: {type: float, low: 1.0e-4, high: 3.0e-3, log: true}
    train.batch_size: {type: categorical, choices: [32, 64, 128]}
    train.target_update_period: {type: int, low: 100, high: 2000, log: true}
    agent.hidden_sizes: {type: layers, width: [64, 128, 256], depth: [1, 3]}
    train.eps_decay_frames: {type: fraction, of: train.total_frames, low: 0.05, high: 0.5}

``float`` and ``int``: ``low`` ≤ value ≤ ``high`` (``log: true`` samples log-uniformly, ``step`` a grid).
``categorical``: one of ``choices`` (numbers, strings, booleans or null). ``layers``: a list of ``depth``
equal hidden widths (``agent.hidden_sizes``), the width one of ``width`` and the depth an integer in
``depth: [low, high]`` (two Optuna parameters, ``KEY.width`` and ``KEY.depth``). ``fraction``: an integer key
set to round(fraction × the config's value of ``of``), the fraction sampled in [``low``, ``high``] (Optuna
parameter ``KEY/OF``), so a space fits runs of any length. Every mistake is a one-line `ConfigError` that
names the file and the key; the sampled config itself is checked by the normal config validation.
"""

from __future__ import annotations

import difflib
import json
import math
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Optional, Protocol

from pydantic import BaseModel

from reservoir_rl.config import Config, read_yaml
from reservoir_rl.errors import ConfigError

DISTRIBUTIONS = ("float", "int", "categorical", "layers", "fraction")
# the keys each distribution takes (required, optional)
_FIELDS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "float": (("low", "high"), ("log", "step")),
    "int": (("low", "high"), ("log", "step")),
    "categorical": (("choices",), ()),
    "layers": (("width", "depth"), ()),
    "fraction": (("of", "low", "high"), ("log",)),
}


def default_space_path() -> Path:
    """The search space shipped with the package (``reservoir_rl/configs/tune_space.yaml``)."""
    return Path(str(resources.files("reservoir_rl") / "configs" / "tune_space.yaml"))


class Suggester(Protocol):
    """What a space needs of an Optuna trial (`optuna.trial.Trial`)."""

    def suggest_float(self, name: str, low: float, high: float, *, step: Optional[float] = None,
                      log: bool = False) -> float: ...

    def suggest_int(self, name: str, low: int, high: int, *, step: int = 1, log: bool = False) -> int: ...

    def suggest_categorical(self, name: str, choices: Any) -> Any: ...


@dataclass(frozen=True)
class Dimension:
    """One config key of the space and its distribution (see the module docstring)."""

    key: str  # config key path, e.g. "train.lr"
    kind: str  # one of DISTRIBUTIONS
    low: Any = None
    high: Any = None
    log: bool = False
    step: Any = None
    choices: tuple = ()
    of: str = ""  # fraction: the config key the fraction multiplies

    def value(self, trial: Suggester, config: Config) -> Any:
        """Sample this key's value from ``trial`` (the Optuna parameters are named after the key)."""
        if self.kind == "float":
            return trial.suggest_float(self.key, self.low, self.high, step=self.step, log=self.log)
        if self.kind == "int":
            return trial.suggest_int(self.key, self.low, self.high, step=self.step or 1, log=self.log)
        if self.kind == "categorical":
            return trial.suggest_categorical(self.key, list(self.choices))
        if self.kind == "layers":
            width = trial.suggest_categorical(f"{self.key}.width", list(self.choices))
            depth = trial.suggest_int(f"{self.key}.depth", self.low, self.high)
            return [int(width)] * int(depth)
        base = config_value(config, self.of)
        if isinstance(base, bool) or not isinstance(base, (int, float)):
            raise ConfigError(f"{self.key}: a fraction of '{self.of}' needs a number there, the config has {base!r}")
        fraction = trial.suggest_float(f"{self.key}/{self.of}", self.low, self.high, log=self.log)
        return max(1, round(fraction * base))


@dataclass(frozen=True)
class SearchSpace:
    """The dimensions of a space file, in the file's order."""

    source: str
    dimensions: tuple[Dimension, ...]

    def overrides(self, trial: Suggester, config: Config) -> list[str]:
        """One ``key=value`` override (as ``--set`` takes it) per dimension, sampled from ``trial``;
        ``config`` is the config the space is applied to (``fraction`` reads its ``of`` key there)."""
        return [f"{d.key}={json.dumps(d.value(trial, config))}" for d in self.dimensions]


def config_value(config: Config, key: str) -> Any:
    """The value at a dotted key path of ``config``."""
    node: Any = config
    for part in key.split("."):
        node = getattr(node, part)
    return node


def check_key(key: str, where: str) -> None:
    """A `ConfigError` unless ``key`` is a dotted path to a setting of `Config` (not a whole section)."""
    model: Any = Config
    parts = key.split(".")
    for depth, part in enumerate(parts):
        fields = model.model_fields if isinstance(model, type) and issubclass(model, BaseModel) else {}
        if part not in fields:
            close = difflib.get_close_matches(part, list(fields), n=1)
            prefix = ".".join(parts[:depth])
            hint = f"; did you mean '{'.'.join([*parts[:depth], close[0]])}'?" if close else ""
            what = f"section '{prefix}'" if prefix else "the config"
            raise ConfigError(f"{where}: '{key}' is not a config key ({what} has no '{part}'){hint}")
        model = fields[part].annotation
    if isinstance(model, type) and issubclass(model, BaseModel):
        raise ConfigError(f"{where}: '{key}' is a section; give one of its keys, e.g. '{key}.{next(iter(model.model_fields))}'")


def _number(value: Any, where: str, integer: bool) -> float | int:
    """A finite number (YAML reads ``1e-3`` as a string: it is accepted); ints stay ints."""
    if isinstance(value, bool):
        raise ConfigError(f"{where} = {value!r}: expected a number")
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            raise ConfigError(f"{where} = {value!r}: expected a number") from None
    if not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ConfigError(f"{where} = {value!r}: expected a finite number")
    if integer:
        if float(value) != int(value):
            raise ConfigError(f"{where} = {value!r}: expected an integer")
        return int(value)
    return float(value)


def _range(entry: dict, where: str, integer: bool, log: bool) -> tuple[Any, Any]:
    low = _number(entry["low"], f"{where}.low", integer)
    high = _number(entry["high"], f"{where}.high", integer)
    if low > high:
        raise ConfigError(f"{where}: low ({low}) is above high ({high})")
    if log and low <= 0:
        raise ConfigError(f"{where}: log: true needs low > 0, got {low}")
    return low, high


def _dimension(key: str, entry: Any, where: str, keys: set[str]) -> Dimension:
    """One entry of a space file checked and turned into a `Dimension`."""
    check_key(key, where.rsplit(":", 1)[0])
    if not isinstance(entry, dict):
        raise ConfigError(f"{where}: expected a mapping such as {{type: float, low: 0.9, high: 0.999}}, got {entry!r}")
    kind = entry.get("type")
    if kind not in DISTRIBUTIONS:
        raise ConfigError(f"{where}.type = {kind!r}: choose {', '.join(DISTRIBUTIONS)}")
    required, optional = _FIELDS[kind]
    missing = [name for name in required if name not in entry]
    if missing:
        raise ConfigError(f"{where}: a {kind} distribution needs {', '.join(missing)}")
    unknown = [name for name in entry if name not in ("type", *required, *optional)]
    if unknown:
        raise ConfigError(f"{where}: unknown field '{unknown[0]}' of a {kind} distribution "
                          f"(it takes {', '.join((*required, *optional))})")
    log = entry.get("log", False)
    if not isinstance(log, bool):
        raise ConfigError(f"{where}.log = {log!r}: expected true or false")
    if kind in ("float", "int"):
        low, high = _range(entry, where, kind == "int", log)
        step = entry.get("step")
        if step is not None:
            step = _number(step, f"{where}.step", kind == "int")
            if step <= 0 or log:
                raise ConfigError(f"{where}.step = {step}: needs step > 0 and no log: true")
        return Dimension(key, kind, low, high, log, step)
    if kind == "categorical":
        choices = entry["choices"]
        if not isinstance(choices, list) or not choices:
            raise ConfigError(f"{where}.choices: expected a non-empty list, got {choices!r}")
        if any(c is not None and not isinstance(c, (bool, int, float, str)) for c in choices):
            raise ConfigError(f"{where}.choices: each choice must be a number, a string, true/false or null")
        return Dimension(key, kind, choices=tuple(choices))
    if kind == "layers":
        width, depth = entry["width"], entry["depth"]
        if not isinstance(width, list) or not width or any(
            isinstance(w, bool) or not isinstance(w, int) or w < 1 for w in width
        ):
            raise ConfigError(f"{where}.width = {width!r}: expected a list of positive integers")
        if not isinstance(depth, list) or len(depth) != 2:
            raise ConfigError(f"{where}.depth = {depth!r}: expected [low, high], e.g. [1, 3]")
        low, high = _range({"low": depth[0], "high": depth[1]}, f"{where}.depth", True, False)
        if low < 1:
            raise ConfigError(f"{where}.depth = {depth!r}: at least one layer")
        return Dimension(key, kind, low, high, choices=tuple(width))
    of = entry["of"]
    if not isinstance(of, str):
        raise ConfigError(f"{where}.of = {of!r}: expected a config key path, e.g. train.total_frames")
    check_key(of, f"{where}.of")
    if of in keys:
        raise ConfigError(f"{where}.of = {of!r}: that key is itself in the space; give a fixed one")
    low, high = _range(entry, where, False, log)
    if low <= 0:
        raise ConfigError(f"{where}: a fraction needs low > 0, got {low}")
    return Dimension(key, kind, low, high, log, of=of)


def parse_space(raw: Any, source: str) -> SearchSpace:
    """Check a space file's content (see the module docstring) and return its `SearchSpace`."""
    if not isinstance(raw, dict) or not raw:
        raise ConfigError(f"{source}: expected a mapping of config keys to distributions, e.g. "
                          "'train.lr: {type: float, low: 1.0e-4, high: 3.0e-3, log: true}'")
    keys = {str(key) for key in raw}
    dimensions = tuple(_dimension(str(key), entry, f"{source}: {key}", keys) for key, entry in raw.items())
    return SearchSpace(source, dimensions)


def load_space(path: Optional[str | Path] = None) -> SearchSpace:
    """Read and check a space file (None: the shipped `default_space_path`)."""
    path = Path(path) if path is not None else default_space_path()
    if not path.exists():
        raise ConfigError(f"{path}: search space file not found")
    return parse_space(read_yaml(path), str(path))
