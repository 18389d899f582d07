"""A runs directory that fills up or turns read-only: told apart from other errors, in one line.

The ledger (`_ledger`) and the tier loop (`_run`) ask here whether an error, or the file system
itself, says the runs directory can take no more writes: no space left, read-only (including a
file system an I/O error turned read-only under its writers, whose mount flags still say `rw`),
out of quota, failing to write. Such a run records nothing more and ends with exit 3 and one
line (`RunsDirUnwritable`); the next run, once there is room, resumes it.
"""

from __future__ import annotations

import errno
import os
import tempfile
from pathlib import Path

from tierlock.sandbox import TierlockError
from tierlock.sandbox._errors import display_path


class RunsDirUnwritable(TierlockError):
    """The runs directory filled up or turned read-only mid-run: nothing more was recorded (the
    record being written is not in the ledger: SQLite commits all of it or nothing). Exit 3,
    like any run that ends without a verdict; the next run resumes once there is room."""

    exit_code = 3


STORAGE_ERRNOS = frozenset({errno.ENOSPC, errno.EROFS, errno.EDQUOT, errno.EIO})
_SQLITE_STORAGE = ("SQLITE_FULL", "SQLITE_READONLY", "SQLITE_IOERR", "SQLITE_CANTOPEN")
_SQLITE_REASONS = {
    "FULL": os.strerror(errno.ENOSPC),
    "READONLY": os.strerror(errno.EROFS),
    "IOERR": "Input/output error (the ledger could not be written)",
    "CANTOPEN": "the ledger's files cannot be opened for writing",
}
MIN_FREE_BYTES = 64 * 1024
"""Below this much free space the runs directory counts as full (a log or record may not fit)."""


def storage_problem(directory: str | Path) -> str | None:
    """Why `directory`'s file system cannot take more writes (read-only, no space left, out of
    quota), or None when it can: `statvfs`, then a probe that writes `MIN_FREE_BYTES` to an
    unnamed temporary file (a file system an error turned read-only keeps its `rw` flag)."""
    try:
        st = os.statvfs(directory)
    except OSError:
        return None
    if st.f_flag & os.ST_RDONLY:
        return os.strerror(errno.EROFS)
    if st.f_blocks and st.f_bavail * st.f_frsize < MIN_FREE_BYTES:
        return os.strerror(errno.ENOSPC)
    try:
        with tempfile.TemporaryFile(dir=directory) as probe:
            probe.write(b"\0" * MIN_FREE_BYTES)
            probe.flush()
            os.fsync(probe.fileno())
    except OSError as e:
        if e.errno in STORAGE_ERRNOS:
            return os.strerror(e.errno or 0)
    return None


def storage_reason(e: BaseException, directory: str | Path) -> str | None:
    """The reason to show when `e` (an `OSError`, or an `sqlite3.Error`) says the runs directory
    `directory` cannot be written; None for any other error."""
    if isinstance(e, OSError):
        return os.strerror(e.errno) if e.errno in STORAGE_ERRNOS and e.errno else None
    name = str(getattr(e, "sqlite_errorname", ""))
    if not name.startswith(_SQLITE_STORAGE):
        return None
    return storage_problem(directory) or _SQLITE_REASONS.get(
        name.split("_")[1], f"the ledger cannot be written ({e})"
    )


def unwritable_line(directory: Path, reason: str, last: tuple[object, ...] | None) -> str:
    """The one line: where, why, and the last record the ledger holds (seq, kind, tier)."""
    if last is None:
        after = "the start of the ledger"
    else:
        seq, kind, tier = last
        after = f"record {seq} ({kind}" + (f", tier {tier})" if tier else ")")
    return (
        f"runs directory {display_path(directory)}: {reason}; nothing was recorded after "
        f"{after}; once it can be written again, run the same command to resume"
    )
