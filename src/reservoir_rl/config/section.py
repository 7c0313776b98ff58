"""What every config section shares: unknown keys refused, assignments validated, no boolean read as a number;
and the rules that more than one section applies."""

from __future__ import annotations

import math
import types
import typing
from typing import Any, Optional

from pydantic import BaseModel, ConfigDict, ValidationInfo, field_validator

from reservoir_rl.units import DAYS_PER_YEAR


def _accepts_number_not_bool(annotation: Any) -> bool:
    """True for int / float fields (also inside Optional or a union) that do not also accept a bool."""
    if annotation is bool:
        return False
    if annotation in (int, float):
        return True
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        args = typing.get_args(annotation)
        return bool not in args and any(_accepts_number_not_bool(arg) for arg in args)
    return False


def days_of_year_increasing(days: list[int]) -> bool:
    """True when a day-of-year curve's days are non-empty, strictly increasing and within 0 … `DAYS_PER_YEAR`."""
    return bool(days) and all(b > a for a, b in zip(days, days[1:])) and days[0] >= 0 and days[-1] <= DAYS_PER_YEAR


FLOAT32_MAX = 3.4028234663852886e38
"""The largest float32: the env, the networks and the metrics compute in float32, where larger values are inf."""

SEED_LIMIT = 2**63
"""Seeds are whole numbers with 0 <= seed < SEED_LIMIT (what torch, numpy and the envs' generators all take)."""


def seed_problem(seed: Any) -> Optional[str]:
    """Why ``seed`` is not a usable seed (a whole number, 0 <= seed < 2**63), or None when it is."""
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < SEED_LIMIT:
        return "a seed must be a whole number with 0 <= seed < 2**63"
    return None


def unrepresentable_float(value: Any) -> Optional[float]:
    """The first float in ``value`` (a number, or lists / tuples of them) that is NaN, infinite, or beyond
    float32 (`FLOAT32_MAX`), or None when every one is usable."""
    if isinstance(value, float):
        return None if math.isfinite(value) and abs(value) <= FLOAT32_MAX else value
    if isinstance(value, (list, tuple)):
        for item in value:
            bad = unrepresentable_float(item)
            if bad is not None:
                return bad
    return None


DAYS_RANGE = f"0..{DAYS_PER_YEAR:g}"
"""The days a day-of-year curve may use, as error messages write them."""


class Section(BaseModel):
    """Base of every config section."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    @field_validator("*", mode="before")
    @classmethod
    def _no_bool_as_number(cls, value: Any, info: ValidationInfo) -> Any:
        # pydantic would read `true` as 1 in a number field: a wrong type, not a count
        if isinstance(value, bool) and _accepts_number_not_bool(cls.model_fields[info.field_name].annotation):
            raise ValueError(f"expected a number, got a boolean ({str(value).lower()})")
        return value

    @field_validator("*", mode="after")
    @classmethod
    def _finite_in_float32(cls, value: Any) -> Any:
        # every float of every section: NaN and inf (`.inf`, `.nan`) are refused, and so are values that are
        # finite in float64 but infinite in the float32 the env and the networks compute in (1.0e39)
        bad = unrepresentable_float(value)
        if bad is not None:
            if not math.isfinite(bad):
                raise ValueError(f"{bad!r} is not a finite number")
            raise ValueError(f"{bad!r} is beyond float32, where it would be infinite (|value| <= {FLOAT32_MAX:.4g})")
        return value
