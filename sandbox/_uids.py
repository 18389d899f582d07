"""A distinct uid/gid per concurrent sandbox, so per-user kernel quotas are never shared.

The kernel counts some limits per user, not per container: inotify instances and watches,
`RLIMIT_NPROC`, user namespaces, message-queue bytes. Two samples whose commands run as the same
uid share them, so one sample could starve another running beside it. Each sandbox therefore
leases a slot: the policy's user is the start of the range, slot *k* runs as `uid + k` (group
`gid + k`). Leases are `flock`s on one file per slot in a host-wide directory, so processes on the
same host never hand out the same slot twice, and a crashed process's leases end with it.

`TIERLOCK_UID_SLOTS` sets the size of the range (default 512).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from dataclasses import dataclass, field
from pathlib import Path

from ._env import env_int
from ._errors import SandboxError
from ._hostlock import runtime_dir

SLOTS_ENV = "TIERLOCK_UID_SLOTS"
DEFAULT_SLOTS = 512
RESERVED = {0, 65534}
"""Never handed out: root, and `nobody` (the keepalive's uid)."""


@dataclass
class UidLease:
    """One slot of the range, held until `release()` (or the process ends)."""

    uid: int
    gid: int
    slot: int
    _fd: int | None = field(default=None, repr=False)

    @property
    def user(self) -> str:
        return f"{self.uid}:{self.gid}"

    def release(self) -> None:
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.close(self._fd)
            self._fd = None


def _lease_dir() -> Path:
    d = runtime_dir("uid-slots")
    if d is None:
        raise SandboxError("no writable directory for uid leases (/run, $XDG_RUNTIME_DIR, /tmp)")
    return d


def slots() -> int:
    return env_int(SLOTS_ENV, DEFAULT_SLOTS, low=1, high=65536)


def lease_uid(base_uid: int, base_gid: int) -> UidLease:
    """The first free slot of the range starting at (`base_uid`, `base_gid`)."""
    if base_uid == 0:
        return UidLease(0, base_gid, 0)  # root stays root (lint refuses it unless waived)
    d = _lease_dir()
    for slot in range(slots()):
        uid, gid = base_uid + slot, base_gid + slot
        if uid in RESERVED or gid in RESERVED:
            continue
        fd = os.open(d / f"{base_uid}-{slot}.lock", os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            continue
        return UidLease(uid, gid, slot, fd)
    raise SandboxError(
        f"every uid slot from {base_uid} is in use ({slots()} sandboxes at once); "
        f"raise ${SLOTS_ENV} or run fewer samples at a time"
    )
