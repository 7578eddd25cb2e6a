"""Field-by-field merge of a rep's card edit onto the archive's current card.

The rule: a field the rep changed is applied unless someone else changed that
same field since the rep's base revision and the values now differ; then the
server's value stands and the rep's value is reported as a conflict, so the
archive can record it (nothing a rep typed is lost).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class MergeOutcome:
    applied: dict[str, Any] = field(default_factory=dict)
    conflicts: dict[str, tuple[Any, Any]] = field(default_factory=dict)  # field -> (server, rep)


def changed_fields(before: Mapping[str, Any], after: Mapping[str, Any]) -> set[str]:
    """Names of fields whose value differs between two snapshots."""
    return {k for k in set(before) | set(after) if before.get(k) != after.get(k)}


def fields_changed_by_others(
    revisions: Iterable[tuple[Mapping[str, Any], Mapping[str, Any], bool]],
) -> set[str]:
    """Union of fields changed by revisions not made by the pushing device.

    `revisions` yields (before, after, same_device) for every revision after the
    base; a rep overwriting their own earlier offline edit is not a conflict.
    """
    fields: set[str] = set()
    for before, after, same_device in revisions:
        if not same_device:
            fields |= changed_fields(before, after)
    return fields


def merge_fields(
    current: Mapping[str, Any], changes: Mapping[str, Any], changed_since_base: set[str]
) -> MergeOutcome:
    """Merge `changes` (the rep's edited fields) onto `current` (the archive's card)."""
    applied: dict[str, Any] = {}
    conflicts: dict[str, tuple[Any, Any]] = {}
    for name, value in changes.items():
        if current.get(name) == value:
            continue
        if name in changed_since_base:
            conflicts[name] = (current.get(name), value)
        else:
            applied[name] = value
    return MergeOutcome(applied, conflicts)
