"""The console's menu: each page module lists its entries (`MENU`), and a person sees
only those their role may use (the entry's action in rules/access.MATRIX)."""

from __future__ import annotations

from dataclasses import dataclass


def N_(message: str) -> str:
    """Marks a string for the catalogs; it is translated where it is shown."""
    return message


@dataclass(frozen=True)
class Entry:
    path: str  # under /console
    label: str  # English msgid (N_), translated at render time
    action: str  # the MATRIX action the page requires
    order: int = 100  # menu position, small first
