"""Duplicate cards: the same customer entered twice, by phone number or by name.

"Who develops, serves" (谁开发谁服务): the first card's owner keeps the customer.
A second card is refused on the admin paths (add, import, distribution), and a
rep's offline card is held in quarantine with the existing card named, so the
rep sees why. Every card carries its keys (customers.phone_key, name_key),
written with each insert and edit (rules/cards.py), so the check is one indexed
lookup.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Mapping
from typing import Any

from ..archive.errors import Conflict
from ..archive.store import Store

_NOT_DIGIT = re.compile(r"\D")
# Fewer digits than this is an extension or a typo, not a number two customers
# could share by chance: such a phone is not used to match.
_MIN_PHONE_DIGITS = 6
# Letters and digits make a name; spaces, punctuation, symbols and control
# characters do not ("Acme, Ltd." and "ACME Ltd" are one customer).
_DROPPED = ("P", "Z", "S", "C")


def phone_key(phone: str | None) -> str:
    """Digits only, without a leading 86/0086 country code. Within China a landline
    is dialled with its trunk 0 (021-6322 4580), from abroad without it (+86 21 6322
    4580): the 0 is put back, so both forms give one key. '' when too short to match."""
    digits = _NOT_DIGIT.sub("", phone or "")
    national = None
    if digits.startswith("0086"):
        national = digits[4:]
    elif digits.startswith("86") and len(digits) > 11:  # 86 + a mobile (11) or landline
        national = digits[2:]
    if national is not None:
        digits = national if national.startswith(("0", "1")) else "0" + national
    return digits if len(digits) >= _MIN_PHONE_DIGITS else ""


def name_key(name: str | None) -> str:
    """NFKC (full-width forms become plain), case-folded, without whitespace,
    punctuation or symbols."""
    text = unicodedata.normalize("NFKC", name or "").casefold()
    return "".join(ch for ch in text if unicodedata.category(ch)[0] not in _DROPPED)


def keys_of(card: Mapping[str, Any]) -> dict[str, str]:
    """The duplicate keys of a card (a row or a card's fields)."""
    return {"name_key": name_key(card.get("name")), "phone_key": phone_key(card.get("phone"))}


def find(store: Store, card: Mapping[str, Any],
         without: str | None = None) -> tuple[dict[str, Any], str] | None:
    """The first existing card (by card number) that `card` duplicates, and what they
    share ("phone" or "name"); None when there is none. `without`: a card id to ignore."""
    keys = keys_of(card)
    for row in store.customers_by_keys(keys["phone_key"], keys["name_key"]):
        if row["id"] == without:
            continue
        return row, "phone" if keys["phone_key"] and row["phone_key"] == keys["phone_key"] else "name"
    return None


def describe(store: Store, existing: dict[str, Any], what: str) -> str:
    """"same phone as FV000012, owned by 李伟" (or "in the pool (公海)")."""
    owner = existing["owner_rep_id"]
    if owner is None:
        whose = "in the pool (公海): claim it instead"
    else:
        rep = store.rep(owner)
        whose = f"owned by {rep['name'] if rep else owner}"
    return f"same {what} as {existing['card_no']}, {whose}"


def quarantine_reason(store: Store, existing: dict[str, Any], what: str) -> str:
    """Why a rep's new card is held: the existing card, its owner, and the rule."""
    return (f"{describe(store, existing, what)}: who develops, serves — "
            "the first owner keeps the customer")


def refuse(store: Store, card: Mapping[str, Any], where: str = "") -> None:
    """Conflict `duplicate_customer` naming the existing card and its owner (`where`:
    e.g. "line 4: " of an import)."""
    found = find(store, card)
    if found is not None:
        raise Conflict("duplicate_customer", f"{where}{describe(store, *found)}: "
                       "the first owner keeps the customer; nothing was added")


def refuse_batch(store: Store, cards: Iterable[tuple[str, Mapping[str, Any]]]) -> None:
    """Refuse a batch of new cards (label, fields) when any duplicates a stored card or
    an earlier card of the same batch, naming the first such label. Writes nothing."""
    seen: dict[tuple[str, str], str] = {}  # (what, key) -> label of the batch's card
    for label, card in cards:
        refuse(store, card, f"{label}: ")
        keys = keys_of(card)
        mine = [(what, keys[f"{what}_key"]) for what in ("phone", "name") if keys[f"{what}_key"]]
        for pair in mine:
            if pair in seen:
                raise Conflict("duplicate_customer", f"{label}: same {pair[0]} as {seen[pair]} "
                               "of this batch; nothing was added")
        seen.update(dict.fromkeys(mine, label))


# Set once every card stored before the keys existed has them: opening the archive
# then costs one meta read.
BACKFILLED = "duplicate_keys_backfilled"


def backfill(store: Store, batch: int = 500) -> int:
    """Give cards stored before the keys existed their keys, once; returns how many.
    Cards are read in id order, one bounded batch at a time."""
    if store.meta(BACKFILLED) == "1":
        return 0
    done, after = 0, ""
    for _ in range(10**9):
        rows = store.customers_missing_keys(after, batch)
        if not rows:
            break
        for row in rows:
            keys = keys_of(row)
            store.set_customer_keys(row["id"], keys["name_key"], keys["phone_key"])
        done += len(rows)
        after = rows[-1]["id"]
    store.set_meta(BACKFILLED, "1")
    return done
