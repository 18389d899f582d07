"""The ledger's `series` record kind: a ledger written before it keeps verifying and accepts it."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from tierlock.runner import _ledger, _ledger_schema
from tierlock.runner._ledger import Ledger


def _old_ledger(path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A ledger whose CHECK lists the kinds before `series`, with two records."""
    old = _ledger_schema.SCHEMA.replace(", 'series'", "")
    assert old != _ledger_schema.SCHEMA
    db = sqlite3.connect(path, isolation_level=None)
    db.executescript(old)
    db.close()
    with monkeypatch.context() as m:
        m.setattr(_ledger, "widen_kinds", lambda db: None)
        with Ledger(path) as led:
            led.append("run_started", run_id="r", campaign="c", model="m", payload={"a": 1})
            led.append("run_finished", run_id="r", campaign="c", model="m", payload={"b": 2})
            with pytest.raises(sqlite3.IntegrityError, match="CHECK"):
                led.append("series", run_id="s", campaign="c", model="m")


def test_old_ledger_gains_the_series_kind_and_keeps_verifying(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "ledger.sqlite"
    _old_ledger(path, monkeypatch)
    with Ledger(path, readonly=True) as led:  # a reader never migrates
        assert led.verify(check_logs=True).ok
    before = [(r.seq, r.hash) for r in Ledger(path, readonly=True).records()]
    with Ledger(path) as led:
        rec = led.append("series", run_id="s", campaign="c", model="m", payload={"event": "x"})
        assert rec.seq == 3
        assert [(r.seq, r.hash) for r in led.records()][:2] == before
        assert led.verify(check_logs=True).ok
    db = sqlite3.connect(path, isolation_level=None)
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        db.execute("DELETE FROM records")
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        db.execute("UPDATE records SET kind = 'verdict'")
    with pytest.raises(sqlite3.IntegrityError, match="CHECK"):
        db.execute(
            "INSERT INTO records (seq, time, kind, run_id, campaign, model, payload, logs, "
            "prev_hash, hash) VALUES (9, 't', 'nonsense', 'r', 'c', 'm', '{}', '[]', 'p', 'h')"
        )
    names = {r[0] for r in db.execute("SELECT name FROM sqlite_master")}
    assert {"records", "records_run", "records_no_update", "records_no_delete"} <= names
    assert "records_before_kinds" not in names
