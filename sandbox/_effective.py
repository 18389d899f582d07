"""Effective limits: what the kernel enforces on a started sandbox, compared with its policy.

`docker inspect` says what Docker was asked for; a limit that means "none" there (memory 0,
a tmpfs of size 0) or that a runtime ignores still looks plausible. This reads what the kernel
applies, from inside the container, in the one exec of the post-start kernel check (`SELF_PROBE`,
run as the model's commands are): the cgroup memory (+ swap), pids and CPU limits (cgroup v1 or
v2) and, from the mount table, the size of every writable tmpfs the policy lists. A limit that is
missing, unreadable or looser than the policy is a mismatch: the sample is refused.

When the container's cgroup files are not visible inside it but the daemon is local, the same
values are read from the host's cgroup directories of the container's PID 1 (`host_cgroup_files`).
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from ._policy import Policy
from ._units import format_size

STATUS = "/proc/self/status"
MOUNTINFO = "/proc/self/mountinfo"
V1_MEMORY = "/sys/fs/cgroup/memory/memory.limit_in_bytes"
V1_MEMSW = "/sys/fs/cgroup/memory/memory.memsw.limit_in_bytes"
V1_PIDS = "/sys/fs/cgroup/pids/pids.max"
V1_CPU_QUOTA = "/sys/fs/cgroup/cpu/cpu.cfs_quota_us"
V1_CPU_PERIOD = "/sys/fs/cgroup/cpu/cpu.cfs_period_us"
V2_MEMORY = "/sys/fs/cgroup/memory.max"
V2_SWAP = "/sys/fs/cgroup/memory.swap.max"
V2_PIDS = "/sys/fs/cgroup/pids.max"
V2_CPU = "/sys/fs/cgroup/cpu.max"
CGROUP_FILES = (V1_MEMORY, V1_MEMSW, V1_PIDS, V1_CPU_QUOTA, V1_CPU_PERIOD,
                V2_MEMORY, V2_SWAP, V2_PIDS, V2_CPU)  # fmt: skip

PROBE_FILES = (STATUS, MOUNTINFO, *CGROUP_FILES)
SELF_PROBE = ["/bin/grep", "-s", "-H", "", *PROBE_FILES]
"""One process, run as the policy's user: `grep` prints every line of its own `/proc/self/status`
(the kernel's view of a process started the way the model's are), the mount table and the cgroup
limit files, each line prefixed `path:`. Files that do not exist (the other cgroup version) are
left out (grep then exits 2). A single process: this exec is part of every sample's start."""

UNLIMITED_FLOOR = 1 << 62
"""cgroup v1 writes "no limit" as a page-rounded LONG_MAX (9223372036854771712)."""


def parse_probe(text: str) -> dict[str, str]:
    """The files of `SELF_PROBE`'s output: path → contents (lines without the `path:` prefix)."""
    lines: dict[str, list[str]] = {}
    for line in text.splitlines():
        path, sep, rest = line.partition(":")
        if sep and path in PROBE_FILES:
            lines.setdefault(path, []).append(rest)
    return {path: "\n".join(v) for path, v in lines.items()}


_MISSING = object()


def _limit(text: str | None) -> int | object | None:
    """A cgroup limit value: bytes/count, None for "no limit", `_MISSING` when unreadable."""
    if text is None:
        return _MISSING
    value = text.strip().split()[0] if text.strip() else ""
    if value == "max":
        return None
    if re.fullmatch(r"-?\d+", value):
        n = int(value)
        return None if n < 0 or n >= UNLIMITED_FLOOR else n
    return _MISSING


def _first(files: Mapping[str, str], *paths: str) -> str | None:
    for p in paths:
        if p in files:
            return files[p]
    return None


@dataclass(frozen=True)
class Mount:
    """One line of `/proc/self/mountinfo` (the fields tierlock reads)."""

    point: str
    options: frozenset[str]
    fstype: str
    super_options: dict[str, str]


def _unescape(field: str) -> str:
    """mountinfo escapes space, tab, newline and backslash as octal (`\\040`)."""
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), field)


def parse_mountinfo(text: str) -> list[Mount]:
    """Mounts in mount order (a later mount on the same point hides an earlier one)."""
    out: list[Mount] = []
    for line in text.splitlines():
        head, sep, tail = line.partition(" - ")
        fields, rest = head.split(), tail.split()
        if not sep or len(fields) < 6 or len(rest) < 3:
            continue
        supers: dict[str, str] = {}
        for opt in rest[2].split(","):
            k, _, v = opt.partition("=")
            supers[k] = v
        out.append(Mount(_unescape(fields[4]), frozenset(fields[5].split(",")), rest[0], supers))
    return out


_SIZE = re.compile(r"(\d+)([kmgKMG]?)")


def tmpfs_bytes(size: str) -> int | None:
    """A tmpfs `size=` option as the kernel prints it (`65536k`) in bytes; None if unreadable."""
    m = _SIZE.fullmatch(size.strip())
    if not m:
        return None
    return int(m.group(1)) * 1024 ** " kmg".index((m.group(2) or " ").lower())


def _page_round(n: int) -> int:
    page = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096
    return -(-n // page) * page


def check_effective(files: Mapping[str, str], policy: Policy) -> list[str]:
    """Mismatches between the kernel's effective limits (`parse_probe` output) and the policy:
    each limit the policy sets must be in force and no looser."""
    limits = policy.limits
    bad: list[str] = []

    def looser(
        what: str, got: int | object | None, want: int, key: str, shown: Callable[[int], str] = str
    ) -> None:
        if got is _MISSING:
            bad.append(
                f"cannot read the effective {what} from the kernel; policy {key} is {shown(want)}"
            )
        elif got is None:
            bad.append(f"the kernel applies no {what}; policy {key} wants {shown(want)}")
        elif isinstance(got, int) and got > want:
            bad.append(
                f"the kernel's {what} is {shown(got)}, looser than policy {key} {shown(want)}"
            )

    if limits.memory is not None:  # 0 is not "no limit": nothing can be that tight
        looser(
            "memory limit",
            _limit(_first(files, V1_MEMORY, V2_MEMORY)),
            limits.memory,
            "limits.memory",
            format_size,
        )
        if V1_MEMSW in files:  # absent when the kernel does not account swap
            looser(
                "memory+swap limit",
                _limit(files[V1_MEMSW]),
                limits.memory,
                "limits.memory (no swap)",
                format_size,
            )
        if V2_SWAP in files:
            looser("swap limit", _limit(files[V2_SWAP]), 0, "limits.memory (no swap)", format_size)
    if limits.pids is not None:
        looser("pids limit", _limit(_first(files, V1_PIDS, V2_PIDS)), limits.pids, "limits.pids")
    if limits.cpus is not None:
        bad += _check_cpus(files, limits.cpus)
    bad += _check_tmpfs(files.get(MOUNTINFO), policy)
    return bad


def _check_cpus(files: Mapping[str, str], cpus: float) -> list[str]:
    if V2_CPU in files:
        quota_text, _, period_text = files[V2_CPU].strip().partition(" ")
    else:
        quota_text, period_text = files.get(V1_CPU_QUOTA, ""), files.get(V1_CPU_PERIOD, "")
    quota, period = _limit(quota_text or None), _limit(period_text or None)
    if quota is _MISSING or not isinstance(period, int) or period <= 0:
        return [
            f"cannot read the effective CPU quota from the kernel; policy limits.cpus is {cpus:g}"
        ]
    if quota is None:
        return [f"the kernel applies no CPU quota; policy limits.cpus wants {cpus:g}"]
    assert isinstance(quota, int)
    if quota > cpus * period * (1 + 1e-6) + 1:
        return [
            f"the kernel's CPU quota is {quota / period:g} CPUs, looser than policy "
            f"limits.cpus {cpus:g}"
        ]
    return []


def _check_tmpfs(mountinfo: str | None, policy: Policy) -> list[str]:
    writable = policy.filesystem.writable
    if not writable:
        return []
    if mountinfo is None:
        return [
            "cannot read the mount table (/proc/self/mountinfo); policy filesystem.writable "
            "sizes are unchecked"
        ]
    mounts = {m.point: m for m in parse_mountinfo(mountinfo)}  # the last mount on a point wins
    bad: list[str] = []
    for w in writable:
        path = w.path.rstrip("/") or "/"
        m = mounts.get(path)
        want = format_size(w.size)
        if m is None:
            bad.append(f"{path} is not mounted, policy filesystem.writable wants a {want} tmpfs")
        elif m.fstype != "tmpfs":
            bad.append(
                f"{path} is a {m.fstype} mount, policy filesystem.writable wants a {want} tmpfs"
            )
        elif "size" not in m.super_options:
            bad.append(
                f"tmpfs {path} has no size cap (the kernel's default, half of the "
                f"memory), policy filesystem.writable wants {want}"
            )
        else:
            size = tmpfs_bytes(m.super_options["size"])
            if size is None:
                bad.append(
                    f"tmpfs {path} size {m.super_options['size']!r} is unreadable, "
                    f"policy filesystem.writable wants {want}"
                )
            elif size == 0:
                bad.append(
                    f"tmpfs {path} is uncapped (size=0), policy filesystem.writable wants {want}"
                )
            elif size > _page_round(w.size):
                bad.append(
                    f"tmpfs {path} is {format_size(size)}, larger than policy "
                    f"filesystem.writable {want}"
                )
    return bad


def host_cgroup_files(pid: int) -> dict[str, str]:
    """The cgroup limit files of process `pid` read on the host, keyed as `SELF_PROBE` names them
    inside the container (for when the container does not show its own cgroups)."""
    wanted = {
        "memory": {"memory.limit_in_bytes": V1_MEMORY, "memory.memsw.limit_in_bytes": V1_MEMSW},
        "pids": {"pids.max": V1_PIDS},
        "cpu": {"cpu.cfs_quota_us": V1_CPU_QUOTA, "cpu.cfs_period_us": V1_CPU_PERIOD},
        "": {
            "memory.max": V2_MEMORY,
            "memory.swap.max": V2_SWAP,
            "pids.max": V2_PIDS,
            "cpu.max": V2_CPU,
        },
    }
    out: dict[str, str] = {}
    for line in Path(f"/proc/{pid}/cgroup").read_text().splitlines():
        _, controllers, rel = line.split(":", 2)
        names = controllers.split(",") if controllers else [""]
        base = Path("/sys/fs/cgroup") / controllers / rel.lstrip("/")
        for name in names:
            for file, key in wanted.get(name, {}).items():
                try:
                    out[key] = (base / file).read_text()
                except OSError:
                    continue
    return out
