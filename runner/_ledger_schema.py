"""The ledger's SQLite schema: the records table, its append-only triggers, and migrations.

Hashes do not cover the schema, so a migration never changes what `verify` recomputes: older
ledgers get the nullable `mac` column (keyed chains) and a `kind` CHECK that knows today's kinds.
"""

from __future__ import annotations

import sqlite3

from ._ledger_record import KINDS

COLUMNS = "seq, time, kind, run_id, campaign, model, tier, payload, logs, prev_hash, hash"
PLACES = ",".join("?" * 12)

SCHEMA = f"""
CREATE TABLE IF NOT EXISTS records (
    seq INTEGER PRIMARY KEY,
    time TEXT NOT NULL,
    kind TEXT NOT NULL CHECK (kind IN ({", ".join(f"'{k}'" for k in KINDS)})),
    run_id TEXT NOT NULL,
    campaign TEXT NOT NULL,
    model TEXT NOT NULL,
    tier TEXT,
    payload TEXT NOT NULL,
    logs TEXT NOT NULL,
    prev_hash TEXT NOT NULL,
    hash TEXT NOT NULL UNIQUE,
    mac TEXT
);
CREATE INDEX IF NOT EXISTS records_run ON records (run_id, seq);
CREATE TRIGGER IF NOT EXISTS records_no_update BEFORE UPDATE ON records
BEGIN SELECT RAISE(ABORT, 'the ledger is append-only: records cannot be changed'); END;
CREATE TRIGGER IF NOT EXISTS records_no_delete BEFORE DELETE ON records
BEGIN SELECT RAISE(ABORT, 'the ledger is append-only: records cannot be deleted'); END;
"""


def add_mac_column(db: sqlite3.Connection) -> None:
    """Ledgers from before keyed chains get the (nullable) `mac` column; rows stay as they are."""
    db.execute("BEGIN IMMEDIATE")
    try:
        cols = {row[1] for row in db.execute("PRAGMA table_info(records)")}
        if "mac" not in cols:
            db.execute("ALTER TABLE records ADD COLUMN mac TEXT")
        db.execute("COMMIT")
    except BaseException:
        db.execute("ROLLBACK")
        raise


def widen_kinds(db: sqlite3.Connection) -> None:
    """A ledger whose `kind` CHECK predates a record kind is rebuilt with today's CHECK:
    the same rows (seq, hashes, macs) copied in one transaction, then the index and
    triggers recreated. Hashes do not cover the schema, so the chain verifies as before."""
    row = db.execute("SELECT sql FROM sqlite_master WHERE name = 'records'").fetchone()
    if row is None or all(f"'{k}'" in str(row[0]) for k in KINDS):
        return
    cols = [r[1] for r in db.execute("PRAGMA table_info(records)")]
    names = ", ".join(c for c in [*COLUMNS.split(", "), "mac"] if c in cols)
    db.execute("BEGIN IMMEDIATE")
    try:
        for trigger in ("records_no_update", "records_no_delete"):
            db.execute(f"DROP TRIGGER IF EXISTS {trigger}")
        db.execute("DROP INDEX IF EXISTS records_run")
        db.execute("ALTER TABLE records RENAME TO records_before_kinds")
        db.execute(SCHEMA.split(";\n", 1)[0])
        db.execute(f"INSERT INTO records ({names}) SELECT {names} FROM records_before_kinds")
        db.execute("DROP TABLE records_before_kinds")
        db.execute("COMMIT")
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.executescript(SCHEMA)  # index and triggers
