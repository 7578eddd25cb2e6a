"""What every part of the SQL store shares: the transaction and a few statement builders.

The store is one class (`sqlstore.SqlStore`) assembled from parts, one per concept
(`sql_staff.py`, `sql_pool.py`, ...), so that each part can be read alone.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from .engine import Tx

R = TypeVar("R")
# Keeps an IN (...) list far below SQLite's and PostgreSQL's parameter limits.
_CHUNK = 900
# On PostgreSQL a list longer than this goes as one array (SqlBase._chunked); a short
# one as placeholders, which cost less than an array for a few keys (~140 against ~200
# µs for four settings).
_SHORT = 32

DEVICE_COLUMNS = "id, rep_id, name, sign_public_key, box_public_key, state"


def with_limit(sql: str, params: Sequence[Any], limit: int | None) -> tuple[str, tuple[Any, ...]]:
    if limit is None:
        return sql, tuple(params)
    return sql + " LIMIT ?", (*params, limit)


def insert_row(tx: Tx, table: str, row: dict[str, Any]) -> None:
    tx.execute(insert_sql(table, tuple(row)), tuple(row.values()))


@functools.lru_cache(maxsize=256)
def insert_sql(table: str, cols: tuple[str, ...]) -> str:
    return f"INSERT INTO {table} ({', '.join(cols)}) VALUES ({', '.join('?' for _ in cols)})"


def update_row(tx: Tx, table: str, row: dict[str, Any]) -> None:
    cols = [k for k in row if k != "id"]
    tx.execute(f"UPDATE {table} SET {', '.join(f'{k}=?' for k in cols)} WHERE id=?",
               (*(row[k] for k in cols), row["id"]))


class SqlBase:
    """The transaction every part of the store runs in."""

    def __init__(self, tx: Tx) -> None:
        self.tx = tx

    def _in(self, sql: str, ids: list[str], extra: tuple[Any, ...] = ()) -> list[dict[str, Any]]:
        """`sql` has one `IN ({})` for the list, then `extra` params; run in bounded
        chunks (SQLite), or as one statement with the list as one array (PostgreSQL)."""
        return self._chunked(self.tx.rows, sql, ids, extra)

    def _in_tuples(self, sql: str, ids: list[str]) -> list[tuple[Any, ...]]:
        """`_in`, each row a plain tuple in the order of the query's columns."""
        return self._chunked(self.tx.tuples, sql, ids, ())

    def _chunked(self, read: Callable[[str, tuple[Any, ...]], list[R]], sql: str, ids: list[str],
                 extra: tuple[Any, ...]) -> list[R]:
        if self.tx.dialect == "postgresql" and len(ids) > _SHORT:
            # `= ANY(array)`: one short statement text whatever the list's length. 900
            # placeholders made a text psycopg does not cache and parses again on every
            # run (its query splitter was ~40% of a first sync's page reads, cProfile),
            # and each chunk was a round trip. The array goes as one text literal built
            # here (psycopg's list dumper checks each element with a regex); the lists
            # are of text keys (ids, hashes, setting names).
            return read(_any_sql(sql), (_text_array(ids), *extra))
        out: list[R] = []
        for i in range(0, len(ids), _CHUNK):
            chunk = ids[i : i + _CHUNK]
            out.extend(read(sql.format(",".join("?" for _ in chunk)), (*chunk, *extra)))
        return out


@functools.lru_cache(maxsize=256)
def _any_sql(sql: str) -> str:
    """An `IN ({})` template as PostgreSQL's `= ANY(?)` over one array parameter."""
    if sql.count("IN ({})") != 1:
        raise ValueError(f"expected one IN ({{}}) in {sql!r}")
    return sql.replace("IN ({})", "= ANY(?::text[])")


def _text_array(items: Sequence[str]) -> str:
    """A PostgreSQL text[] literal: every element quoted, its backslashes and double
    quotes escaped (so commas, braces, spaces and the word NULL stay text)."""
    return "{" + ",".join('"' + str(x).replace("\\", "\\\\").replace('"', '\\"') + '"'
                          for x in items) + "}"
