"""A brand-new vault gets its whole schema at once (schema/migrations/agent_fresh.py,
issue 10): it must be exactly the vault the migrations make step by step, and a vault
that holds anything still goes through the migrations."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlite_utils import Database

from agent.store import SCHEMA_VERSION, open_vault
from schema.migrations import agent_fresh
from schema.migrations.agent import migrations

KEY = bytes(range(32))


def everything(conn: Any) -> dict[str, Any]:
    """Schema, every table's rows (FTS shadow tables included) and the migrations'
    record, but not when they were applied."""
    # sqlite_schema is compared without its root page numbers (where each B-tree lies).
    tables = [row[1] for row in conn.execute("PRAGMA table_list")
              if row[2] != "virtual" and row[1] != "sqlite_schema"]
    return {
        "master": sorted(conn.execute("SELECT type, name, tbl_name, sql FROM sqlite_master")),
        "table_list": sorted(conn.execute("PRAGMA table_list")),
        "rows": {t: sorted(conn.execute(f'SELECT * FROM "{t}"'), key=repr) for t in tables
                 if t != agent_fresh.MIGRATIONS_TABLE},
        "applied": conn.execute(
            f"SELECT id, migration_set, name FROM {agent_fresh.MIGRATIONS_TABLE}").fetchall(),
        "user_version": conn.execute("PRAGMA user_version").fetchone()[0],
    }


def test_a_fresh_vault_is_the_vault_the_migrations_make(tmp_path: Path) -> None:
    stepped = open_vault(tmp_path / "stepped.db", KEY)
    stepped.execute("PRAGMA recursive_triggers = on")
    migrations.apply(Database(stepped))
    stepped.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
    fresh = open_vault(tmp_path / "fresh.db", KEY)
    fresh.execute("PRAGMA recursive_triggers = on")
    assert agent_fresh.create(fresh, SCHEMA_VERSION)
    assert everything(fresh) == everything(stepped)
    # and the migrations find nothing left to do in it
    assert migrations.pending(Database(fresh)) == []


def test_the_generated_schema_follows_the_migrations() -> None:
    """After a new migration: `python -m schema.migrations.agent_fresh`."""
    assert agent_fresh.GENERATED.read_text(encoding="utf-8") == agent_fresh.generate()


def test_only_an_empty_vault_of_this_version_is_created_at_once(tmp_path: Path) -> None:
    conn = open_vault(tmp_path / "vault.db", KEY)
    conn.execute("CREATE TABLE state (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
    assert not agent_fresh.create(conn, SCHEMA_VERSION)  # holds something: migrations
    assert [r[0] for r in conn.execute("SELECT name FROM sqlite_master")] == ["state",
                                                                            "sqlite_autoindex_state_1"]
    empty = open_vault(tmp_path / "empty.db", KEY)
    assert not agent_fresh.create(empty, SCHEMA_VERSION + 1)  # another version's vault
    assert empty.execute("SELECT count(*) FROM sqlite_master").fetchone()[0] == 0
