"""Field rules shared by agent and server: lengths, text hygiene, phone shape.

Both sides validate with the same annotated types, so a record the agent
accepts locally is one the server will accept too.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated

from pydantic import AfterValidator, AwareDatetime, StringConstraints

NAME_MAX = 200
SHORT_MAX = 200
LONG_MAX = 4000
REASON_MAX = 500
PHONE_MAX = 40
MAX_OPS_PER_PUSH = 1000
MAX_BODY_BYTES = 8 * 1024 * 1024
PULL_PAGE_MAX = 5000
ID_PATTERN = r"^[A-Za-z0-9_-]{8,64}$"
# Every integer on the wire fits a JSON double exactly and SQLite's 64-bit integers.
MAX_WIRE_INT = 2**53
# Numbers in headers and cursors: ASCII digits only (str.isdigit() also accepts "²",
# which int() then refuses), and few enough to fit SQLite's 64-bit integers.
ASCII_INT = re.compile(r"[0-9]{1,18}")

# C0 controls other than tab/newline/carriage return, plus DEL and C1.
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
_PHONE = re.compile(r"^[0-9+()\-\s./x#*]*[0-9][0-9+()\-\s./x#*]*$")


def _no_controls(value: str) -> str:
    if _CONTROL.search(value):
        raise ValueError("must not contain control characters")
    return value


def _single_line(value: str) -> str:
    _no_controls(value)
    if "\n" in value or "\r" in value:
        raise ValueError("must be a single line")
    return value


def _phone(value: str) -> str:
    _single_line(value)  # the pattern's \s would let control characters through
    if value and not _PHONE.match(value):
        raise ValueError("must be digits with + ( ) - . / spaces only")
    return value


Name = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=NAME_MAX),
    AfterValidator(_single_line),
]
ShortText = Annotated[
    str, StringConstraints(strip_whitespace=True, max_length=SHORT_MAX), AfterValidator(_single_line)
]
LongText = Annotated[
    str, StringConstraints(strip_whitespace=True, max_length=LONG_MAX), AfterValidator(_no_controls)
]
RequiredLongText = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=LONG_MAX),
    AfterValidator(_no_controls),
]
Reason = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=REASON_MAX),
    AfterValidator(_no_controls),
]
Phone = Annotated[
    str, StringConstraints(strip_whitespace=True, max_length=PHONE_MAX), AfterValidator(_phone)
]
EntityId = Annotated[str, StringConstraints(pattern=ID_PATTERN)]


def _has_utc_form(value: datetime) -> datetime:
    """9999-12-31T23:59:59-14:00 is valid ISO but has no UTC form (astimezone overflows),
    and every time is stored and sent as UTC text."""
    if 1 < value.year < 9999:  # an offset is under a day: only the calendar's ends overflow
        return value
    try:
        value.astimezone(UTC)
    except OverflowError:
        raise ValueError("is out of range once converted to UTC") from None
    return value


# A time with its zone, that UTC can represent.
Time = Annotated[AwareDatetime, AfterValidator(_has_utc_form)]
