"""The store's named SQL and SQLite's translation of it (the statements are written once)."""

from __future__ import annotations

import re
import sqlite3
from importlib import resources

import pytest

from dip.store import queries
from dip.store.migrations import migrations
from dip.store.sqlite import statements, translate


def test_placeholders_lists_and_row_locks_become_sqlites() -> None:
    sql = ("SELECT t.a FROM unnest($2::text[]) AS l(c) CROSS JOIN t WHERE t.b = $1 AND t.c = l.c AND t.d > $1"
           " ORDER BY t.a LIMIT $3 FOR UPDATE SKIP LOCKED")
    assert translate(sql) == ("SELECT t.a FROM (SELECT value AS c FROM json_each(?2)) AS l CROSS JOIN t WHERE t.b = ?1"
                              " AND t.c = l.c AND t.d > ?1 ORDER BY t.a LIMIT ?3")
    assert translate("SELECT lease_owner FROM queues WHERE queue = $1 FOR UPDATE") == (
        "SELECT lease_owner FROM queues WHERE queue = ?1")


def test_column_types_become_sqlites_and_postgres_storage_settings_are_left_out() -> None:
    script = """-- a comment; with a semicolon
    CREATE TABLE t (id BIGSERIAL PRIMARY KEY, n BIGINT NOT NULL, ok BOOLEAN, body BYTEA, at TIMESTAMPTZ);
    ALTER TABLE t ALTER COLUMN body SET COMPRESSION lz4;
    CREATE INDEX t_n ON t (n);"""
    assert statements(script) == [
        "CREATE TABLE t (id INTEGER PRIMARY KEY AUTOINCREMENT, n INTEGER NOT NULL, ok INTEGER, body BLOB, at TEXT)",
        "CREATE INDEX t_n ON t (n)",
    ]


def test_the_file_parses_into_named_statements() -> None:
    parsed = queries.parse("-- name: one\n-- what it is\nSELECT 1;\n\n-- name: two\nSELECT\n  2;\n")
    assert parsed == {"one": "SELECT 1", "two": "SELECT\n  2"}
    with pytest.raises(ValueError, match="twice"):
        queries.parse("-- name: one\nSELECT 1;\n-- name: one\nSELECT 2;\n")


def test_an_unknown_query_name_is_an_error() -> None:
    q = queries.load(translate)
    with pytest.raises(AttributeError, match="no query named 'nope'"):
        q.nope  # noqa: B018


def _migrated_sqlite() -> sqlite3.Connection:
    conn = sqlite3.connect(":memory:")
    conn.execute(queries.load(translate).create_schema_migrations)
    for _, script in migrations("sqlite"):
        for statement in statements(script):
            conn.execute(statement)
    return conn


def test_sqlite_reads_a_list_parameter_as_the_outer_loop() -> None:
    """Each element of the list is one index probe; the other way round (every row of a table
    against the whole list) costs the table's size times the list's."""
    conn = _migrated_sqlite()
    q = queries.load(translate)
    listed = [name for name in q.names() if "json_each" in getattr(q, name)]
    assert len(listed) >= 6
    for name in listed:
        sql = getattr(q, name)
        marks = {int(m) for m in re.findall(r"\?(\d+)", sql)}
        plan = [row[3] for row in conn.execute(f"EXPLAIN QUERY PLAN {sql}", [None] * max(marks))]
        # (a count reads its subquery's rows: "SCAN s")
        loops = [step for step in plan if step.startswith(("SCAN", "SEARCH")) and step != "SCAN s"]
        if len(plan) > 1 and plan[1].startswith("LIST SUBQUERY"):
            # "... WHERE key IN (SELECT ... json_each ...)": the list is made first, then one
            # probe by key per element of it
            assert re.search(r"^SEARCH \w+ USING .*\(\w+=\?\)$", loops.pop(0)), (name, plan)
        assert loops[0].startswith("SCAN json_each"), (name, plan)
        assert all(step.startswith("SEARCH") for step in loops[1:]), (name, plan)


def test_every_statement_is_valid_sqlite_once_translated() -> None:
    """Each statement prepares against a migrated SQLite schema (a translation that left
    PostgreSQL syntax behind fails here rather than on some rarely used path)."""
    conn = sqlite3.connect(":memory:")
    q = queries.load(translate)
    conn.execute(q.create_schema_migrations)
    for _, script in migrations("sqlite"):
        for statement in statements(script):
            conn.execute(statement)
    for name in q.names():
        sql = getattr(q, name)
        if name == "appointment_conflict":  # a clause of a bulk upsert, not a statement
            sql = ("INSERT INTO mpan_appointments (mpan, role, effective_from, participant_id, effective_to, seq)"
                   f" VALUES (?1, ?2, ?3, ?4, ?5, ?6) {sql}")
        marks = {int(m) for m in re.findall(r"\?(\d+)", sql)}
        conn.execute(f"EXPLAIN {sql}", [None] * max(marks, default=0))


def test_the_store_runs_no_sql_outside_the_file() -> None:
    """Statements live in sql/queries.sql; the store module and the dialects hold none of their own
    beyond the dialects' primitives (COPY, temporary tables, pragmas, transaction control)."""
    source = resources.files("dip.store").joinpath("sql_store.py").read_text(encoding="utf-8")
    assert not re.search(r'"(SELECT|INSERT|UPDATE|DELETE) ', source)


# planned at every run (SqlStore.stored_messages reads through Database.dated, never the wide
# pool's kept plans), where a join was planned as a scan of the day's partition for each ID
PLANNED_EACH_RUN = {"stored_messages", "queue_originals_of"}


def test_list_parameters_are_joined_never_tested_with_any() -> None:
    """``= ANY($n)`` under a plan PostgreSQL cached while a table was small tests every row against
    the whole list, for ever after (docs/architecture.md, "Stores"): lists are joined (unnest),
    except in statements planned at every run."""
    for name, sql in queries.parse(
            resources.files("dip.store").joinpath("sql", "queries.sql").read_text(encoding="utf-8")).items():
        assert (name in PLANNED_EACH_RUN) == bool(re.search(r"ANY\s*\(", sql, re.IGNORECASE)), name


def test_each_selection_is_driven_by_the_index_it_is_named_for() -> None:
    """Replay reads a queue by time, or an MPAN's messages, or a list of IDs; once the driver has
    found a row, the others are probes by transaction ID, never a range of the queue."""
    conn = _migrated_sqlite()
    q = queries.load(translate)
    drivers = {"time": "deliveries_archive (queue=?", "mpan": "messages_mpan (mpan=?", "ids": "json_each"}
    for driver, index in drivers.items():
        names = {"time": ("queue_originals", "count_by_time"), "mpan": ("mpan_messages", "mpan_messages_at"),
                 "ids": ("selection_by_ids", "count_by_ids")}[driver]
        for name in names:
            sql = getattr(q, name)
            marks = {int(m) for m in re.findall(r"\?(\d+)", sql)}
            plan = [row[3] for row in conn.execute(f"EXPLAIN QUERY PLAN {sql}", [None] * max(marks))]
            loops = [step for step in plan if step.startswith(("SCAN", "SEARCH")) and step != "SCAN s"]
            assert index in loops[0], (name, plan)
            assert all("(transaction_id=?)" in step for step in loops[1:]), (name, plan)
