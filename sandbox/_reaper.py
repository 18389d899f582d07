"""No process outlives its command: after a sandbox's last running command returns, every
process of the model's uid in that container is killed.

Wrapping each command cannot do this on its own: a command can `setsid`, double-fork, or kill its
own wrapper, and its orphans are re-parented to the container's PID 1. What a command cannot
escape is its uid (no-new-privileges, no setuid) and its container's cgroup, so the host reads the
container's `cgroup.procs` and kills, until none is left, every process whose real uid is the
model's. The keepalive (PID 1, `nobody`) is never touched, and neither are processes started
before the model first acted (a sample's setup script may start a service the task protects):
the provider snapshots them as the operator's. Where the host cannot see the
container's processes (a remote or rootless engine), `kill -9 -1` exec'd as the model's user does
the same from inside: it signals every process that uid may signal, and PID 1 is not one.
"""

from __future__ import annotations

import contextlib
import os
import signal
from pathlib import Path

MAX_ROUNDS = 64
"""Kill rounds before giving up on a container whose processes keep forking."""

INSIDE_COMMAND = ["/bin/kill", "-9", "-1"]
"""The fallback, exec'd as the model's user."""


def _procs_file(container_pid: int) -> Path | None:
    """The host path of the container's `cgroup.procs` (pids controller, v1 or v2)."""
    try:
        lines = Path(f"/proc/{container_pid}/cgroup").read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        _, controllers, path = line.split(":", 2)
        names = controllers.split(",")
        if "pids" in names:
            p = Path("/sys/fs/cgroup/pids") / path.lstrip("/") / "cgroup.procs"
        elif controllers == "":
            p = Path("/sys/fs/cgroup") / path.lstrip("/") / "cgroup.procs"
        else:
            continue
        if p.is_file():
            return p
    return None


def _live_uid(pid: int) -> int | None:
    """The real uid of a process that is not already a zombie (None: gone, or a zombie)."""
    try:
        fields = dict(
            line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines()
        )
        if fields.get("State", "").strip().startswith(("Z", "X")):
            return None
        return int(fields["Uid"].split()[0])
    except (OSError, ValueError, KeyError, IndexError):
        return None


def _cmdline(pid: int) -> bytes | None:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()[:512].rstrip(b"\0").replace(b"\0", b" ")
    except OSError:
        return None


def list_from_host(container_pid: int, uid: int, limit: int = 64) -> tuple[list[bytes], int] | None:
    """Command lines (raw bytes, at most `limit`) of the processes of `uid` in the container, and
    how many more there were; None when the host cannot see the container's processes."""
    procs = _procs_file(container_pid)
    if procs is None or not os.access(procs, os.R_OK):
        return None
    try:
        pids = [int(p) for p in procs.read_text().split()]
    except (OSError, ValueError):
        return None
    found = [c for p in pids if p != container_pid and _live_uid(p) == uid
             if (c := _cmdline(p)) is not None]  # fmt: skip
    return found[:limit], max(len(found) - limit, 0)


ProcKey = tuple[int, int]
"""(host pid, start time in clock ticks): names one process even after its pid is reused."""


def _key(pid: int) -> ProcKey | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_bytes()
        return pid, int(stat[stat.rindex(b")") + 2 :].split()[19])
    except (OSError, ValueError, IndexError):
        return None


def snapshot(container_pid: int, uid: int) -> set[ProcKey] | None:
    """The processes of `uid` now running in the container (None: the host cannot see them).
    Used for the operator's own processes (a sample's setup), which are not the model's."""
    procs = _procs_file(container_pid)
    if procs is None or not os.access(procs, os.R_OK):
        return None
    try:
        pids = [int(p) for p in procs.read_text().split()]
    except (OSError, ValueError):
        return None
    keys = {_key(p) for p in pids if p != container_pid and _live_uid(p) == uid}
    return {k for k in keys if k is not None}


def kill_from_host(
    container_pid: int, uid: int, exempt: frozenset[ProcKey] = frozenset()
) -> int | None:
    """Kill every process of `uid` in the container whose init is host pid `container_pid`,
    except the `exempt` ones. Returns how many were killed, or None when the host cannot see
    the container's processes."""
    procs = _procs_file(container_pid)
    if procs is None or not os.access(procs, os.R_OK):
        return None
    killed = 0
    for _ in range(MAX_ROUNDS):
        try:
            pids = [int(p) for p in procs.read_text().split()]
        except (OSError, ValueError):
            return killed
        victims = [
            p for p in pids if p != container_pid and _live_uid(p) == uid and _key(p) not in exempt
        ]
        if not victims:
            return killed
        for pid in victims:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
                killed += 1
    return killed
