"""The ledger: an append-only, hash-chained record of every run, tier, log, verdict and approval.

SQLite (one file, no server). Triggers abort any UPDATE or DELETE, so rows can only be added.
Each record carries the SHA-256 of every log it cites and the hash of the previous record; its
own hash covers all of it (canonical JSON), so `verify` finds the first record or log that
changed after it was written.

With a key (see `runner/_anchor.py`), each record also carries an HMAC-SHA256 of its hash (`mac`),
so rewriting and re-chaining the records is detected by whoever holds the key. A ledger is keyed
from its first record or not at all: a keyed record after an unkeyed one, or a record without a mac
after keyed ones, is a break. Ledgers written before the `mac` column existed keep verifying; the
column is added the first time such a ledger is opened for writing.

A runs directory that fills up or turns read-only mid-run raises `RunsDirUnwritable` (one line,
exit 3) from the append that meets it, and, before a record that stands on logs just written
(`verdict`, `log_written`, `audit_result`), from a look at the file system: a tier whose logs could
not be written gets no verdict. The record being written is never half there (one transaction).

Readers (`readonly=True`: verify, status, audit) never write to the database, its `-wal` or its
`-shm`: with no writer around the file is opened immutable; while a writer is active (or after one
crashed, leaving a `-wal`) SQLite's read-only protocol is used, which may update the shared-memory
index (`-shm`) as any reader does, but never the database or the `-wal`.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from tierlock.sandbox._errors import display_path

from ._faults import after_append
from ._ledger_record import (
    GENESIS,
    KINDS,
    BadRow,
    LedgerError,
    LogRef,
    Record,
    _BadRow,
    _row_record,
    canonical_json,
    record_mac,
    sha256_file,
)
from ._ledger_schema import COLUMNS, PLACES, SCHEMA, add_mac_column, widen_kinds
from ._runs_dir import (
    RunsDirUnwritable,
    storage_problem,
    storage_reason,
    unwritable_line,
)

if TYPE_CHECKING:
    from ._verify import VerifyResult

class Ledger:
    """An append-only, hash-chained SQLite ledger at `path` (created on first use).

    `readonly`: open an existing ledger without writing anything (verify, status, audit).
    `key`: the HMAC key of a keyed ledger (see `runner/_anchor.py`); None for an unkeyed one.
    Raises `LedgerError` when the file is not a ledger or cannot be opened."""

    def __init__(
        self, path: str | Path, *, readonly: bool = False, key: bytes | None = None
    ) -> None:
        self.path = Path(path)
        self.readonly = readonly
        self.key = key
        self.display = display_path(self.path)
        self._has_mac = True
        try:
            self.root = self.path.parent.resolve()
            self._db = self._open_readonly() if readonly else self._open_writable()
        except sqlite3.Error as e:
            reason = None if readonly else storage_problem(self.path.parent)
            if reason is not None:  # a full or read-only runs directory, not a broken ledger
                raise RunsDirUnwritable(
                    f"runs directory {display_path(self.path.parent)}: {reason}; the ledger "
                    "cannot be opened for writing"
                ) from None
            raise self._error(e) from None
        except (OSError, RuntimeError) as e:  # RuntimeError: a symlink loop (Path.resolve)
            raise LedgerError(
                f"{self.display}: cannot open the ledger ({getattr(e, 'strerror', None) or e})"
            ) from None

    def _error(self, e: sqlite3.Error) -> LedgerError:
        return LedgerError(f"{self.display}: not a readable tierlock ledger ({e})")

    def _open_writable(self) -> sqlite3.Connection:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        existing = self.path.exists()
        if existing and not self.path.is_file():
            raise LedgerError(f"{self.display}: not a regular file, cannot be a ledger")
        db = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        try:
            if existing and self.path.stat().st_size > 0:
                self._check_schema(db)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=FULL")
            db.executescript(SCHEMA)
            self._migrate(db)
        except BaseException:
            db.close()
            raise
        return db

    def _open_readonly(self) -> sqlite3.Connection:
        if not self.path.exists():
            raise LedgerError(f"no ledger at {self.display} (nothing has run yet)")
        if not self.path.is_file():
            raise LedgerError(f"{self.display}: not a regular file, cannot be a ledger")
        # No -wal: no writer is connected, so read the file as immutable (creates no -wal/-shm).
        # A -wal: a writer is active or crashed; SQLite's read-only protocol sees its frames.
        live = Path(f"{self.path}-wal").exists()
        uri = f"file:{quote(str(self.path.resolve()))}?mode=ro" + ("" if live else "&immutable=1")
        db = sqlite3.connect(uri, uri=True, timeout=30, isolation_level=None)
        try:
            self._check_schema(db)
        except BaseException:
            db.close()
            raise
        return db

    def _check_schema(self, db: sqlite3.Connection) -> None:
        cols = {row[1] for row in db.execute("PRAGMA table_info(records)")}
        if not cols:
            raise LedgerError(f"{self.display}: not a tierlock ledger (no records table)")
        missing = [c.strip() for c in COLUMNS.split(",") if c.strip() not in cols]
        if missing:
            raise LedgerError(
                f"{self.display}: not a tierlock ledger (records has no {', '.join(missing)})"
            )
        self._has_mac = "mac" in cols

    def _migrate(self, db: sqlite3.Connection) -> None:
        widen_kinds(db)
        if not self._has_mac:
            add_mac_column(db)
            self._has_mac = True

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
        if self.readonly:
            raise LedgerError(f"{self.display}: opened read-only")
        refs = tuple(LogRef(self.rel(p), sha256_file(p)) for p in logs)
        payload = json.loads(canonical_json(payload or {}))  # plain JSON types only
        try:
            self._refuse_if_unwritable(kind)
            rec = self._insert(kind, run_id, campaign, model, tier, payload, refs)
        except (sqlite3.Error, OSError) as e:
            fault = self._storage_fault(e)
            if fault is None:
                raise
            raise fault from None
        after_append(self.path)  # test-only crash point (runner/_faults.py); no-op otherwise
        return rec

    def _insert(
        self,
        kind: str,
        run_id: str,
        campaign: str,
        model: str,
        tier: str | None,
        payload: dict[str, Any],
        refs: tuple[LogRef, ...],
    ) -> Record:
        """One record in one transaction: all of it is committed, or nothing."""
        db = self._db
        db.execute("BEGIN IMMEDIATE")
        try:
            row = db.execute(
                "SELECT seq, hash, mac FROM records ORDER BY seq DESC LIMIT 1"
            ).fetchone()
            if row is not None:
                self._check_key_matches(keyed=row[2] is not None)
            seq, prev = (row[0] + 1, row[1]) if row else (1, GENESIS)
            now = datetime.now(UTC).isoformat(timespec="microseconds")
            rec = Record(seq, now, kind, run_id, campaign, model, tier, payload, refs, prev, "")
            digest = rec.computed_hash()
            mac = record_mac(self.key, digest) if self.key is not None else None
            rec = Record(**{**rec.__dict__, "hash": digest, "mac": mac})
            values = (
                rec.seq, rec.time, rec.kind, rec.run_id, rec.campaign, rec.model, rec.tier,
                canonical_json(rec.payload), canonical_json(rec.body()["logs"]),
                rec.prev_hash, rec.hash, rec.mac,
            )  # fmt: skip
            db.execute(f"INSERT INTO records ({COLUMNS}, mac) VALUES ({PLACES})", values)
            db.execute("COMMIT")
        except BaseException:
            # SQLite may have rolled back already (a full disk, an I/O error): never let that
            # "no transaction is active" hide the error that matters
            with contextlib.suppress(sqlite3.Error):
                db.execute("ROLLBACK")
            raise
        return rec

    # a full or read-only runs directory ----------------------------------------------------
    def raise_if_unwritable(self) -> None:
        """Raise `RunsDirUnwritable` when the runs directory (the ledger's) cannot take more
        writes: full, read-only, out of quota. (Called where a tier's run failed: an error
        that came from there is no harness error to record, and no verdict is.)"""
        reason = storage_problem(self.root)
        if reason is not None:
            raise RunsDirUnwritable(self._unwritable_line(reason))

    def _refuse_if_unwritable(self, kind: str) -> None:
        """Before a verdict, make sure the runs directory can still take what goes with it: a
        tier whose logs could not be written is not judged (its verdict would only say so)."""
        if kind in ("verdict", "log_written", "audit_result"):  # they stand on logs just written
            self.raise_if_unwritable()

    def _storage_fault(self, e: BaseException) -> RunsDirUnwritable | None:
        """`RunsDirUnwritable` when `e` says the runs directory is full or read-only (or failing
        to write); None for any other error."""
        reason = storage_reason(e, self.root)
        return None if reason is None else RunsDirUnwritable(self._unwritable_line(reason))

    def _unwritable_line(self, reason: str) -> str:
        try:
            row = self._db.execute(
                "SELECT seq, kind, tier FROM records ORDER BY seq DESC LIMIT 1"
            ).fetchone()
        except sqlite3.Error:
            row = None
        return unwritable_line(self.root, reason, None if row is None else tuple(row))

    def keyed(self) -> bool | None:
        """Whether the ledger's records carry macs (None: no records yet)."""
        mac = "mac" if self._has_mac else "NULL"
        row = self._one(f"SELECT {mac} FROM records ORDER BY seq DESC LIMIT 1")
        return None if row is None else row[0] is not None

    def check_key(self) -> None:
        """Refuse, before anything runs, to write a keyed ledger without its key or an unkeyed
        one with a key (a keyed record may not follow an unkeyed one)."""
        keyed = self.keyed()
        if keyed is not None:
            self._check_key_matches(keyed=keyed)

    def _check_key_matches(self, *, keyed: bool) -> None:
        if keyed and self.key is None:
            raise LedgerError(
                f"{self.display}: the ledger is keyed (HMAC); give its key (--key-file, "
                "TIERLOCK_LEDGER_KEY_FILE or TIERLOCK_LEDGER_KEY) to write to it"
            )
        if not keyed and self.key is not None:
            raise LedgerError(
                f"{self.display}: the ledger was started without a key and keyed records cannot "
                "follow unkeyed ones; use a new --runs-dir for a keyed ledger, or give no key"
            )

    # reading -----------------------------------------------------------------------------
    def records(self, run_id: str | None = None) -> Iterator[Record]:
        """Records in order, optionally of one run. Raises `LedgerError` on an unreadable row."""
        try:
            for row in self._rows(run_id):
                try:
                    yield _row_record(row)
                except _BadRow as e:
                    raise LedgerError(f"{self.display}: record {row[0]}: {e}") from None
        except sqlite3.Error as e:
            raise self._error(e) from None

    def _rows(self, run_id: str | None = None) -> Iterator[tuple[Any, ...]]:
        mac = "mac" if self._has_mac else "NULL"
        sql = f"SELECT {COLUMNS}, {mac} FROM records"
        args: tuple[Any, ...] = ()
        if run_id is not None:
            sql += " WHERE run_id = ?"
            args = (run_id,)
        yield from self._db.execute(sql + " ORDER BY seq", args)

    def runs(self) -> list[Record]:
        """The `run_started` record of every run, oldest first."""
        return [r for r in self.records() if r.kind == "run_started"]

    def _one(self, sql: str, args: tuple[Any, ...] = ()) -> tuple[Any, ...] | None:
        try:
            row: tuple[Any, ...] | None = self._db.execute(sql, args).fetchone()
        except sqlite3.Error as e:
            raise self._error(e) from None
        return row

    def head(self) -> tuple[int, str]:
        """(seq, hash) of the last record; (0, GENESIS) for an empty ledger."""
        last = self._one("SELECT seq, hash FROM records ORDER BY seq DESC LIMIT 1")
        return (int(last[0]), str(last[1])) if last else (0, GENESIS)

    def hash_at(self, seq: int) -> str | None:
        """The hash recorded at `seq` (GENESIS for 0), or None when there is no such record."""
        row = self._one("SELECT hash FROM records WHERE seq = ?", (seq,)) if seq else (GENESIS,)
        return None if row is None else str(row[0])

    def seq_of(self, record_hash: str) -> int | None:
        """The seq of the record carrying `record_hash` (0 for GENESIS), or None."""
        if record_hash == GENESIS:
            return 0
        row = self._one("SELECT seq FROM records WHERE hash = ?", (record_hash,))
        return None if row is None else int(row[0])

    # verification ------------------------------------------------------------------------
    def verify(self, check_logs: bool = True, *, logs_of: str | None = None) -> VerifyResult:
        """Recompute the chain, the macs (with the key) and (optionally) every cited log's hash;
        stop at the first break. `logs_of`: check only the logs cited by that run's records."""
        from ._verify import verify_chain  # verification reads the ledger; it owns no storage

        try:
            return verify_chain(self, check_logs=check_logs, logs_of=logs_of)
        except sqlite3.Error as e:
            raise self._error(e) from None

    def scan(self) -> Iterator[Record | BadRow]:
        """Every row in order, as a record or, when it cannot be one, a `BadRow` (for verify)."""
        for row in self._rows():
            try:
                yield _row_record(row)
            except _BadRow as e:
                yield BadRow(e.seq, str(e))


