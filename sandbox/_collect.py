"""Evidence only the container knows, read before it is removed (blocking; run in a thread).

- exit state and Docker's OOMKilled flag (`docker inspect`);
- files changed outside the writable paths (`docker diff`, minus Docker's own mount points),
  each path in `_escape`'s printable form: the model names these files, and a name may hold
  newlines, control characters or bytes that are not UTF-8;
- the pids and memory cgroups: current/limit pids, whether the pids limit refused a fork
  (`pids.events`), whether the OOM killer ran (`memory.oom_control` / `memory.events`), which
  Docker's OOMKilled flag misses when only a child process is killed. Read from the host's cgroup
  filesystem when the daemon is local, else from inside the container.
"""

from __future__ import annotations

import contextlib
import os
import posixpath
import re
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ._conformance_kernel import host_proc_visible
from ._escape import escape_text
from ._evidence import ContainerEvidence, FsChange
from ._exec import PINNED_PATH, run_exec
from ._translate import KEEPALIVE_USER

if TYPE_CHECKING:
    import docker

_DIFF_KIND = {0: "C", 1: "A", 2: "D"}
_DOCKER_ARTIFACTS = ("/sbin/docker-init", "/usr/sbin/docker-init", "/usr/bin/docker-init")
"""Mount points Docker itself adds to the root filesystem (the init binary)."""

_CGROUP_FILES = (
    "pids.current", "pids.max", "pids.events", "memory.oom_control", "memory.events",
)  # fmt: skip

_INSIDE_SCRIPT = (
    "for f in pids/pids.current pids/pids.max pids/pids.events memory/memory.oom_control "
    "pids.current pids.max pids.events memory.events; do "
    'if [ -r "/sys/fs/cgroup/$f" ]; then printf "%s|" "${f##*/}"; '
    'tr "\\n" " " < "/sys/fs/cgroup/$f"; echo; fi; done'
)


def _under(path: str, base: str) -> bool:
    base = base.rstrip("/") or "/"
    return path == base or path.startswith(base + "/") or base == "/"


def changes_outside(diff: list[dict[str, Any]] | None, writable: list[str]) -> list[FsChange]:
    """`docker diff` entries outside `writable`, without Docker's own mount-point artifacts
    (and without the parent directories that changed only because of those)."""
    entries = [(d["Path"], _DIFF_KIND.get(d.get("Kind", 0), "C")) for d in diff or []]
    dropped = {
        p for p, _ in entries if p in _DOCKER_ARTIFACTS or any(_under(p, w) for w in writable)
    }
    below: set[str] = set()  # paths with an entry below them
    kept_below: set[str] = set()  # paths with a kept entry below them
    for path, kind in sorted(entries, key=lambda e: -e[0].count("/")):  # deepest first
        if kind == "C" and path in below and path not in kept_below:
            dropped.add(path)
        parent = posixpath.dirname(path)
        while parent not in ("/", ""):
            below.add(parent)
            if path not in dropped:
                kept_below.add(parent)
            parent = posixpath.dirname(parent)
    return [_change(p, k) for p, k in entries if p not in dropped]


def _change(path: str, kind: str) -> FsChange:
    """One entry, its path escaped: from the upper directory walk it is `os.fsdecode`d (raw
    bytes as surrogate escapes, kept exactly); from Docker's API, bytes that are not UTF-8 were
    already replaced by U+FFFD, which is escaped too (`\\ufffd`: the name was not UTF-8)."""
    text, escaped = escape_text(path)
    return FsChange(path=text, change=kind, escaped=escaped)  # type: ignore[arg-type]


_OVERLAY_DRIVERS = ("overlay2", "overlay", "fuse-overlayfs")

MAX_DIFF_ENTRIES = 20_000
"""At most this many diff entries are read; a container that changed more gets a final
`TRUNCATED_PATH` entry instead of the rest (so the audit still flags it)."""
TRUNCATED_PATH = "/[tierlock: diff truncated after {n} entries]"


def upper_dir_diff(
    attrs: dict[str, Any], limit: int = MAX_DIFF_ENTRIES
) -> list[dict[str, Any]] | None:
    """`docker diff` computed from the container's overlay upper directory on the host: what
    Docker's overlay2 driver does, and much faster than the naive full-tree comparison Docker
    uses for fuse-overlayfs. None when the layer directories are not visible here.

    The upper directory is written by the container, so it is walked through directory file
    descriptors opened with `O_NOFOLLOW` (a symlink is never followed on the host, even if the
    container swaps a directory for one mid-walk), lower layers are only looked up through real
    directories, and at most `limit` entries (and `MAX_DIFF_DEPTH` levels) are read.
    """
    gd = attrs.get("GraphDriver") or {}
    data = gd.get("Data") or {}
    upper, lower = data.get("UpperDir"), data.get("LowerDir") or ""
    if gd.get("Name") not in _OVERLAY_DRIVERS or not upper or not os.path.isdir(upper):
        return None
    lowers = [d for d in lower.split(":") if d]
    walk = _UpperWalk({"/": [d for d in lowers if os.path.isdir(d)]}, limit)
    fd = os.open(upper, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    try:
        walk.scan(fd, "/", 0)
    except _Truncated:
        walk.out.append({"Path": TRUNCATED_PATH.format(n=limit), "Kind": 0})
    finally:
        os.close(fd)
    return sorted(walk.out, key=lambda e: e["Path"])


MAX_DIFF_DEPTH = 200
"""Directory levels of the upper directory read at most (deeper trees count as truncated)."""
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)


class _Truncated(Exception):
    pass


@dataclass
class _UpperWalk:
    lower_dirs: dict[str, list[str]]
    limit: int
    out: list[dict[str, Any]] = field(default_factory=list)

    def add(self, path: str, kind: int) -> None:
        if len(self.out) >= self.limit:
            raise _Truncated
        self.out.append({"Path": path, "Kind": kind})

    def scan(self, fd: int, parent: str, depth: int) -> None:
        if depth > MAX_DIFF_DEPTH:
            raise _Truncated
        names: list[str] = []
        room = self.limit - len(self.out) + 2  # (+ the opaque markers, not entries)
        more = False
        with os.scandir(fd) as it:
            for entry in it:
                if len(names) == room:
                    more = True
                    break
                names.append(entry.name)
        in_lower = _real_lower_dirs(self.lower_dirs, parent)
        for name in sorted(names):
            rel = posixpath.join(parent, name)
            if name in (".wh..wh..opq", ".wh..opq"):  # opaque-directory markers
                continue
            if name.startswith(".wh."):
                self.add(posixpath.join(parent, name[4:]), 2)
                continue
            try:
                st = os.stat(name, dir_fd=fd, follow_symlinks=False)
            except OSError:  # gone meanwhile: still a change
                self.add(rel, 1)
                continue
            if stat.S_ISCHR(st.st_mode) and st.st_rdev == 0:  # overlay whiteout
                self.add(rel, 2)
                continue
            existed = any(os.path.lexists(os.path.join(d, name)) for d in in_lower)
            self.add(rel, 0 if existed else 1)
            if stat.S_ISDIR(st.st_mode):
                try:
                    child = os.open(name, _DIR_FLAGS, dir_fd=fd)
                except OSError:  # replaced (e.g. by a symlink) meanwhile: not followed
                    continue
                try:
                    self.scan(child, rel, depth + 1)
                finally:
                    os.close(child)
        if more:
            raise _Truncated


def _real_lower_dirs(cache: dict[str, list[str]], rel: str) -> list[str]:
    """The host directories that hold `rel` in the lower layers, reached through real
    directories only (a symlink in a lower layer is never followed on the host)."""
    if rel in cache:
        return cache[rel]
    parent, name = os.path.split(rel)
    found = []
    for d in _real_lower_dirs(cache, parent):
        with contextlib.suppress(OSError):
            if stat.S_ISDIR(os.lstat(os.path.join(d, name)).st_mode):
                found.append(os.path.join(d, name))
    cache[rel] = found
    return found


def _host_cgroup_dirs(pid: int) -> list[Path]:
    """The container's cgroup directories (v1 pids+memory, or the v2 unified one) on the host."""
    dirs: list[Path] = []
    for line in Path(f"/proc/{pid}/cgroup").read_text().splitlines():
        _, controllers, path = line.split(":", 2)
        rel = path.lstrip("/")
        if controllers == "":
            dirs.append(Path("/sys/fs/cgroup") / rel)
        else:
            for c in controllers.split(","):
                if c in ("pids", "memory"):
                    dirs.append(Path("/sys/fs/cgroup") / c / rel)
    return dirs


def _read_cgroup(client: docker.DockerClient, cid: str, pid: int) -> dict[str, str]:
    values: dict[str, str] = {}
    if host_proc_visible(pid, cid):
        with contextlib.suppress(OSError, ValueError):
            for d in _host_cgroup_dirs(pid):
                for name in _CGROUP_FILES:
                    f = d / name
                    if name not in values and f.is_file():
                        values[name] = f.read_text().replace("\n", " ").strip()
        if values:
            return values
    # as the keepalive's unprivileged user, never root (the container may have replaced what
    # runs here) and never the model's (whose processes could interfere with it)
    outcome = run_exec(
        client.api,
        cid,
        ["/bin/sh", "-c", _INSIDE_SCRIPT],
        user=KEEPALIVE_USER,
        env={"PATH": PINNED_PATH},
        limit=1 << 16,
        deadline=20,
    )
    for line in outcome.stdout.decode(errors="replace").splitlines():
        name, _, value = line.partition("|")
        values.setdefault(name, value.strip())
    return values


def _counter(text: str | None, key: str) -> int:
    m = re.search(rf"(?:^|\s){re.escape(key)}\s+(\d+)", text or "")
    return int(m.group(1)) if m else 0


def collect_evidence(
    client: docker.DockerClient,
    container_id: str,
    *,
    role: str,
    policy_hash: str,
    writable: list[str],
    timeouts: int = 0,
    output_limit_hits: int = 0,
) -> ContainerEvidence:
    """A `ContainerEvidence` for a container that still exists.

    The container is never paused: on this engine (20.10, cgroup v1) a paused container that a
    cancelled caller then tries to remove blocks every later call on it. The provider kills the
    model's processes first (`_reaper`), so nothing can race the file-system snapshot."""
    attrs = client.api.inspect_container(container_id)
    state = attrs.get("State") or {}
    running = bool(state.get("Running"))
    ev = ContainerEvidence(
        container=attrs.get("Name", "").lstrip("/") or container_id[:12],
        role=role,
        policy_hash=policy_hash,
        exit_code=None if running else state.get("ExitCode"),
        oom_killed=bool(state.get("OOMKilled")),
        running=running,
        timeouts=timeouts,
        output_limit_hits=output_limit_hits,
    )
    pid = int(state.get("Pid") or 0)
    if running and pid > 0:
        cg = _read_cgroup(client, container_id, pid)
        if cg.get("pids.current", "").isdigit():
            ev.pids_current = int(cg["pids.current"])
        if cg.get("pids.max", "").isdigit():
            ev.pids_limit = int(cg["pids.max"])
        ev.pids_limit_hit = _counter(cg.get("pids.events"), "max") > 0
        oom_kills = _counter(cg.get("memory.oom_control"), "oom_kill") + _counter(
            cg.get("memory.events"), "oom_kill"
        )
        ev.oom_killed = ev.oom_killed or oom_kills > 0
    try:
        diff = upper_dir_diff(attrs)
    except OSError:
        diff = None
    if diff is None:
        diff = client.api.diff(container_id) or []
        if len(diff) > MAX_DIFF_ENTRIES:
            diff = [
                *diff[:MAX_DIFF_ENTRIES],
                {"Path": TRUNCATED_PATH.format(n=MAX_DIFF_ENTRIES), "Kind": 0},
            ]
    ev.changes_outside_writable = changes_outside(diff, writable)
    if ev.pids_limit is None:
        limit = (attrs.get("HostConfig") or {}).get("PidsLimit")
        ev.pids_limit = limit if limit and limit > 0 else None
    return ev
