"""ORM row -> frozen record, by matching field names."""

from __future__ import annotations

import dataclasses
from typing import Any, TypeVar

T = TypeVar("T")


def to_record(record_type: type[T], row: Any) -> T:
    fields = dataclasses.fields(record_type)  # type: ignore[arg-type]
    return record_type(**{field.name: getattr(row, field.name) for field in fields})
