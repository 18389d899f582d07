"""Files a policy names besides its parent: seccomp profiles and Inspect approval policies.

Each reader opens only a regular file of at most `MAX_FILE_BYTES` (a FIFO or a device is refused
before it is opened, so nothing blocks), validates its format, and raises `FileProblem` with plain
words and, where known, the line and column. No message quotes the file beyond the offending
token: a policy may point at any file on the host (`seccomp: /etc/shadow`).
"""

from __future__ import annotations

import json
import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ._units import short

MAX_FILE_BYTES = 1024**2
"""Largest seccomp profile or approval policy read (Docker's own profile is about 20 KiB)."""

SECCOMP_ALLOWING = frozenset({"SCMP_ACT_ALLOW", "SCMP_ACT_LOG"})
"""Actions that let the syscall run."""
SECCOMP_DENYING = frozenset(
    {
        "SCMP_ACT_ERRNO",
        "SCMP_ACT_KILL",
        "SCMP_ACT_KILL_PROCESS",
        "SCMP_ACT_KILL_THREAD",
        "SCMP_ACT_TRAP",
        "SCMP_ACT_TRACE",
        "SCMP_ACT_NOTIFY",
    }
)
"""Actions that stop the syscall (TRACE and NOTIFY fail it when no tracer or agent listens)."""
SECCOMP_ACTIONS = SECCOMP_ALLOWING | SECCOMP_DENYING


class FileProblem(Exception):
    """What is wrong with a file a policy names: plain words, and a 1-based line and column."""

    def __init__(self, message: str, line: int = 0, column: int = 0) -> None:
        super().__init__(message)
        self.message, self.line, self.column = message, line, column

    def where(self, file: str) -> str:
        """`file:line:col` (or less when the position is unknown)."""
        return (
            file
            + (f":{self.line}" if self.line else "")
            + (f":{self.column}" if self.line and self.column else "")
        )


def read_text(path: Path) -> str:
    """The text of a small regular file; `FileProblem` for anything else."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise FileProblem("does not exist") from None
    except OSError as e:
        raise FileProblem(f"cannot be read ({e.strerror or type(e).__name__})") from None
    if stat.S_ISDIR(st.st_mode):
        raise FileProblem("is a directory, not a file")
    if not stat.S_ISREG(st.st_mode):
        raise FileProblem("is not a regular file (a FIFO, socket or device)")
    if st.st_size > MAX_FILE_BYTES:
        raise FileProblem(f"is larger than {MAX_FILE_BYTES // 1024**2} MiB")
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
        with os.fdopen(fd, "rb") as f:
            raw = f.read(MAX_FILE_BYTES + 1)
    except OSError as e:
        raise FileProblem(f"cannot be read ({e.strerror or type(e).__name__})") from None
    if len(raw) > MAX_FILE_BYTES:
        raise FileProblem(f"is larger than {MAX_FILE_BYTES // 1024**2} MiB")
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise FileProblem("is not UTF-8 text") from None


# --- seccomp ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class SeccompProfile:
    """What lint needs from a Docker seccomp profile."""

    default_action: str
    denying_rules: int
    """How many `syscalls` entries stop a syscall."""

    @property
    def allows_by_default(self) -> bool:
        return self.default_action in SECCOMP_ALLOWING


def _action(value: Any, where: str) -> str:
    if not isinstance(value, str):
        raise FileProblem(f"{where} must be a seccomp action like SCMP_ACT_ERRNO")
    if value not in SECCOMP_ACTIONS:
        raise FileProblem(f"{where} {short(value)} is not a seccomp action (e.g. SCMP_ACT_ERRNO)")
    return value


def read_seccomp_profile(path: Path) -> SeccompProfile:
    """Parse a Docker seccomp profile (JSON: `defaultAction`, `syscalls`); `FileProblem` if it is
    missing, unreadable, not JSON or not a profile."""
    text = read_text(path)
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise FileProblem(f"is not JSON ({e.msg})", e.lineno, e.colno) from None
    except RecursionError:
        raise FileProblem("is not a seccomp profile (nested too deeply)") from None
    if not isinstance(data, dict):
        raise FileProblem("is not a seccomp profile (expected a JSON object with defaultAction)")
    if "defaultAction" not in data:
        raise FileProblem("is not a seccomp profile: defaultAction is missing")
    default = _action(data["defaultAction"], "defaultAction")
    syscalls = data.get("syscalls", [])
    if not isinstance(syscalls, list):
        raise FileProblem("is not a seccomp profile: syscalls must be a list")
    denying = 0
    for i, rule in enumerate(syscalls):
        if not isinstance(rule, dict):
            raise FileProblem(f"is not a seccomp profile: syscalls[{i}] must be an object")
        names = rule.get("names", [rule["name"]] if "name" in rule else None)
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise FileProblem(f"is not a seccomp profile: syscalls[{i}].names must list names")
        action = _action(rule.get("action"), f"syscalls[{i}].action")
        denying += action in SECCOMP_DENYING and bool(names)
    return SeccompProfile(default, denying)


# --- approval ---------------------------------------------------------------------------------


def _plain_loc(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def read_approval_policy(path: Path) -> Any:
    """Parse an Inspect approval policy file (YAML or JSON: `approvers: [{name, tools, ...}]`)
    into Inspect's `ApprovalPolicyConfig`, checking that every approver is registered with
    Inspect; `FileProblem` otherwise."""
    # the policy loader's YAML reader: bounded, positioned
    from ._loader_yaml import LoadProblems, parse_yaml

    text = read_text(path)
    if not text.strip():
        raise FileProblem("is empty (expected a mapping with `approvers`)")
    try:
        data, spans, _root = parse_yaml(text, path.name, [])
    except LoadProblems as e:
        first = e.problems[0]
        raise FileProblem(first.message, first.location.line, first.location.column) from None
    if not isinstance(data, dict) or "approvers" not in data:
        raise FileProblem("is not an approval policy (expected a mapping with `approvers`)")
    from inspect_ai._util.registry import registry_lookup
    from inspect_ai.approval._policy import ApprovalPolicyConfig
    from pydantic import ValidationError

    def at(loc: tuple[Any, ...]) -> tuple[int, int]:
        path = tuple(p for p in loc if isinstance(p, str | int))
        for n in range(len(path), -1, -1):  # the key, or its nearest written ancestor
            s = spans.get(path[:n])
            if s is not None:
                return s.line, s.column
        return 0, 0

    try:
        config = ApprovalPolicyConfig.model_validate(data)
    except ValidationError as e:
        err = e.errors()[0]  # words only: pydantic's `input` would quote the file
        loc = tuple(err["loc"])
        what = "is missing" if err["type"] == "missing" else "has the wrong type"
        raise FileProblem(
            f"is not an approval policy: {_plain_loc(loc)} {what}", *at(loc)
        ) from None
    for i, approver in enumerate(config.approvers):
        if registry_lookup("approver", approver.name) is None:
            raise FileProblem(
                f"names approver {short(approver.name)}, which Inspect does not know "
                "(built in: auto, human)",
                *at(("approvers", i, "name")),
            )
    return config
