"""Host-wide locks between tierlock processes (`flock`, released by the kernel on a crash).

Used where two processes on one host must not interleave Docker operations on a shared object:
the shared egress network is removed when unused by one process while another attaches its proxy.
"""

from __future__ import annotations

import fcntl
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def runtime_dir(name: str) -> Path | None:
    """`tierlock-<uid>/<name>` under the first writable of /run, $XDG_RUNTIME_DIR and the temp
    directory (created private); None when none is writable."""
    for base in ("/run", os.environ.get("XDG_RUNTIME_DIR") or "", tempfile.gettempdir()):
        if not base:
            continue
        d = Path(base) / f"tierlock-{os.getuid()}" / name
        try:
            d.mkdir(parents=True, exist_ok=True, mode=0o700)
        except OSError:
            continue
        if os.access(d, os.W_OK):
            return d
    return None


def _lock_dir() -> Path:
    return runtime_dir("locks") or Path(tempfile.gettempdir())


@contextmanager
def host_lock(name: str) -> Iterator[None]:
    """Hold the host-wide lock `name` (blocking) for the duration of the block."""
    fd = os.open(_lock_dir() / f"{name}.lock", os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)
