"""Anchors outside the ledger (issue 17 items 2-3): where the key may come from, and the
commands that trust the ledger (status, approve, audit --ledger) verifying it first."""

from __future__ import annotations

import io
import os
import sqlite3
import sys
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path
from unittest.mock import patch

import pytest

from tierlock.runner import Ledger
from tierlock.runner._anchor import Head, ledger_key, parse_head
from tierlock.runner.cli import main
from tierlock.sandbox import TierlockError

KEY = "a ledger key of more than sixteen bytes"


def tierlock(*argv: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    clean = {k: v for k, v in os.environ.items() if not k.startswith("TIERLOCK_LEDGER_KEY")}
    with (
        patch.object(sys, "argv", ["tierlock", *argv]),
        patch.dict(os.environ, {**clean, **(env or {})}, clear=True),
        redirect_stdout(out),
        redirect_stderr(err),
        pytest.raises(SystemExit) as exit_,
    ):
        main()
    return int(exit_.value.code or 0), out.getvalue(), err.getvalue()


def test_key_sources_and_precedence(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    f = tmp_path / "k1"
    f.write_text("file key, long enough\n")
    g = tmp_path / "k2"
    g.write_text("env file key, long enough")
    assert ledger_key(None, runs, env={}) is None
    assert ledger_key(None, runs, env={"TIERLOCK_LEDGER_KEY": KEY}) == KEY.encode()
    assert ledger_key(None, runs, env={"TIERLOCK_LEDGER_KEY_FILE": str(g)}) == g.read_bytes()
    both = {"TIERLOCK_LEDGER_KEY_FILE": str(g), "TIERLOCK_LEDGER_KEY": KEY}
    assert ledger_key(f, runs, env=both) == b"file key, long enough"  # the option wins
    with pytest.raises(TierlockError, match="not both"):
        ledger_key(None, runs, env=both)


@pytest.mark.parametrize(
    ("where", "message"),
    [
        ("runs/ledger.key", "inside the runs directory"),
        ("runs/sub/../ledger.key", "inside the runs directory"),
        ("link-into-runs", "inside the runs directory"),  # a symlink is followed
        ("short.key", "shorter than 16 bytes"),
        ("missing.key", "cannot read the ledger key file"),
        ("fifo", "not a regular file"),  # would block a reader forever
        ("/dev/zero", "not a regular file"),
        ("big.key", "larger than 64 KiB"),
    ],
)
def test_unusable_key_files_are_refused(tmp_path: Path, where: str, message: str) -> None:
    runs = tmp_path / "runs"
    (runs / "sub").mkdir(parents=True)
    (runs / "ledger.key").write_text(KEY)
    (tmp_path / "link-into-runs").symlink_to(runs / "ledger.key")
    (tmp_path / "short.key").write_text("short\n")
    (tmp_path / "big.key").write_bytes(b"k" * (65 * 1024))
    os.mkfifo(tmp_path / "fifo")
    _ledger(runs)
    path = Path(where) if where.startswith("/") else tmp_path / where
    with pytest.raises(TierlockError, match=message):
        ledger_key(path, runs, env={})
    code, _, err = tierlock("verify", "--runs-dir", str(runs), "--key-file", str(path))
    assert code == 1 and message in err and "Traceback" not in err


def test_parse_head() -> None:
    h = "ab" * 32
    assert parse_head(f"12:{h}") == Head(12, h)
    assert parse_head(h.upper()) == Head(None, h)
    assert str(Head(3, h)) == f"3:{h}"
    for bad in ("", "12:", f"x:{h}", f"{h}0", f"1:2:{h}", " " * 100):
        with pytest.raises(TierlockError, match="--expect-head"):
            parse_head(bad)


def _ledger(runs: Path, key: bytes | None = None) -> None:
    common = {"run_id": "r1", "campaign": "c", "model": "m"}
    tiers = [{"tier": "text-only", "approval_required": False},
             {"tier": "tool-restricted", "approval_required": True}]  # fmt: skip
    with Ledger(runs / "ledger.sqlite", key=key) as ledger:
        ledger.append("run_started", **common, payload={"tiers": tiers})
        ledger.append("verdict", **common, tier="text-only", payload={"outcome": "clean"})
        ledger.append("awaiting_approval", **common, tier="tool-restricted", payload={})


def _tamper(path: Path) -> None:
    db = sqlite3.connect(path)
    db.execute("DROP TRIGGER records_no_update")
    db.execute("""UPDATE records SET payload = '{"outcome":"failed"}' WHERE seq = 2""")
    db.commit()
    db.close()


def test_status_and_approve_refuse_a_broken_ledger(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    _ledger(runs)
    code, out, _ = tierlock("status", "--runs-dir", str(runs))
    assert code == 0 and "r1" in out
    _tamper(runs / "ledger.sqlite")
    code, _, err = tierlock("status", "--runs-dir", str(runs))
    assert code == 1
    assert "ledger broken at record 2 (verdict): content does not match its hash" in err
    approve = ("approve", "r1", "--tier", "tool-restricted", "--by", "Ada", "--note", "ok")
    code, _, err = tierlock(*approve, "--runs-dir", str(runs))
    assert code == 1 and "ledger broken at record 2 (verdict)" in err


def test_approve_prints_the_head_and_keyed_ledgers_need_their_key(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    _ledger(runs, key=KEY.encode())
    approve = ("approve", "r1", "--tier", "tool-restricted", "--by", "Ada", "--note", "ok")
    code, _, err = tierlock(*approve, "--runs-dir", str(runs))
    assert code == 1 and "the ledger is keyed (HMAC); give its key" in err
    code, out, err = tierlock(*approve, "--runs-dir", str(runs), env={"TIERLOCK_LEDGER_KEY": KEY})
    assert code == 0, err
    with Ledger(runs / "ledger.sqlite", readonly=True) as ledger:
        seq, h = ledger.head()
    assert f"ledger head: 4:{h}" in out and seq == 4
    code, _, err = tierlock("status", "--runs-dir", str(runs))  # read-only: says so, shows
    assert code == 0 and "macs could not be checked" in err
    code, _, _ = tierlock("verify", "--runs-dir", str(runs), "--expect-head", f"4:{h}",
                          env={"TIERLOCK_LEDGER_KEY": KEY})  # fmt: skip
    assert code == 0


def test_audit_with_a_broken_ledger_stops(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    _ledger(runs)
    log = tmp_path / "x.eval"
    log.write_bytes(b"not a log")
    ledger = str(runs / "ledger.sqlite")
    code, _, err = tierlock("audit", str(log), "--ledger", ledger)
    assert code == 3 and "ledger broken" not in err  # the ledger is fine; the log is not a log
    _tamper(runs / "ledger.sqlite")
    code, _, err = tierlock("audit", str(log), "--ledger", ledger)
    assert code == 1 and "ledger broken at record 2 (verdict)" in err
