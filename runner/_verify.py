"""Verifying a ledger: the hash chain, the macs of a keyed ledger, the logs its records cite.

`verify_chain` walks the records in order and stops at the first break, naming the record (seq
and kind) and what is wrong. `require_intact` is what commands that trust the ledger (run,
status, audit --ledger) call before reading it: a break is a `LedgerError` (one line, exit 1).
"""

from __future__ import annotations

import hmac
from collections.abc import Callable
from dataclasses import dataclass, field

from ._ledger import Ledger
from ._ledger_record import GENESIS, BadRow, LedgerError, record_mac, sha256_file


@dataclass(frozen=True)
class VerifyResult:
    """Outcome of `Ledger.verify`: ok, or the first broken link and why.

    `ok` means no break was found. In a keyed ledger verified without the key the macs were not
    checked (`macs_unchecked` > 0): the chain may have been rewritten by someone without the key
    and this cannot tell, so `verified` is False."""

    records: int
    logs_checked: int
    broken_seq: int | None = None
    problem: str = ""
    warnings: list[str] = field(default_factory=list)
    broken_kind: str | None = None
    head_seq: int = 0
    head_hash: str = GENESIS
    macs_checked: int = 0
    macs_unchecked: int = 0

    @property
    def ok(self) -> bool:
        return self.broken_seq is None

    @property
    def verified(self) -> bool:
        """No break, and every mac the ledger carries was checked."""
        return self.ok and self.macs_unchecked == 0

    @property
    def where(self) -> str:
        """`record 12 (verdict)`: the broken row, for messages."""
        kind = f" ({self.broken_kind})" if self.broken_kind else ""
        return f"record {self.broken_seq}{kind}"


def verify_chain(
    ledger: Ledger, *, check_logs: bool = True, logs_of: str | None = None
) -> VerifyResult:
    """Recompute every record's hash and link, its mac (with the ledger's key) and, when
    `check_logs`, the SHA-256 of each log it cites (only the records of run `logs_of`, if given).

    Unkeyed ledgers (no macs, e.g. written before keyed chains existed) verify as before. A
    keyed ledger is keyed from record 1 on: a keyed record after an unkeyed one, or a record
    without a mac after keyed ones, is a break. Without the key the macs cannot be checked:
    `macs_unchecked` counts them. With a key, a record without a mac is a break (the ledger
    was written, or rewritten, without the key)."""
    prev, n, checked = GENESIS, 0, 0
    macs_checked = macs_unchecked = 0
    keyed_from: int | None = None
    expected_seq = 1
    key = ledger.key

    def broken(seq: int | None, problem: str, kind: str | None = None) -> VerifyResult:
        return VerifyResult(
            n, checked, seq, problem, broken_kind=kind,
            head_seq=expected_seq - 1, head_hash=prev,
            macs_checked=macs_checked, macs_unchecked=macs_unchecked,
        )  # fmt: skip

    for rec in ledger.scan():
        n += 1
        if isinstance(rec, BadRow):
            seq = rec.seq if rec.seq is not None else expected_seq
            return broken(seq, f"{rec.problem} (record was altered)")
        kind = rec.kind
        if rec.seq != expected_seq:
            return broken(rec.seq, f"record {expected_seq} is missing", kind)
        if rec.prev_hash != prev:
            return broken(rec.seq, "prev_hash does not match the previous record's hash", kind)
        if rec.computed_hash() != rec.hash:
            return broken(rec.seq, "content does not match its hash (record was altered)", kind)
        if rec.mac is None:
            if keyed_from is not None:
                return broken(rec.seq, f"no mac, but records from {keyed_from} on are keyed", kind)
            if key is not None:
                return broken(
                    rec.seq,
                    "no mac, but a key was given (the ledger was written, or rewritten, "
                    "without the key)",
                    kind,
                )
        else:
            if keyed_from is None:
                if rec.seq != 1:
                    return broken(rec.seq, "a keyed record follows unkeyed ones", kind)
                keyed_from = rec.seq
            if key is None:
                macs_unchecked += 1
            elif hmac.compare_digest(rec.mac, record_mac(key, rec.hash)):
                macs_checked += 1
            else:
                return broken(
                    rec.seq,
                    "mac does not match (a wrong key, or the record was rewritten without the key)",
                    kind,
                )
        if check_logs and (logs_of is None or rec.run_id == logs_of):
            for ref in rec.logs:
                path = ledger.abs(ref.path)
                if not path.is_file():
                    return broken(rec.seq, f"cited log {ref.path} is missing", kind)
                checked += 1
                if sha256_file(path) != ref.sha256:
                    return broken(
                        rec.seq, f"cited log {ref.path} changed since it was recorded", kind
                    )
        prev, expected_seq = rec.hash, rec.seq + 1
    return VerifyResult(
        n, checked, head_seq=expected_seq - 1, head_hash=prev,
        macs_checked=macs_checked, macs_unchecked=macs_unchecked,
    )  # fmt: skip


UNCHECKED_MACS = (
    "the ledger is keyed and no key was given, so its macs could not be checked "
    "(give --key-file, TIERLOCK_LEDGER_KEY_FILE or TIERLOCK_LEDGER_KEY)"
)


def require_intact(
    ledger: Ledger,
    *,
    logs_of: str | None = None,
    check_logs: bool = True,
    warn: Callable[[str], None] | None = None,
) -> VerifyResult:
    """Verify the ledger before trusting it; raise `LedgerError` naming the first broken record.

    `logs_of`: also re-hash the logs cited by that run's records (the ones about to be reused).
    Unchecked macs (a keyed ledger, no key) go to `warn`, or raise when `warn` is None."""
    res = ledger.verify(check_logs=check_logs and logs_of is not None, logs_of=logs_of)
    if not res.ok:
        raise LedgerError(
            f"{ledger.display}: ledger broken at {res.where}: {res.problem}; "
            "refusing to trust it (tierlock verify shows the same)"
        )
    if res.macs_unchecked:
        if warn is None:
            raise LedgerError(f"{ledger.display}: {UNCHECKED_MACS}")
        warn(f"{ledger.display}: {UNCHECKED_MACS}")
    return res
