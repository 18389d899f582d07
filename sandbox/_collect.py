"""Evidence only the container knows, read before it is removed (blocking; run in a thread).

- exit state and Docker's OOMKilled flag (`docker inspect`);
- files changed outside the writable paths (`docker diff`, minus Docker's own mount points);
- the pids and memory cgroups: current/limit pids, whether the pids limit refused a fork
  (`pids.events`), whether the OOM killer ran (`memory.oom_control` / `memory.events`), which
  Docker's OOMKilled flag misses when only a child process is killed. Read from the host's cgroup
  filesystem when the daemon is local, else from inside the container.
"""

from __future__ import annotations

import contextlib
import os
import re
import stat
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ._conformance import host_proc_visible
from ._evidence import ContainerEvidence, FsChange
from ._exec import PINNED_PATH, run_exec

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
    dropped = {p for p, _ in entries
               if p in _DOCKER_ARTIFACTS or any(_under(p, w) for w in writable)}
    for path, kind in sorted(entries, key=lambda e: -e[0].count("/")):
        if kind != "C" or path in dropped:
            continue
        below = [p for p, _ in entries if p != path and _under(p, path)]
        if below and all(p in dropped for p in below):
            dropped.add(path)
    return [FsChange(path=p, change=k) for p, k in entries if p not in dropped]  # type: ignore[arg-type]


_OVERLAY_DRIVERS = ("overlay2", "overlay", "fuse-overlayfs")


def upper_dir_diff(attrs: dict[str, Any]) -> list[dict[str, Any]] | None:
    """`docker diff` computed from the container's overlay upper directory on the host: what
    Docker's overlay2 driver does, and much faster than the naive full-tree comparison Docker
    uses for fuse-overlayfs. None when the layer directories are not visible here."""
    gd = attrs.get("GraphDriver") or {}
    data = gd.get("Data") or {}
    upper, lower = data.get("UpperDir"), data.get("LowerDir") or ""
    if gd.get("Name") not in _OVERLAY_DRIVERS or not upper or not os.path.isdir(upper):
        return None
    lowers = [d for d in lower.split(":") if d]
    out: list[dict[str, Any]] = []
    for root, dirs, files in os.walk(upper):
        for name in sorted(dirs + files):
            full = os.path.join(root, name)
            rel = "/" + os.path.relpath(full, upper)
            if name in (".wh..wh..opq", ".wh..opq"):  # opaque-directory markers
                continue
            if name.startswith(".wh."):
                out.append({"Path": os.path.join(os.path.dirname(rel), name[4:]), "Kind": 2})
                continue
            st = os.lstat(full)
            if stat.S_ISCHR(st.st_mode) and st.st_rdev == 0:  # overlay whiteout
                out.append({"Path": rel, "Kind": 2})
                continue
            existed = any(os.path.lexists(d + rel) for d in lowers)
            out.append({"Path": rel, "Kind": 0 if existed else 1})
    return sorted(out, key=lambda e: e["Path"])


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
    outcome = run_exec(client.api, cid, ["/bin/sh", "-c", _INSIDE_SCRIPT], user="0",
                       env={"PATH": PINNED_PATH}, limit=1 << 16, deadline=20)
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
    """A `ContainerEvidence` for a container that still exists."""
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
    try:
        diff = upper_dir_diff(attrs)
    except OSError:
        diff = None
    if diff is None:
        diff = client.api.diff(container_id)
    ev.changes_outside_writable = changes_outside(diff, writable)
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
    if ev.pids_limit is None:
        limit = (attrs.get("HostConfig") or {}).get("PidsLimit")
        ev.pids_limit = limit if limit and limit > 0 else None
    return ev
