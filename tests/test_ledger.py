"""The ledger: append-only (enforced by SQLite triggers), hash-chained, log hashes verified."""

from __future__ import annotations

import itertools
import sqlite3
from pathlib import Path

import pytest
from click.testing import CliRunner

from runner import Ledger, sha256_file
from runner._ledger import GENESIS
from runner.cli import cli


def _fill(ledger: Ledger, logs: list[Path]) -> None:
    common = {"run_id": "r1", "campaign": "c", "model": "m"}
    ledger.append("run_started", **common, payload={"tiers": ["text-only"]})
    ledger.append("tier_started", **common, tier="text-only", payload={"attempt": 1})
    ledger.append("log_written", **common, tier="text-only", payload={"task": "t"}, logs=logs[:1])
    ledger.append("verdict", **common, tier="text-only", payload={"outcome": "clean"}, logs=logs)


@pytest.fixture
def logs(tmp_path: Path) -> list[Path]:
    out = []
    for i in range(2):
        p = tmp_path / "run" / f"log{i}.eval"
        p.parent.mkdir(exist_ok=True)
        p.write_bytes(f"log {i}".encode())
        out.append(p)
    return out


def test_records_form_a_hash_chain(tmp_path: Path, logs: list[Path]) -> None:
    with Ledger(tmp_path / "ledger.sqlite") as ledger:
        _fill(ledger, logs)
        recs = list(ledger.records())
    assert [r.seq for r in recs] == [1, 2, 3, 4]
    assert recs[0].prev_hash == GENESIS
    for prev, rec in itertools.pairwise(recs):
        assert rec.prev_hash == prev.hash
    for rec in recs:
        assert rec.computed_hash() == rec.hash
    cited = recs[3].logs
    assert [c.path for c in cited] == ["run/log0.eval", "run/log1.eval"]  # relative to the ledger
    assert cited[0].sha256 == sha256_file(logs[0])


def test_update_and_delete_are_refused(tmp_path: Path, logs: list[Path]) -> None:
    with Ledger(tmp_path / "ledger.sqlite") as ledger:
        _fill(ledger, logs)
    db = sqlite3.connect(tmp_path / "ledger.sqlite")
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):
        db.execute("UPDATE records SET payload = '{}' WHERE seq = 2")
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):
        db.execute("DELETE FROM records WHERE seq = 4")
    assert db.execute("SELECT count(*) FROM records").fetchone()[0] == 4


def _tamper(path: Path, sql: str) -> None:
    """What an attacker with file access does: drop the triggers, then edit."""
    db = sqlite3.connect(path)
    db.execute("DROP TRIGGER records_no_update")
    db.execute("DROP TRIGGER records_no_delete")
    db.execute(sql)
    db.commit()
    db.close()


def test_verify_reports_an_edited_record(tmp_path: Path, logs: list[Path]) -> None:
    path = tmp_path / "ledger.sqlite"
    with Ledger(path) as ledger:
        _fill(ledger, logs)
        assert ledger.verify().ok
    _tamper(path, """UPDATE records SET payload = '{"outcome":"failed"}' WHERE seq = 4""")
    with Ledger(path) as ledger:
        res = ledger.verify()
    assert (res.broken_seq, res.problem) == (
        4,
        "content does not match its hash (record was altered)",
    )


def test_verify_reports_a_rehashed_record_at_the_next_link(
    tmp_path: Path, logs: list[Path]
) -> None:
    path = tmp_path / "ledger.sqlite"
    with Ledger(path) as ledger:
        _fill(ledger, logs)
        rec = next(r for r in ledger.records() if r.seq == 2)
    forged = type(rec)(**{**rec.__dict__, "payload": {"attempt": 9}})
    _tamper(
        path,
        f"""UPDATE records SET payload = '{{"attempt":9}}', hash = '{forged.computed_hash()}'
        WHERE seq = 2""",
    )
    with Ledger(path) as ledger:
        res = ledger.verify()
    assert res.broken_seq == 3 and "prev_hash" in res.problem


def test_verify_reports_a_deleted_record(tmp_path: Path, logs: list[Path]) -> None:
    path = tmp_path / "ledger.sqlite"
    with Ledger(path) as ledger:
        _fill(ledger, logs)
    _tamper(path, "DELETE FROM records WHERE seq = 2")
    with Ledger(path) as ledger:
        res = ledger.verify()
    assert (res.broken_seq, res.problem) == (3, "record 2 is missing")


def test_verify_reports_a_changed_or_missing_log(tmp_path: Path, logs: list[Path]) -> None:
    path = tmp_path / "ledger.sqlite"
    with Ledger(path) as ledger:
        _fill(ledger, logs)
        logs[1].write_bytes(b"rewritten")
        res = ledger.verify()
        assert (res.broken_seq, res.problem) == (
            4,
            "cited log run/log1.eval changed since it was recorded",
        )
        assert ledger.verify(check_logs=False).ok
        logs[0].unlink()
        res = ledger.verify()
        assert (res.broken_seq, res.problem) == (3, "cited log run/log0.eval is missing")


def test_verify_command_exit_codes(tmp_path: Path, logs: list[Path]) -> None:
    with Ledger(tmp_path / "ledger.sqlite") as ledger:
        _fill(ledger, logs)
    runner = CliRunner()
    ok = runner.invoke(cli, ["verify", "--runs-dir", str(tmp_path)], standalone_mode=False)
    assert ok.return_value == 0 and "ledger intact: 4 records, 3 log hashes checked" in ok.output
    logs[0].write_bytes(b"x")
    bad = runner.invoke(cli, ["verify", "--runs-dir", str(tmp_path)], standalone_mode=False)
    assert bad.return_value == 2
    assert "ledger broken at record 3: cited log run/log0.eval changed" in bad.output


def test_unknown_kind_is_refused(tmp_path: Path) -> None:
    with Ledger(tmp_path / "l.sqlite") as ledger, pytest.raises(ValueError, match="unknown"):
        ledger.append("verdict_v2", run_id="r", campaign="c", model="m")
