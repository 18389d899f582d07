"""The ledger: an append-only, hash-chained record of every run, tier, log, verdict and approval.

SQLite (one file, no server). Triggers abort any UPDATE or DELETE, so rows can only be added.
Each record carries the SHA-256 of every log it cites and the hash of the previous record; its
own hash covers all of it (canonical JSON), so `verify` finds the first record or log that
changed after it was written.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ._faults import after_append

GENESIS = "0" * 64
"""`prev_hash` of the first record."""

KINDS = (
    "run_started",
    "run_resumed",
    "awaiting_approval",
    "approval",
    "tier_started",
    "log_written",
    "audit_result",
    "verdict",
    "run_finished",
)
"""Record kinds, roughly in the order a run writes them."""

_SCHEMA = f"""
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
    hash TEXT NOT NULL UNIQUE
);
CREATE INDEX IF NOT EXISTS records_run ON records (run_id, seq);
CREATE TRIGGER IF NOT EXISTS records_no_update BEFORE UPDATE ON records
BEGIN SELECT RAISE(ABORT, 'the ledger is append-only: records cannot be changed'); END;
CREATE TRIGGER IF NOT EXISTS records_no_delete BEFORE DELETE ON records
BEGIN SELECT RAISE(ABORT, 'the ledger is append-only: records cannot be deleted'); END;
"""


def sha256_file(path: str | Path) -> str:
    """SHA-256 of a file's bytes, streamed."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def canonical_json(data: Any) -> str:
    """The one JSON spelling a value hashes as: sorted keys, no spaces, UTF-8."""
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


@dataclass(frozen=True)
class LogRef:
    """A log a record cites: its path (relative to the ledger's directory when below it)."""

    path: str
    sha256: str


@dataclass(frozen=True)
class Record:
    """One ledger row."""

    seq: int
    time: str
    kind: str
    run_id: str
    campaign: str
    model: str
    tier: str | None
    payload: dict[str, Any]
    logs: tuple[LogRef, ...]
    prev_hash: str
    hash: str

    def body(self) -> dict[str, Any]:
        """Everything the record's hash covers."""
        return {
            "seq": self.seq,
            "time": self.time,
            "kind": self.kind,
            "run_id": self.run_id,
            "campaign": self.campaign,
            "model": self.model,
            "tier": self.tier,
            "payload": self.payload,
            "logs": [{"path": r.path, "sha256": r.sha256} for r in self.logs],
            "prev_hash": self.prev_hash,
        }

    def computed_hash(self) -> str:
        """The hash this record should carry, recomputed from its content."""
        return hashlib.sha256(canonical_json(self.body()).encode()).hexdigest()


@dataclass(frozen=True)
class VerifyResult:
    """Outcome of `Ledger.verify`: ok, or the first broken link and why."""

    records: int
    logs_checked: int
    broken_seq: int | None = None
    problem: str = ""
    warnings: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.broken_seq is None


class Ledger:
    """An append-only, hash-chained SQLite ledger at `path` (created on first use)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.root = self.path.parent.resolve()
        self._db = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(_SCHEMA)

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # paths -------------------------------------------------------------------------------
    def rel(self, path: str | Path) -> str:
        """How a log path is stored: relative to the ledger's directory when below it."""
        p = Path(path).resolve()
        try:
            return p.relative_to(self.root).as_posix()
        except ValueError:
            return str(p)

    def abs(self, stored: str) -> Path:
        """A stored log path back as a real path."""
        p = Path(stored)
        return p if p.is_absolute() else self.root / p

    # writing -----------------------------------------------------------------------------
    def append(
        self,
        kind: str,
        *,
        run_id: str,
        campaign: str,
        model: str,
        tier: str | None = None,
        payload: dict[str, Any] | None = None,
        logs: Sequence[str | Path] = (),
    ) -> Record:
        """Append one record, hashing each cited log now; returns it."""
        if kind not in KINDS:
            raise ValueError(f"unknown ledger record kind {kind!r}")
        refs = tuple(LogRef(self.rel(p), sha256_file(p)) for p in logs)
        payload = json.loads(canonical_json(payload or {}))  # plain JSON types only
        db = self._db
        db.execute("BEGIN IMMEDIATE")
        try:
            row = db.execute("SELECT seq, hash FROM records ORDER BY seq DESC LIMIT 1").fetchone()
            seq, prev = (row[0] + 1, row[1]) if row else (1, GENESIS)
            now = datetime.now(UTC).isoformat(timespec="microseconds")
            rec = Record(seq, now, kind, run_id, campaign, model, tier, payload, refs, prev, "")
            rec = Record(**{**rec.__dict__, "hash": rec.computed_hash()})
            db.execute(
                "INSERT INTO records (seq, time, kind, run_id, campaign, model, tier, payload,"
                " logs, prev_hash, hash) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                (
                    rec.seq,
                    rec.time,
                    rec.kind,
                    rec.run_id,
                    rec.campaign,
                    rec.model,
                    rec.tier,
                    canonical_json(rec.payload),
                    canonical_json(rec.body()["logs"]),
                    rec.prev_hash,
                    rec.hash,
                ),
            )
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        after_append(self.path)  # test-only crash point (runner/_faults.py); no-op otherwise
        return rec

    # reading -----------------------------------------------------------------------------
    def records(self, run_id: str | None = None) -> Iterator[Record]:
        """Records in order, optionally of one run."""
        sql = "SELECT seq, time, kind, run_id, campaign, model, tier, payload, logs,"
        sql += " prev_hash, hash FROM records"
        args: tuple[Any, ...] = ()
        if run_id is not None:
            sql += " WHERE run_id = ?"
            args = (run_id,)
        for row in self._db.execute(sql + " ORDER BY seq", args):
            yield _row_record(row)

    def runs(self) -> list[Record]:
        """The `run_started` record of every run, oldest first."""
        return [r for r in self.records() if r.kind == "run_started"]

    # verification ------------------------------------------------------------------------
    def verify(self, check_logs: bool = True) -> VerifyResult:
        """Recompute the chain and (optionally) every cited log's hash; stop at the first break."""
        prev, n, checked = GENESIS, 0, 0
        expected_seq = 1
        for rec in self.records():
            n += 1
            if rec.seq != expected_seq:
                return VerifyResult(n, checked, rec.seq, f"record {expected_seq} is missing")
            if rec.prev_hash != prev:
                return VerifyResult(
                    n, checked, rec.seq, "prev_hash does not match the previous record's hash"
                )
            if rec.computed_hash() != rec.hash:
                return VerifyResult(
                    n, checked, rec.seq, "content does not match its hash (record was altered)"
                )
            if check_logs:
                for ref in rec.logs:
                    path = self.abs(ref.path)
                    if not path.is_file():
                        return VerifyResult(n, checked, rec.seq, f"cited log {ref.path} is missing")
                    checked += 1
                    if sha256_file(path) != ref.sha256:
                        return VerifyResult(
                            n,
                            checked,
                            rec.seq,
                            f"cited log {ref.path} changed since it was recorded",
                        )
            prev, expected_seq = rec.hash, rec.seq + 1
        return VerifyResult(n, checked)


def _row_record(row: tuple[Any, ...]) -> Record:
    seq, time, kind, run_id, campaign, model, tier, payload, logs, prev, h = row
    refs = tuple(LogRef(d["path"], d["sha256"]) for d in json.loads(logs))
    return Record(
        seq, time, kind, run_id, campaign, model, tier, json.loads(payload), refs, prev, h
    )
