"""`fieldvault visit import FILE.csv`: visits kept in a spreadsheet, logged as offline visits.

The header names visit fields (those of `fieldvault visit log`) plus `customer`, the
customer's id (or its first or last digits) or card number. Every row becomes a normal
offline visit with its outbox operation, all in one transaction: a file with one bad row imports nothing,
and the refusal names that row's line and field.
"""

from __future__ import annotations

import csv
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from schema.fields import VISIT_EDITABLE_FIELDS

from .errors import StoreError

if TYPE_CHECKING:
    from schema.models import VisitCreate

    from .store import Store

CUSTOMER = "customer"
COLUMNS = (CUSTOMER, *VISIT_EDITABLE_FIELDS)
TIMES = ("started_at", "ended_at", "next_at")
MAX_ROWS = 1_000_000  # bounds the read; far beyond any rep's history


class ImportRefused(StoreError):
    """The file, or one of its rows, cannot be imported; nothing was saved."""


def _local_time(value: str) -> str:
    """A spreadsheet's time without a zone is the laptop's local time; one with a zone
    (or not a time at all, for the model to refuse) is left as it is."""
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return value
    return parsed.astimezone().isoformat() if parsed.tzinfo is None else value


def _rows(path: Path) -> tuple[list[str], list[tuple[int, dict[str, str]]]]:
    """The header and each row with the line it starts on."""
    try:
        with path.open(encoding="utf-8-sig", newline="") as f:
            reader = csv.reader(f)
            header = [h.strip() for h in next(reader, [])]
            rows: list[tuple[int, dict[str, str]]] = []
            line = reader.line_num + 1
            for values in reader:
                if len(rows) >= MAX_ROWS:
                    raise ImportRefused(f"{path}: more than {MAX_ROWS} rows; split the file")
                if any(v.strip() for v in values):
                    if len(values) > len(header):
                        raise ImportRefused(f"line {line}: {len(values)} cells for "
                                            f"{len(header)} columns in the header")
                    rows.append((line, dict(zip(header, values, strict=False))))
                line = reader.line_num + 1
    except FileNotFoundError:
        raise ImportRefused(f"{path}: no such file") from None
    except (IsADirectoryError, PermissionError) as exc:
        raise ImportRefused(f"{path}: cannot read it ({exc.strerror})") from None
    except UnicodeDecodeError:
        raise ImportRefused(f"{path}: not UTF-8 text; save the spreadsheet as "
                            "\"CSV UTF-8\" and import that") from None
    except csv.Error as exc:
        raise ImportRefused(f"{path}: not a readable CSV file ({exc})") from None
    return header, rows


def _check_header(header: list[str]) -> None:
    unknown = [h for h in header if h not in COLUMNS]
    if unknown:
        raise ImportRefused(f"line 1: unknown column(s) {', '.join(map(repr, unknown))}; "
                            f"columns are {', '.join(COLUMNS)}")
    twice = sorted({h for h in header if header.count(h) > 1})
    if twice:
        raise ImportRefused(f"line 1: column(s) {', '.join(twice)} given twice")
    missing = [c for c in (CUSTOMER, "started_at", "purpose", "summary") if c not in header]
    if missing:
        raise ImportRefused(f"line 1: missing column(s) {', '.join(missing)}")


def _visit(store: Store, line: int, cells: dict[str, str]) -> VisitCreate:
    from pydantic import ValidationError

    from schema.models import VisitCreate

    ref = (cells.get(CUSTOMER) or "").strip()
    try:
        customer = store.get_customer(ref)
    except StoreError as exc:
        raise ImportRefused(f"line {line}, field customer: {exc}") from None
    # An empty cell is a field left out: its default, or a refusal if it is required.
    data: dict[str, Any] = {k: v for k, v in cells.items() if k != CUSTOMER and v.strip()}
    for key in TIMES:
        if key in data:
            data[key] = _local_time(data[key].strip())
    try:
        visit = VisitCreate.model_validate({**data, "customer_id": customer["id"]})
    except ValidationError as exc:
        err = exc.errors()[0]
        where = f"field {err['loc'][0]}" if err["loc"] else "row"
        raise ImportRefused(f"line {line}, {where}: {err['msg']}") from None
    try:
        from schema.clock import iso

        store.check_start(iso(visit.started_at))
    except StoreError as exc:
        raise ImportRefused(f"line {line}, field started_at: {exc}") from None
    return visit


def import_csv(store: Store, path: Path) -> int:
    """Log every row of `path` as an offline visit, in one transaction; returns how many.
    ImportRefused (nothing saved) names the first bad line and field."""
    header, rows = _rows(path)
    _check_header(header)
    if not rows:
        raise ImportRefused(f"{path}: no rows under the header; nothing to import")
    visits = [_visit(store, line, cells) for line, cells in rows]
    return len(store.log_visits(visits))
