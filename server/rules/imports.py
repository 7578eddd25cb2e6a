"""Reading a CSV of customer cards: every row checked before anything is imported."""

from __future__ import annotations

import csv
from collections.abc import Callable
from pathlib import Path

from pydantic import ValidationError

from schema.models import CUSTOMER_EDITABLE_FIELDS, CustomerCreate

from ..archive.errors import ArchiveError


def read_cards_csv(path: Path, rep_exists: Callable[[str], object]
                   ) -> list[tuple[CustomerCreate, str | None]]:
    """The cards of a CSV whose header names card fields (and optionally `owner`).
    `rep_exists` raises ArchiveError for an unknown owner. Raises ArchiveError
    `invalid_csv` naming the file, line and field of the first problem."""
    return [(data, owner) for _, data, owner in read_numbered_cards_csv(path, rep_exists)]


def read_numbered_cards_csv(path: Path, rep_exists: Callable[[str], object]
                            ) -> list[tuple[int, CustomerCreate, str | None]]:
    """`read_cards_csv` with each card's line number, for refusals that name the line."""
    parsed: list[tuple[int, CustomerCreate, str | None]] = []
    try:
        with path.open(newline="", encoding="utf-8-sig") as fh:
            reader = csv.DictReader(fh, strict=True)  # strict: a stray quote is an error
            fields = set(reader.fieldnames or [])
            unknown = fields - set(CUSTOMER_EDITABLE_FIELDS) - {"owner"}
            if "name" not in fields:
                raise ArchiveError("invalid_csv", f"{path}: the header must have a `name` column")
            if unknown:
                raise ArchiveError("invalid_csv", f"{path}: unknown columns {sorted(unknown)}")
            for rec in reader:
                line = reader.line_num
                if None in rec:  # DictReader files surplus values under None
                    raise ArchiveError(
                        "invalid_csv", f"{path}:{line}: more values than the header has columns")
                owner = (rec.pop("owner", "") or "").strip() or None
                try:
                    data = CustomerCreate.model_validate(
                        {k: v for k, v in rec.items() if v not in (None, "")})
                except ValidationError as exc:
                    first = exc.errors()[0]
                    where = ".".join(str(p) for p in first["loc"])
                    raise ArchiveError("invalid_csv", f"{path}:{line}: {where}: {first['msg']}"
                                       ) from None
                if owner:
                    try:
                        rep_exists(owner)
                    except ArchiveError as exc:
                        raise ArchiveError("invalid_csv", f"{path}:{line}: owner: {exc.message}"
                                           ) from None
                parsed.append((line, data, owner))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise ArchiveError("invalid_csv", f"cannot read {path}: {exc}") from None
    return parsed
