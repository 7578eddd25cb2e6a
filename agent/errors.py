"""The agent's refusal of a local operation (its own module: the store and the parts
mixed into it all raise it)."""

from __future__ import annotations


class StoreError(Exception):
    """A local operation was refused; the message says what to do."""
