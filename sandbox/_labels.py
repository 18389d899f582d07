"""Labels on every Docker object tierlock creates, and who owns them.

`tierlock.owner` names the creating process as `<host>/<boot id>/<pid>/<start time>`, so cleanup
can tell a live run's objects from a crashed run's: an owner on this host whose boot id, pid or
process start time no longer match is dead, and its objects are leftovers.
"""

from __future__ import annotations

import os
import re
import socket
import uuid
from functools import cache
from pathlib import Path

PROJECT = "tierlock"
PROJECT_LABEL = "tierlock.project"
RUN_LABEL = "tierlock.run"
OWNER_LABEL = "tierlock.owner"
TASK_LABEL = "tierlock.task"
SAMPLE_LABEL = "tierlock.sample"
POLICY_LABEL = "tierlock.policy"
POLICY_NAME_LABEL = "tierlock.policy-name"
ROLE_LABEL = "tierlock.role"

_RUN_ID = uuid.uuid4().hex[:12]


def run_id() -> str:
    """This process's run id (one per process)."""
    return _RUN_ID


def _boot_id() -> str:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return "unknown"


def _start_time(pid: int) -> str | None:
    """The process's start time in clock ticks since boot (field 22 of /proc/PID/stat)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # the command name (field 2) may contain spaces and parentheses: split after the last ')'
    fields = stat[stat.rfind(")") + 2 :].split()
    return fields[19] if len(fields) > 19 else None


@cache
def owner() -> str:
    """`<host>/<boot id>/<pid>/<start time>` of this process."""
    pid = os.getpid()
    return f"{socket.gethostname()}/{_boot_id()}/{pid}/{_start_time(pid) or 0}"


def owner_alive(value: str) -> bool | None:
    """Whether the process named by an owner label still runs; None when it can't be told
    (another host, or a malformed label)."""
    parts = value.split("/")
    if len(parts) != 4:
        return None
    host, boot, pid, start = parts
    if host != socket.gethostname():
        return None
    if boot != _boot_id():
        return False
    if not pid.isdigit():
        return None
    return _start_time(int(pid)) == start


def sanitize(value: object, limit: int = 63) -> str:
    """A label- and name-safe spelling of an id."""
    text = re.sub(r"[^A-Za-z0-9_.-]+", "-", str(value)).strip("-.")
    return text[:limit] or "x"


def object_labels(
    *,
    role: str,
    task: str | None = None,
    sample: object | None = None,
    policy_hash: str | None = None,
    policy_name: str | None = None,
) -> dict[str, str]:
    """The labels for one object of this run."""
    labels = {
        PROJECT_LABEL: PROJECT,
        RUN_LABEL: run_id(),
        OWNER_LABEL: owner(),
        ROLE_LABEL: role,
    }
    if task is not None:
        labels[TASK_LABEL] = str(task)
    if sample is not None:
        labels[SAMPLE_LABEL] = str(sample)
    if policy_hash is not None:
        labels[POLICY_LABEL] = policy_hash
    if policy_name is not None:
        labels[POLICY_NAME_LABEL] = policy_name
    return labels
