"""Bounds declared once, on a config dataclass's fields, and checked by both sides.

A frozen config (``GateConfig``, ``RetrainOptions``) declares each field's default and
bounds with :func:`bounded`; its ``__post_init__`` calls :func:`check_bounds`, and the
settings layer builds its pydantic fields from the same metadata (``bertbot.settings``), so
no default or bound is written twice.
"""

from __future__ import annotations

import dataclasses
import operator
from typing import Any

_BOUNDS = "bounds"
_CHECKS = {
    "ge": (operator.ge, ">="),
    "gt": (operator.gt, ">"),
    "le": (operator.le, "<="),
    "lt": (operator.lt, "<"),
}


def bounded(default: Any, **bounds: float) -> Any:
    """A dataclass field with a default and bounds (``ge``, ``gt``, ``le``, ``lt``)."""
    unknown = set(bounds) - set(_CHECKS)
    if unknown:
        raise TypeError(f"unknown bounds {sorted(unknown)}")
    return dataclasses.field(default=default, metadata={_BOUNDS: dict(bounds)})


def field_bounds(field: dataclasses.Field[Any]) -> dict[str, float]:
    """The bounds a field declares (empty when none)."""
    return dict(field.metadata.get(_BOUNDS, {}))


def check_bounds(instance: Any) -> None:
    """Raise ValueError naming the first field outside its declared bounds."""
    for field in dataclasses.fields(instance):
        value = getattr(instance, field.name)
        if value is None:
            continue
        for name, limit in field_bounds(field).items():
            compare, symbol = _CHECKS[name]
            if not compare(value, limit):
                raise ValueError(f"{field.name} must be {symbol} {limit} (got {value!r})")
