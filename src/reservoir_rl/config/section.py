"""What every config section shares: unknown keys refused, assignments validated, no boolean read as a number;
and the rules that more than one section applies."""

from __future__ import annotations

import types
import typing
from typing import Any

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
