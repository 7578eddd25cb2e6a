"""Model ↔ database-row conversion with one canonical timestamp form."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel

from .clock import iso


def to_record(model: BaseModel, include: set[str] | None = None) -> dict[str, Any]:
    """Dump a model to plain values; datetimes become canonical UTC ISO strings."""
    out = model.model_dump(include=include)
    for key, value in out.items():
        if isinstance(value, datetime):
            out[key] = iso(value)
        elif hasattr(value, "value"):  # enums
            out[key] = value.value
    return out
