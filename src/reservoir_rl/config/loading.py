"""YAML loading, ``--set`` overrides, validation into `Config` with one-line errors, and the plain-data form."""

from __future__ import annotations

import copy
import difflib
import os
import re
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from reservoir_rl.config.schema import Config
from reservoir_rl.errors import ConfigError


class _YamlLoader(yaml.SafeLoader):
    """Safe YAML loader that also reads ``1e-3`` and ``2e5`` as floats (YAML 1.2; PyYAML needs ``1.0e-3``)."""


def _construct_mapping_once(loader: yaml.SafeLoader, node: yaml.MappingNode, deep: bool = False) -> dict:
    """A mapping whose keys are all distinct: a repeated key (a second ``train:``) would silently replace the
    first, so it is an error at the line of the repetition (``<<`` merge keys may still be overridden)."""
    seen: dict[Any, int] = {}
    for key_node, _value in node.value:
        if key_node.tag == "tag:yaml.org,2002:merge":
            continue
        key = loader.construct_object(key_node, deep=deep)
        try:
            first = seen.get(key)
        except TypeError:  # an unhashable key: the constructor below reports it
            continue
        if first is not None:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r} (first given on line {first + 1})", key_node.start_mark
            )
        seen[key] = key_node.start_mark.line
    return yaml.SafeLoader.construct_mapping(loader, node, deep=deep)


_YamlLoader.construct_mapping = _construct_mapping_once  # type: ignore[method-assign]
_YamlLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
    list("-+0123456789"),
)


def _yaml_load(text: str) -> Any:
    return yaml.load(text, Loader=_YamlLoader)  # noqa: S506 - a SafeLoader subclass


def _known_keys(loc: tuple) -> list[str]:
    """Keys of the section at ``loc`` (a validation error location), or [] when it is not a section."""
    model: Any = Config
    for part in loc:
        field = model.model_fields.get(str(part)) if isinstance(model, type) and issubclass(model, BaseModel) else None
        if field is None:
            return []
        model = field.annotation
    return list(model.model_fields) if isinstance(model, type) and issubclass(model, BaseModel) else []


def _short_repr(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _format_error(source: str, error: ValidationError) -> str:
    first = error.errors()[0]
    loc = ".".join(str(part) for part in first["loc"])
    message = first["msg"].removeprefix("Value error, ")
    if first["type"] == "extra_forbidden":
        text = f"unknown key '{loc}' (= {_short_repr(first['input'])})"
        close = difflib.get_close_matches(str(first["loc"][-1]), _known_keys(first["loc"][:-1]), n=1)
        if close:
            text += f"; did you mean '{close[0]}'?"
    elif first["type"] == "model_type" and loc:
        text = f"{loc} = {_short_repr(first.get('input'))}: expected a section (a mapping of keys)"
    elif first["type"] == "model_type" or "input" not in first or not loc:
        text = f"{loc or '<top level>'}: {message}"
    elif isinstance(first["input"], dict) and first["type"] == "value_error":  # a check across a section's keys
        text = f"{loc}: {message}"
    else:
        text = f"{loc} = {_short_repr(first['input'])}: {message}"
    more = len(error.errors()) - 1
    return f"{source}: {text}" + (f" (and {more} more error{'s' if more > 1 else ''})" if more else "")


def parse_override(override: str) -> tuple[list[str], Any]:
    """Split ``section.key=value`` into its path and a YAML-typed value (``1e-3`` → float, ``[64, 64]`` → list)."""
    if "=" not in override:
        raise ConfigError(f"--set {override!r}: expected section.key=value")
    key, raw = override.split("=", 1)
    path = [part.strip() for part in key.strip().split(".")]
    if not key.strip() or any(not part for part in path):
        raise ConfigError(f"--set {override!r}: empty key")
    try:
        value = _yaml_load(raw) if raw.strip() else None
    except yaml.YAMLError:
        value = raw
    return path, value


def apply_overrides(raw: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Return a copy of ``raw`` with each ``section.key=value`` override applied (validation comes later)."""
    result = copy.deepcopy(raw)
    for override in overrides:
        path, value = parse_override(override)
        node = result
        for depth, part in enumerate(path[:-1]):
            child = node.get(part)
            if child is None:
                child = node[part] = {}
            if not isinstance(child, dict):
                raise ConfigError(f"--set {override!r}: '{'.'.join(path[: depth + 1])}' is not a section")
            node = child
        node[path[-1]] = value
    return result


def config_from_dict(raw: Any, source: str = "config") -> Config:
    """Validate a plain mapping; errors become one-line `ConfigError`s with the dotted path and bad value."""
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: the top level must be a mapping of sections, got {type(raw).__name__}")
    try:
        return Config.model_validate(raw)
    except ValidationError as error:
        raise ConfigError(_format_error(source, error)) from None


def read_yaml(path: str | Path) -> Any:
    """Read a YAML file; a missing file or a syntax error is a one-line `ConfigError`."""
    path = Path(path)
    if path.is_dir():
        raise ConfigError(f"{path}: is a directory, not a config file (give a YAML file, e.g. configs/base.yaml)")
    if path.exists() and not path.is_file():
        raise ConfigError(f"{path}: not a regular file (a device, FIFO or socket); give a YAML config file")
    if not path.is_file():
        raise ConfigError(f"{path}: config file not found")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigError(f"{path}: cannot read config file ({error.__class__.__name__})") from None
    try:
        return _yaml_load(text)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(error, "problem", None) or "invalid YAML"
        raise ConfigError(f"{path}:{where}: YAML syntax error: {problem}") from None


def load_config(path: str | Path, overrides: list[str] | None = None) -> Config:
    """Load a YAML config file, apply ``--set`` overrides, validate.

    An invalid value is reported against where it came from: the ``--set`` that gave it, or the file.

    A relative ``inflow.path`` written in the file is relative to the file's folder; one given with
    ``--set`` is relative to the working directory. Either way the returned config holds it absolute, so
    the run's saved config finds the record from any folder."""
    raw = read_yaml(path)
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: the top level must be a mapping of sections")
    inflow = raw.get("inflow")
    if isinstance(inflow, dict) and isinstance(inflow.get("path"), str) and inflow["path"]:
        raw = {**raw, "inflow": {**inflow, "path": _absolute(inflow["path"], Path(path).parent)}}
    overrides = list(overrides or [])
    try:
        config = Config.model_validate(apply_overrides(raw, overrides))
    except ValidationError as error:
        raise ConfigError(_format_error(_error_source(error, overrides, str(path)), error)) from None
    if config.inflow.path:
        config.inflow.path = _absolute(config.inflow.path, Path.cwd())
    return config


def _error_source(error: ValidationError, overrides: list[str], path: str) -> str:
    """``--set 'KEY=VALUE'`` when that override gave the invalid value (or, for a rule across a section's keys,
    set one of the keys the rule's message names), else ``path``: the file holds the value at fault."""
    first = error.errors()[0]
    loc = [str(part) for part in first["loc"]]
    touched = [(parse_override(o)[0], o) for o in reversed(overrides)]  # the last override of a key wins
    for key, override in touched:
        if key == loc[: len(key)]:  # the value itself, or a value inside it
            return f"--set {override!r}"
    if loc:
        for key, override in touched:
            if key[: len(loc)] == loc and re.search(rf"\b{re.escape(key[-1])}\b", first["msg"]):
                return f"--set {override!r}"
    return path


def _absolute(path: str, folder: Path) -> str:
    """``path`` (``~`` expanded) made absolute against ``folder`` when it is relative."""
    return os.path.abspath(Path(folder) / Path(path).expanduser())


def config_to_dict(config: Config) -> dict[str, Any]:
    """Plain-data form (lists, not tuples) for YAML files and checkpoints."""
    return config.model_dump(mode="json")


def dump_config(config: Config) -> str:
    return yaml.safe_dump(config_to_dict(config), sort_keys=False)
