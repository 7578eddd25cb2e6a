"""Model ↔ database-row conversion with one canonical timestamp form."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from .clock import iso

if TYPE_CHECKING:  # only typed here: importing pydantic is left to whoever builds models
    from pydantic import BaseModel


def to_record(model: BaseModel, include: set[str] | None = None) -> dict[str, Any]:
    """Dump a model to plain values; datetimes become canonical UTC ISO strings."""
    out = model.model_dump(include=include)
    for key, value in out.items():
        if isinstance(value, datetime):
            out[key] = iso(value)
        elif hasattr(value, "value"):  # enums
            out[key] = value.value
    return out
