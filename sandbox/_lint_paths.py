"""Lint rules about paths: host bind mounts (the container runtime's socket or state, sensitive
host directories, write access) and container paths (absolute, not over kernel interfaces or system
directories, each mounted once, the workdir writable).

A host path is compared in every spelling that reaches the same file: surrounding whitespace, `..`,
`//` and a trailing `/` removed, symlinks resolved on this host (`os.path.realpath`), and `/var/run`
read as `/run`.
"""

from __future__ import annotations

import contextlib
import os
import posixpath
from collections.abc import Iterator
from pathlib import Path

from ._lint_rule import Finding, LintContext
from ._loader_positions import KeyPath, format_key_path
from ._policy import Policy

# --- host paths -------------------------------------------------------------------------------

_HOST_ALIASES = (("/var/run", "/run"), ("/var/lock", "/run/lock"))

RUNTIME_PATHS = (
    "/run/docker.sock",
    "/run/docker",
    "/run/containerd",
    "/run/crio",
    "/run/podman",
    "/run/buildkit",
    "/var/lib/docker",
    "/var/lib/containerd",
    "/var/lib/containers",
)
"""Host paths that hand over the container runtime (its socket, state or images)."""
RUNTIME_SOCKET_NAMES = frozenset(
    {"docker.sock", "containerd.sock", "crio.sock", "podman.sock", "buildkitd.sock"}
)

SENSITIVE_HOST_PATHS = (
    "/proc",
    "/sys",
    "/dev",
    "/etc",
    "/root",
    "/boot",
    "/home",
    "/lib/modules",
    "/var/lib/kubelet",
)
"""Host directories that must not be mounted (nor anything inside them); `/` neither."""


def _alias(p: str) -> str:
    for alias, real in _HOST_ALIASES:
        if p == alias or p.startswith(alias + "/"):
            return real + p[len(alias) :]
    return p


def host_path_forms(path: str) -> frozenset[str]:
    """Every canonical spelling of an absolute host path: surrounding whitespace, `..`, `//` and
    a trailing `/` removed, symlinks resolved on this host (e.g. `/var/run` → `/run`, or a link to
    the Docker socket), `/var/run` read as `/run` where the host lacks the link. Empty for a
    relative path."""
    forms: set[str] = set()
    for spelled in {path, path.strip()}:
        if not spelled.startswith("/"):
            continue
        forms.add(container_path(spelled))
        with contextlib.suppress(OSError, ValueError):
            forms.add(os.path.realpath(spelled))
    return frozenset(_alias(f) for f in forms) | forms


def container_path(path: str) -> str:
    """A path with surrounding whitespace, `..`, `.`, repeated and trailing `/` removed (lexically:
    `/tmp/`, `//tmp` and `/x/../tmp ` are all `/tmp`)."""
    text = path.strip()
    if not text.startswith("/"):
        return posixpath.normpath(text) if text else text
    return posixpath.normpath("/" + text.lstrip("/"))


def _inside(p: str, base: str) -> bool:
    return p == base or p.startswith(base.rstrip("/") + "/")


def _runtime_exposure(forms: frozenset[str]) -> str | None:
    for f in sorted(forms):
        if posixpath.basename(f) in RUNTIME_SOCKET_NAMES:
            return f
        for r in RUNTIME_PATHS:
            if f != "/" and (_inside(f, r) or _inside(r, f)):
                return f
    return None


def _home_dirs() -> tuple[str, ...]:
    home = str(Path.home())
    return (home,) if home not in ("/", "") else ()


def _sensitive(forms: frozenset[str]) -> str | None:
    for f in sorted(forms):
        if f == "/":
            return f
        for s in (*SENSITIVE_HOST_PATHS, *_home_dirs()):
            if _inside(f, s):
                return f
    return None


def _spelled(path: str, form: str) -> str:
    shown = path if path == path.strip() else repr(path)
    return shown if path == form else f"{shown} (= {form})"


# --- rules ------------------------------------------------------------------------------------


def _runtime_mounts(p: Policy, _: LintContext) -> Iterator[Finding]:
    for i, m in enumerate(p.filesystem.mounts):
        hit = _runtime_exposure(host_path_forms(m.source))
        if hit:
            yield Finding(
                ("filesystem", "mounts", i, "source"),
                f"host mount {_spelled(m.source, hit)} exposes the container runtime "
                "(its socket or state): full control of the host",
            )


def _sensitive_mounts(p: Policy, _: LintContext) -> Iterator[Finding]:
    for i, m in enumerate(p.filesystem.mounts):
        hit = _sensitive(host_path_forms(m.source))
        if hit:
            yield Finding(
                ("filesystem", "mounts", i, "source"),
                f"host mount {_spelled(m.source, hit)} exposes a sensitive host "
                "directory (/, /proc, /sys, /dev, /etc, /root, /boot or a home)",
            )


def _writable_binds(p: Policy, _: LintContext) -> Iterator[Finding]:
    for i, m in enumerate(p.filesystem.mounts):
        if m.mode == "rw":
            yield Finding(
                ("filesystem", "mounts", i, "mode"),
                f"host mount {m.source} is writable: the sandbox can change host files; "
                "use mode: ro, or a writable tmpfs",
            )


def _absolute_paths(p: Policy, _: LintContext) -> Iterator[Finding]:
    def bad(path: str) -> bool:
        return not path.startswith("/")

    for i, m in enumerate(p.filesystem.mounts):
        for key in ("source", "target"):
            v = getattr(m, key)
            if bad(v):
                yield Finding(("filesystem", "mounts", i, key), f"{v!r} is not an absolute path")
    for i, w in enumerate(p.filesystem.writable):
        if bad(w.path):
            yield Finding(
                ("filesystem", "writable", i, "path"), f"{w.path!r} is not an absolute path"
            )
    if bad(p.filesystem.workdir):
        yield Finding(
            ("filesystem", "workdir"), f"{p.filesystem.workdir!r} is not an absolute path"
        )


KERNEL_PATHS = ("/proc", "/sys", "/dev")
"""Kernel interfaces inside the container: nothing is mounted over, into or above them (a tmpfs
over /sys hides the cgroup files evidence is read from), except the `/dev` entries below."""
KERNEL_PATH_EXCEPTIONS = ("/dev/shm", "/dev/mqueue")
SYSTEM_PATHS = ("/etc", "/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
"""Where the user database and the programs tierlock's own helper commands run live: a
writable tmpfs or bind there lets the sandbox's user rewrite them (e.g. its uid in /etc/passwd,
or `timeout`, `sh` and `cat`)."""


def _container_targets(p: Policy) -> Iterator[tuple[KeyPath, str, bool]]:
    """(key path, normalized container path, writable) of every tmpfs and bind target."""
    fs = p.filesystem
    for i, w in enumerate(fs.writable):
        yield ("filesystem", "writable", i, "path"), container_path(w.path), True
    for i, m in enumerate(fs.mounts):
        yield ("filesystem", "mounts", i, "target"), container_path(m.target), m.mode == "rw"


def _overlaps(path: str, base: str) -> bool:
    """`path` is `base`, inside it, or above it (e.g. `/`)."""
    return _inside(path, base) or _inside(base, path)


def _kernel_paths(p: Policy, _: LintContext) -> Iterator[Finding]:
    for key, path, _w in _container_targets(p):
        if not path.startswith("/") or path in KERNEL_PATH_EXCEPTIONS:
            continue
        hit = path == "/" or any(_overlaps(path, k) for k in KERNEL_PATHS)
        if hit:
            yield Finding(
                key,
                f"{path} covers the root or a kernel interface (/proc, /sys, "
                "/dev); mount elsewhere",
            )


def _system_paths(p: Policy, _: LintContext) -> Iterator[Finding]:
    for key, path, writable in _container_targets(p):
        if writable and path.startswith("/") and any(_overlaps(path, s) for s in SYSTEM_PATHS):
            yield Finding(
                key,
                f"writable {path} lets the sandbox rewrite system files (users, "
                "the programs tierlock runs inside); use e.g. /workspace",
            )


def _workdir_writable(p: Policy, _: LintContext) -> Iterator[Finding]:
    fs = p.filesystem
    if not fs.read_only_root:
        return
    writable = [w.path for w in fs.writable] + [m.target for m in fs.mounts if m.mode == "rw"]
    if not any(_inside(container_path(fs.workdir), container_path(w)) for w in writable):
        yield Finding(
            ("filesystem", "workdir"),
            f"workdir {fs.workdir} is not under a writable path: commands cannot "
            "write where they start",
        )


def _duplicate_targets(p: Policy, _: LintContext) -> Iterator[Finding]:
    """The same container path mounted twice (a later mount hides the earlier one and its size
    cap: a capped `/tmp` and an uncapped `/tmp/` would leave /tmp uncapped)."""
    seen: dict[str, KeyPath] = {}
    for key, path, _w in _container_targets(p):
        if path in seen:
            first = format_key_path(seen[path][:-1])
            yield Finding(key, f"{path} is mounted twice (also {first}); list each path once")
        else:
            seen[path] = key


def _writable_root(p: Policy, _: LintContext) -> Iterator[Finding]:
    if not p.filesystem.read_only_root:
        yield Finding(
            ("filesystem", "read_only_root"),
            "writable root filesystem; keep it read-only and list writable paths",
        )
