"""The ledger: append-only (enforced by SQLite triggers), hash-chained, log hashes verified;
verified read-only; anchored by an exported head and an optional keyed chain (HMAC)."""

from __future__ import annotations

import io
import itertools
import os
import re
import sqlite3
import subprocess
import sys
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path
from unittest.mock import patch

import pytest
from click.testing import CliRunner

from tierlock.runner import Ledger, sha256_file
from tierlock.runner._ledger_record import GENESIS, LedgerError, Record, canonical_json, record_mac
from tierlock.runner.cli import cli, main


def _fill(ledger: Ledger, logs: list[Path]) -> None:
    common = {"run_id": "r1", "campaign": "c", "model": "m"}
    tiers = [{"tier": "text-only", "approval_required": False}]
    ledger.append("run_started", **common, payload={"tiers": tiers})
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
    assert "ledger broken at record 3 (log_written): cited log run/log0.eval changed" in bad.output


def test_unknown_kind_is_refused(tmp_path: Path) -> None:
    with Ledger(tmp_path / "l.sqlite") as ledger, pytest.raises(ValueError, match="unknown"):
        ledger.append("verdict_v2", run_id="r", campaign="c", model="m")


# -- read-only verification (issue 17 item 2) -------------------------------------------------
def _snapshot(folder: Path) -> dict[str, str]:
    """Name -> SHA-256 of every file in `folder` (the database, its -wal and -shm included)."""
    return {p.name: sha256_file(p) for p in sorted(folder.iterdir()) if p.is_file()}


def test_verify_and_status_leave_the_database_untouched(tmp_path: Path, logs: list[Path]) -> None:
    path = tmp_path / "ledger.sqlite"
    with Ledger(path) as ledger:
        _fill(ledger, logs)
    before = _snapshot(tmp_path)
    assert set(before) == {"ledger.sqlite"}  # a clean close leaves no -wal/-shm
    with Ledger(path, readonly=True) as ledger:
        assert ledger.verify().ok and len(list(ledger.records())) == 4
    runner = CliRunner()
    for argv in (["verify"], ["verify", "--head"], ["status"]):
        res = runner.invoke(cli, [*argv, "--runs-dir", str(tmp_path)], standalone_mode=False)
        assert res.exception is None and res.return_value == 0, res.output
    assert _snapshot(tmp_path) == before  # no -wal/-shm created, nothing rewritten


def test_verify_after_a_crashed_writer_leaves_database_and_wal_untouched(
    tmp_path: Path, logs: list[Path]
) -> None:
    path = tmp_path / "ledger.sqlite"
    with Ledger(path) as ledger:
        _fill(ledger, logs)
    writer = (  # appends one record and dies without closing: its -wal stays behind
        "import os, sys; from tierlock.runner import Ledger; "
        "l = Ledger(sys.argv[1]); l.append('run_resumed', run_id='r1', campaign='c', model='m');"
        " os._exit(9)"
    )
    subprocess.run([sys.executable, "-c", writer, str(path)], check=False)
    before = _snapshot(tmp_path)
    assert {"ledger.sqlite", "ledger.sqlite-wal"} <= set(before)
    with Ledger(path, readonly=True) as ledger:
        res = ledger.verify()
    assert res.ok and res.records == 5  # the committed record in the -wal is seen
    after = _snapshot(tmp_path)
    assert after["ledger.sqlite"] == before["ledger.sqlite"]
    assert after["ledger.sqlite-wal"] == before["ledger.sqlite-wal"]


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (os.urandom(4096), "file is not a database"),
        (b"just some text\n" * 10, "file is not a database"),
        (None, "no records table"),  # an SQLite database of something else
        (b"", "no records table"),  # read-only; `run` starts a new ledger in an empty file
    ],
)
def test_a_file_that_is_not_a_ledger_is_one_error(
    tmp_path: Path, content: bytes | None, reason: str
) -> None:
    path = tmp_path / "ledger.sqlite"
    if content is None:
        db = sqlite3.connect(path)
        db.execute("CREATE TABLE t (x)")
        db.commit()
        db.close()
    else:
        path.write_bytes(content)
    before = path.read_bytes()
    for readonly in (True, False) if content != b"" else (True,):
        with pytest.raises(LedgerError, match=re.escape(reason)) as e:
            Ledger(path, readonly=readonly).close()
        assert str(e.value).startswith(f"{path}: ") or "ledger.sqlite: " in str(e.value)
    assert path.read_bytes() == before  # opening for writing did not turn it into a ledger


def test_a_truncated_ledger_file_is_an_error_not_a_traceback(
    tmp_path: Path, logs: list[Path]
) -> None:
    path = tmp_path / "ledger.sqlite"
    with Ledger(path) as ledger:
        for _ in range(30):
            _fill(ledger, logs)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with (
        pytest.raises(LedgerError, match=r"ledger\.sqlite: not a readable tierlock ledger"),
        Ledger(path, readonly=True) as ledger,
    ):
        ledger.verify()


def test_an_unparsable_row_is_a_break_naming_the_row(tmp_path: Path, logs: list[Path]) -> None:
    path = tmp_path / "ledger.sqlite"
    with Ledger(path) as ledger:
        _fill(ledger, logs)
    _tamper(path, "UPDATE records SET payload = 'not json' WHERE seq = 2")
    with Ledger(path, readonly=True) as ledger:
        res = ledger.verify()
        assert res.broken_seq == 2 and "record was altered" in res.problem
        with pytest.raises(LedgerError, match="record 2: payload or logs is not the JSON"):
            list(ledger.records())


# -- the anchor: heads (issue 17 item 3) -----------------------------------------------------
def _truncate(path: Path, keep: int) -> None:
    _tamper(path, f"DELETE FROM records WHERE seq > {keep}")


def _rechain(path: Path, key: bytes | None = None, edit: int = 4, strip: bool = False) -> None:
    """What an attacker with file access does: rewrite record `edit` and recompute every hash
    after it, so the chain links up again; the macs of changed records are made with `key`
    (the attacker's guess, or the real one), the others kept (all dropped when `strip`)."""
    with Ledger(path, readonly=True) as ledger:
        recs = list(ledger.records())
    db = sqlite3.connect(path)
    db.execute("DROP TRIGGER IF EXISTS records_no_update")
    db.execute("DROP TRIGGER IF EXISTS records_no_delete")
    prev = GENESIS
    for rec in recs:
        payload = {"outcome": "clean", "forged": True} if rec.seq == edit else rec.payload
        forged = Record(**{**rec.__dict__, "payload": payload, "prev_hash": prev, "hash": ""})
        digest = forged.computed_hash()
        mac = rec.mac if digest == rec.hash else None
        if digest != rec.hash and key is not None:
            mac = record_mac(key, digest)
        mac = None if strip else mac
        db.execute(
            "UPDATE records SET payload = ?, prev_hash = ?, hash = ?, mac = ? WHERE seq = ?",
            (canonical_json(payload), prev, digest, mac, rec.seq),
        )
        prev = digest
    db.commit()
    db.close()


def verify_cli(runs: Path, *args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    """`tierlock verify ARGS` through the console entry point: (exit code, stdout, stderr)."""
    argv = ["tierlock", "verify", *args, "--runs-dir", str(runs)]
    out, err = io.StringIO(), io.StringIO()
    clean = {k: v for k, v in os.environ.items() if not k.startswith("TIERLOCK_LEDGER_KEY")}
    with (
        patch.object(sys, "argv", argv),
        patch.dict(os.environ, {**clean, **(env or {})}, clear=True),
        redirect_stdout(out),
        redirect_stderr(err),
        pytest.raises(SystemExit) as exit_,
    ):
        main()
    return int(exit_.value.code or 0), out.getvalue(), err.getvalue()


def test_head_is_exported_and_checked(tmp_path: Path, logs: list[Path]) -> None:
    with Ledger(tmp_path / "ledger.sqlite") as ledger:
        _fill(ledger, logs)
        last = list(ledger.records())[-1]
    code, out, err = verify_cli(tmp_path, "--head")
    assert code == 0 and out.strip() == f"4:{last.hash}" and "ledger intact" in err
    for head in (f"4:{last.hash}", last.hash, last.hash.upper(), f"0:{GENESIS}"):
        code, out, err = verify_cli(tmp_path, "--expect-head", head)
        assert code == 0 and "holds the expected head" in out, err


def test_truncation_passes_the_chain_but_not_the_expected_head(
    tmp_path: Path, logs: list[Path]
) -> None:
    path = tmp_path / "ledger.sqlite"
    with Ledger(path) as ledger:
        _fill(ledger, logs)
        head = f"4:{list(ledger.records())[-1].hash}"
    _truncate(path, 2)
    assert verify_cli(tmp_path)[0] == 0  # the chain alone cannot tell (why the anchor exists)
    code, _, err = verify_cli(tmp_path, "--expect-head", head)
    assert code == 2
    assert "expected head 4:" in err and "the ledger ends at record 2 (truncated)" in err
    code, _, err = verify_cli(tmp_path, "--expect-head", head.partition(":")[2])
    assert code == 2 and "no record has the expected hash" in err


def test_rechained_ledger_without_key_is_caught_by_the_head(
    tmp_path: Path, logs: list[Path]
) -> None:
    path = tmp_path / "ledger.sqlite"
    with Ledger(path) as ledger:
        _fill(ledger, logs)
        head = f"4:{list(ledger.records())[-1].hash}"
    _rechain(path)
    assert verify_cli(tmp_path)[0] == 0  # consistent again: only the anchor can tell
    code, _, err = verify_cli(tmp_path, "--expect-head", head)
    assert code == 2 and "record 4 has hash" in err and "(the ledger was rewritten)" in err


@pytest.mark.parametrize("bad", ["xyz", "4:" + "a" * 63, "a" * 65, "-1:" + "a" * 64, "4:g" * 20])
def test_a_malformed_expected_head_is_a_user_error(
    tmp_path: Path, logs: list[Path], bad: str
) -> None:
    with Ledger(tmp_path / "ledger.sqlite") as ledger:
        _fill(ledger, logs)
    code, _, err = verify_cli(tmp_path, "--expect-head", bad)
    assert code == 1 and "expected HASH (64 hex digits) or SEQ:HASH" in err


# -- the keyed chain (issue 17 item 3) -------------------------------------------------------
KEY = b"k" * 32


@pytest.fixture
def key_file(tmp_path: Path) -> Path:
    p = tmp_path / "secrets" / "ledger.key"
    p.parent.mkdir()
    p.write_bytes(KEY + b"\n")  # a final newline is not part of the key
    return p


def _keyed(tmp_path: Path, logs: list[Path]) -> Path:
    runs = tmp_path / "runs"
    runs.mkdir()
    with Ledger(runs / "ledger.sqlite", key=KEY) as ledger:
        _fill(ledger, logs)
    return runs


def test_keyed_ledger_verifies_with_its_key_only(
    tmp_path: Path, logs: list[Path], key_file: Path
) -> None:
    runs = _keyed(tmp_path, logs)
    with Ledger(runs / "ledger.sqlite", readonly=True, key=KEY) as ledger:
        res = ledger.verify()
    assert res.verified and res.macs_checked == 4
    code, out, _ = verify_cli(runs, "--key-file", str(key_file))
    assert code == 0 and "4 macs checked" in out
    code, out, _ = verify_cli(runs, env={"TIERLOCK_LEDGER_KEY": KEY.decode()})
    assert code == 0 and "4 macs checked" in out
    code, out, err = verify_cli(runs)  # no key: not "ok"
    assert code == 3 and "macs could not be checked" in err and "ledger intact" not in out
    code, _, err = verify_cli(runs, env={"TIERLOCK_LEDGER_KEY": "another key, 16+ bytes"})
    assert code == 2 and "record 1 (run_started): mac does not match" in err


@pytest.mark.parametrize(
    ("forgery", "problem"),
    [
        ({"key": b"the attacker's own key!"}, "record 4 (verdict): mac does not match"),
        ({"key": None}, "record 4 (verdict): no mac, but records from 1 on are keyed"),
        ({"strip": True}, "record 1 (run_started): no mac, but a key was given"),
    ],
    ids=["wrong-key", "mac-dropped", "all-macs-stripped"],
)
def test_rechained_keyed_ledger_without_the_key_is_caught_by_the_mac(
    tmp_path: Path, logs: list[Path], key_file: Path, forgery: dict, problem: str
) -> None:
    runs = _keyed(tmp_path, logs)
    _rechain(runs / "ledger.sqlite", **forgery)
    code, _, err = verify_cli(runs, "--key-file", str(key_file))
    assert code == 2 and problem in err, err


def test_rechained_with_the_key_is_caught_only_by_the_head(
    tmp_path: Path, logs: list[Path], key_file: Path
) -> None:
    """Documented limit: whoever holds the key can re-chain; the recorded head still tells."""
    runs = _keyed(tmp_path, logs)
    with Ledger(runs / "ledger.sqlite", readonly=True) as ledger:
        head = f"4:{ledger.head()[1]}"
    _rechain(runs / "ledger.sqlite", key=KEY)
    assert verify_cli(runs, "--key-file", str(key_file))[0] == 0
    code, _, err = verify_cli(runs, "--key-file", str(key_file), "--expect-head", head)
    assert code == 2 and "record 4 has hash" in err


def test_keyed_and_unkeyed_records_do_not_mix(tmp_path: Path, logs: list[Path]) -> None:
    path = tmp_path / "ledger.sqlite"
    with Ledger(path) as ledger:
        _fill(ledger, logs)
    with Ledger(path, key=KEY) as ledger:
        with pytest.raises(LedgerError, match="started without a key"):
            ledger.check_key()
        with pytest.raises(LedgerError, match="started without a key"):
            ledger.append("run_resumed", run_id="r1", campaign="c", model="m")
    keyed = tmp_path / "keyed.sqlite"
    with Ledger(keyed, key=KEY) as ledger:
        _fill(ledger, logs)
    with Ledger(keyed) as ledger, pytest.raises(LedgerError, match="the ledger is keyed"):
        ledger.append("run_resumed", run_id="r1", campaign="c", model="m")
    # forged rows: a keyed record after unkeyed ones; a mac missing after keyed ones
    _tamper(path, f"UPDATE records SET mac = '{'0' * 64}' WHERE seq = 3")
    with Ledger(path, readonly=True) as ledger:
        res = ledger.verify()
    assert (res.broken_seq, res.problem) == (3, "a keyed record follows unkeyed ones")
    _tamper(keyed, "UPDATE records SET mac = NULL WHERE seq = 3")
    with Ledger(keyed, readonly=True, key=KEY) as ledger:
        res = ledger.verify()
    assert (res.broken_seq, res.problem) == (3, "no mac, but records from 1 on are keyed")


def test_a_ledger_from_before_macs_keeps_verifying_and_is_migrated(
    tmp_path: Path, logs: list[Path]
) -> None:
    path = tmp_path / "ledger.sqlite"
    with Ledger(path) as ledger:
        _fill(ledger, logs)
    db = sqlite3.connect(path)  # rebuild the table as it was before the mac column existed
    db.executescript(
        "DROP TRIGGER records_no_update; DROP TRIGGER records_no_delete;"
        "CREATE TABLE old AS SELECT seq, time, kind, run_id, campaign, model, tier, payload,"
        " logs, prev_hash, hash FROM records; DROP TABLE records; ALTER TABLE old RENAME TO records;"
    )
    db.close()
    with Ledger(path, readonly=True) as ledger:
        res = ledger.verify()
        assert res.verified and res.records == 4 and res.macs_checked == 0
    with Ledger(path) as ledger:  # opened for writing: the column is added, rows untouched
        ledger.append("run_resumed", run_id="r1", campaign="c", model="m")
        assert ledger.verify().verified
    cols = [r[1] for r in sqlite3.connect(path).execute("PRAGMA table_info(records)")]
    assert cols[-1] == "mac"
