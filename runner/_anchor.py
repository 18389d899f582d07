"""Anchors outside the ledger: the head a user keeps, and the key of a keyed chain.

A hash chain alone cannot show that its last records were cut off, or that the whole file was
rewritten and re-chained. Two anchors that live outside the runs directory close that gap:

- the **head** (`seq:hash` of the last record), printed by every command that writes the ledger
  and by `tierlock verify --head`; `tierlock verify --expect-head H` checks that the chain still
  holds that record at that seq (truncation and rewriting both lose it);
- an optional **key**: each record then carries an HMAC-SHA256 of its hash, so a chain rewritten
  without the key fails verification. The key comes from `--key-file`, `$TIERLOCK_LEDGER_KEY_FILE`
  or `$TIERLOCK_LEDGER_KEY`, and never from inside the runs directory.
"""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from tierlock.sandbox import TierlockError
from tierlock.sandbox._errors import display_path

from ._ledger import Ledger

KEY_ENV = "TIERLOCK_LEDGER_KEY"
KEY_FILE_ENV = "TIERLOCK_LEDGER_KEY_FILE"
MIN_KEY_BYTES = 16
MAX_KEY_FILE_BYTES = 64 * 1024

_HEAD = re.compile(r"^(?:(\d{1,18}):)?([0-9a-fA-F]{64})$")


@dataclass(frozen=True)
class Head:
    """A ledger head: the hash of a record and, when known, its seq."""

    seq: int | None
    hash: str

    def __str__(self) -> str:
        return self.hash if self.seq is None else f"{self.seq}:{self.hash}"


def parse_head(text: str) -> Head:
    """`HASH` or `SEQ:HASH` (64 hex digits); raises `TierlockError` on anything else."""
    m = _HEAD.match(text.strip())
    if m is None:
        shown = text if len(text) <= 80 else text[:77] + "..."
        raise TierlockError(
            f"--expect-head {shown!r}: expected HASH (64 hex digits) or SEQ:HASH "
            "(as printed by tierlock verify --head)"
        )
    seq = int(m.group(1)) if m.group(1) is not None else None
    return Head(seq, m.group(2).lower())


def ledger_head(ledger: Ledger) -> Head:
    seq, h = ledger.head()
    return Head(seq, h)


def check_head(ledger: Ledger, expected: Head) -> str | None:
    """Why the (verified) chain does not contain `expected`, or None when it does.

    Because every record's hash covers the previous one, holding the expected head at its seq
    means nothing up to it was changed, removed or re-chained."""
    short = expected.hash[:16]
    if expected.seq is not None:
        actual = ledger.hash_at(expected.seq)
        if actual is None:
            last, _ = ledger.head()
            return (
                f"expected head {expected.seq}:{short}… is missing: the ledger ends at record "
                f"{last} (truncated)"
            )
        if actual != expected.hash:
            return (
                f"record {expected.seq} has hash {actual[:16]}…, not the expected {short}… "
                "(the ledger was rewritten)"
            )
        return None
    if ledger.seq_of(expected.hash) is None:
        return f"no record has the expected hash {short}… (the ledger was truncated or rewritten)"
    return None


def ledger_key(
    key_file: Path | None, runs_dir: Path, env: Mapping[str, str] | None = None
) -> bytes | None:
    """The ledger key from `key_file`, else `$TIERLOCK_LEDGER_KEY_FILE`, else
    `$TIERLOCK_LEDGER_KEY`; None when none is set. Raises `TierlockError` for a key file inside
    `runs_dir` (the key would travel with what it protects), not a regular file, too big, or a
    key shorter than 16 bytes. Trailing whitespace (a final newline) is not part of the key."""
    env = os.environ if env is None else env
    if key_file is None and env.get(KEY_FILE_ENV) and env.get(KEY_ENV):
        raise TierlockError(f"set {KEY_FILE_ENV} or {KEY_ENV}, not both")
    if key_file is not None or env.get(KEY_FILE_ENV):
        source = key_file if key_file is not None else Path(env[KEY_FILE_ENV])
        return _read_key_file(source, runs_dir)
    if env.get(KEY_ENV):
        return _check_length(env[KEY_ENV].encode().rstrip(), f"${KEY_ENV}")
    return None


def _read_key_file(path: Path, runs_dir: Path) -> bytes:
    shown = display_path(path)
    try:
        real = path.resolve(strict=True)
        st = real.stat()
    except (OSError, RuntimeError) as e:
        reason = getattr(e, "strerror", None) or str(e)
        raise TierlockError(f"{shown}: cannot read the ledger key file ({reason})") from None
    if real.is_relative_to(runs_dir.resolve()):
        raise TierlockError(
            f"{shown}: the ledger key file is inside the runs directory {display_path(runs_dir)}; "
            "keep the key elsewhere (whoever can rewrite the ledger could read it there)"
        )
    if not stat.S_ISREG(st.st_mode):
        raise TierlockError(f"{shown}: the ledger key file is not a regular file")
    if st.st_size > MAX_KEY_FILE_BYTES:
        raise TierlockError(f"{shown}: the ledger key file is larger than 64 KiB")
    try:
        data = real.read_bytes()[:MAX_KEY_FILE_BYTES]
    except OSError as e:
        raise TierlockError(f"{shown}: cannot read the ledger key file ({e.strerror})") from None
    return _check_length(data.rstrip(), shown)


def _check_length(key: bytes, source: str) -> bytes:
    if len(key) < MIN_KEY_BYTES:
        raise TierlockError(f"{source}: the ledger key is shorter than {MIN_KEY_BYTES} bytes")
    return key
