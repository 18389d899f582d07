"""In-sandbox probes of the file system, IPC and resources: read-only paths, capped writable
paths, SysV and POSIX IPC, the memory, pids and CPU limits (cgroups), a fork bomb, inotify.

Part of the in-sandbox program of `tierlock selftest` (see `_selftest_inside`): `_selftest`
joins the parts into one script, so this file imports nothing from tierlock at run time (its
imports of the other parts are dropped when joined: in one script they share one namespace).
"""

from __future__ import annotations

import ctypes
import errno
import os

from ._selftest_inside_base import FACTS, LIBC


def cannot_create(path: str) -> tuple[bool, str]:
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except OSError as e:
        return True, f"{path}: {errno.errorcode.get(e.errno or 0, e.errno)}"
    os.close(fd)
    os.unlink(path)
    return False, f"created {path}"


def ipc_refused(fn: str, *args: int) -> tuple[bool, str]:
    ctypes.set_errno(0)
    rv = getattr(LIBC, fn)(*args)
    if rv == -1:
        return True, f"{fn}: {errno.errorcode.get(ctypes.get_errno(), ctypes.get_errno())}"
    if fn == "shmget":
        LIBC.shmctl(rv, 0, None)  # IPC_RMID
    elif fn == "msgget":
        LIBC.msgctl(rv, 0, None)
    elif fn == "semget":
        LIBC.semctl(rv, 0, 0)
    return False, f"{fn} created IPC object {rv}"


def posix_mq() -> tuple[bool, str]:
    try:
        rt = ctypes.CDLL("librt.so.1", use_errno=True)
    except OSError:
        rt = LIBC
    ctypes.set_errno(0)
    mqd = rt.mq_open(b"/tierlock-selftest", os.O_CREAT | os.O_RDWR, 0o600, None)
    if mqd == -1:
        return True, f"mq_open: {errno.errorcode.get(ctypes.get_errno(), ctypes.get_errno())}"
    rt.mq_close(mqd)
    rt.mq_unlink(b"/tierlock-selftest")
    return False, "created a POSIX message queue"


def writable_is_capped(path: str, size: int) -> tuple[bool, str]:
    st = os.statvfs(path)
    total = st.f_blocks * st.f_frsize
    if total > size:
        return False, f"{path}: filesystem of {total} bytes, policy says {size}"
    probe_file = os.path.join(path, ".tierlock-selftest-cap")
    fd = os.open(probe_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.posix_fallocate(fd, 0, size + (1 << 20))
        return False, f"{path}: allocated more than its cap of {size} bytes"
    except OSError as e:
        return e.errno == errno.ENOSPC, f"{path}: {errno.errorcode.get(e.errno or 0, e.errno)}"
    finally:
        os.close(fd)
        os.unlink(probe_file)


def cgroup_value(*candidates: str) -> int | None:
    for path in candidates:
        try:
            with open(path) as f:
                text = f.read().strip().split()[0]
        except (OSError, IndexError):
            continue
        return -1 if text == "max" else int(text)
    return None


def memory_capped() -> tuple[bool, str]:
    v = cgroup_value("/sys/fs/cgroup/memory/memory.limit_in_bytes", "/sys/fs/cgroup/memory.max")
    want = int(FACTS.get("memory", 0))
    if v is None:
        return False, "memory cgroup not readable"
    return (0 < v <= want, f"memory limit {v}, policy {want}")


def pids_capped() -> tuple[bool, str]:
    v = cgroup_value("/sys/fs/cgroup/pids/pids.max", "/sys/fs/cgroup/pids.max")
    want = int(FACTS.get("pids", 0))
    if v is None:
        return False, "pids cgroup not readable"
    return (0 < v <= want, f"pids limit {v}, policy {want}")


def cpu_capped() -> tuple[bool, str]:
    quota = cgroup_value(
        "/sys/fs/cgroup/cpu/cpu.cfs_quota_us", "/sys/fs/cgroup/cpu,cpuacct/cpu.cfs_quota_us"
    )
    period = cgroup_value(
        "/sys/fs/cgroup/cpu/cpu.cfs_period_us", "/sys/fs/cgroup/cpu,cpuacct/cpu.cfs_period_us"
    )
    if quota is None or period is None:
        try:
            with open("/sys/fs/cgroup/cpu.max") as f:
                q, p = f.read().split()
            quota, period = (-1 if q == "max" else int(q)), int(p)
        except OSError:
            return False, "cpu cgroup not readable"
    want = float(FACTS.get("cpus", 0))
    if quota <= 0:
        return False, f"no CPU quota (policy {want})"
    return (quota / period <= want + 1e-6, f"CPU quota {quota / period:g}, policy {want:g}")


def forks_capped() -> tuple[bool, str]:
    """Fork until the pids limit refuses; the children wait on a pipe and exit together."""
    r, w = os.pipe()
    children: list[int] = []
    limit = int(FACTS.get("pids", 0))
    refused = False
    try:
        for _ in range(limit + 64):
            try:
                pid = os.fork()
            except OSError:
                refused = True
                break
            if pid == 0:
                os.close(w)
                os.read(r, 1)
                os._exit(0)
            children.append(pid)
    finally:
        os.close(w)
        os.close(r)
        for pid in children:
            os.waitpid(pid, 0)
    return (
        refused and len(children) <= limit,
        f"{len(children)} forks before refusal, policy {limit}",
    )


def inotify_quota() -> tuple[bool, str]:
    """Report how many inotify instances this uid may create (the host-side probe compares
    samples); here, only that the call works at all."""
    ctypes.set_errno(0)
    fd = LIBC.inotify_init1(0)
    if fd >= 0:
        os.close(fd)
    return True, f"inotify_init1: {'ok' if fd >= 0 else ctypes.get_errno()}"
