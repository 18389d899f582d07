"""What a ledger record is: its fields, its hash and MAC, and how a stored row becomes one.

`Record.computed_hash` is the SHA-256 of the record's canonical JSON (`canonical_json`), which
covers the previous record's hash; `record_mac` is the keyed HMAC a keyed ledger adds. A row that
cannot be a record (edited in place) is a `BadRow` for `verify`. Storage is `_ledger.Ledger`'s.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tierlock.sandbox import TierlockError

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
    "series",
    "selftest",
)
"""Record kinds, roughly in the order a run writes them (`series`: a checkpoint series' own
records, `runner/_series_run.py`)."""

_MAC_DOMAIN = b"tierlock-ledger-mac-v1\n"


class LedgerError(TierlockError):
    """The ledger cannot be opened, read or written as a tierlock ledger (one line, exit 1)."""


@dataclass(frozen=True)
class BadRow:
    """A row that cannot be a record (seq None when even its seq is unreadable)."""

    seq: int | None
    problem: str


class _BadRow(Exception):
    """A row whose columns cannot be a record (edited in place with the triggers dropped)."""

    def __init__(self, seq: Any, problem: str) -> None:
        super().__init__(problem)
        self.seq = seq if isinstance(seq, int) else None


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


def record_mac(key: bytes, record_hash: str) -> str:
    """HMAC-SHA256 of a record's hash (which covers its content and the previous hash)."""
    return hmac.new(key, _MAC_DOMAIN + record_hash.encode(), hashlib.sha256).hexdigest()


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
    mac: str | None = None  # HMAC of `hash` in a keyed ledger; not part of `hash` itself

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


def _row_record(row: tuple[Any, ...]) -> Record:
    seq, time, kind, run_id, campaign, model, tier, payload, logs, prev, h, mac = row
    if not isinstance(seq, int):
        raise _BadRow(seq, f"seq {seq!r} is not a number")
    texts = (time, kind, run_id, campaign, model, payload, logs, prev, h)
    if not all(isinstance(v, str) for v in texts) or not isinstance(tier, str | None):
        raise _BadRow(seq, "a column has the wrong type")
    if not isinstance(mac, str | None):
        raise _BadRow(seq, "mac has the wrong type")
    try:
        data = json.loads(payload)
        refs = tuple(LogRef(str(d["path"]), str(d["sha256"])) for d in json.loads(logs))
    except (ValueError, TypeError, KeyError) as e:
        raise _BadRow(seq, f"payload or logs is not the JSON a record holds ({e})") from None
    if not isinstance(data, dict):
        raise _BadRow(seq, "payload is not a JSON object")
    return Record(seq, time, kind, run_id, campaign, model, tier, data, refs, prev, h, mac)
