"""Model ↔ database-row conversion with one canonical timestamp form."""

from __future__ import annotations

from datetime import datetime
from enum import Enum
from typing import TYPE_CHECKING, Any

from .clock import iso

if TYPE_CHECKING:  # only typed here: importing pydantic is left to whoever builds models
    from pydantic import BaseModel


_PLAIN = frozenset({str, int, float, bool, type(None)})


def to_record(model: BaseModel, include: set[str] | None = None) -> dict[str, Any]:
    """Dump a model to plain values; datetimes become canonical UTC ISO strings."""
    if include is None:
        # A flat model (a visit, a card) read off its fields: what model_dump gives for
        # these types, without its walk (a push converts 1,000 visits). A field holding
        # another model or a list takes model_dump below.
        flat: dict[str, Any] = {}
        for key, value in model.__dict__.items():
            if type(value) in _PLAIN:
                flat[key] = value
            elif isinstance(value, datetime):
                flat[key] = iso(value)
            elif isinstance(value, Enum):
                flat[key] = value.value
            else:
                break
        else:
            return flat
    out = model.model_dump(include=include)
    for key, value in out.items():
        if isinstance(value, datetime):
            out[key] = iso(value)
        elif hasattr(value, "value"):  # enums
            out[key] = value.value
    return out
