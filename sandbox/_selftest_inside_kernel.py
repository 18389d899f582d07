"""In-sandbox probes of identity, privilege, process, namespace and kernel exposure: the user and
its capabilities, no_new_privs and seccomp, PID 1, device nodes, clock setting, masked kernel
files and devices, read-only kernel paths, socket families.

Part of the in-sandbox program of `tierlock selftest` (see `_selftest_inside`): `_selftest`
joins the parts into one script, so this file imports nothing from tierlock at run time (its
imports of the other parts are dropped when joined: in one script they share one namespace).
"""

from __future__ import annotations

import ctypes
import errno
import os
import socket
from collections.abc import Callable

from ._selftest_inside_base import FACTS, in_child, syscall


def unreadable(path: str) -> tuple[bool, str]:
    """Held when the path is absent, unreadable, or reads as nothing (masked by /dev/null or an
    empty read-only tmpfs)."""
    try:
        if os.path.isdir(path):
            entries = os.listdir(path)
            return (not entries, f"{path}: directory with {len(entries)} entries")
        with open(path, "rb") as f:
            data = f.read(4096)
    except OSError as e:
        return True, f"{path}: {errno.errorcode.get(e.errno or 0, e.errno)}"
    return (not data, f"{path}: {len(data)} bytes readable")


def absent(path: str) -> tuple[bool, str]:
    return (not os.path.exists(path), f"{path} {'exists' if os.path.exists(path) else 'absent'}")


def unwritable(path: str) -> tuple[bool, str]:
    try:
        fd = os.open(path, os.O_WRONLY)
    except OSError as e:
        return True, f"{path}: {errno.errorcode.get(e.errno or 0, e.errno)}"
    os.close(fd)
    return False, f"{path} opened for writing"


def socket_refused(family: int, kind: int = socket.SOCK_STREAM, proto: int = 0) -> tuple[bool, str]:
    try:
        s = socket.socket(family, kind, proto)
    except OSError as e:
        return True, f"socket({family}): {errno.errorcode.get(e.errno or 0, e.errno)}"
    s.close()
    return False, f"socket({family}, {kind}) created"


def status_field(name: str) -> str:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(name + ":"):
                return line.split(":", 1)[1].strip()
    return ""


def not_pid1_signalable() -> tuple[bool, str]:
    try:
        os.kill(1, 0)
    except PermissionError:
        return True, "kill(1): EPERM"
    except OSError as e:
        return True, f"kill(1): {e}"
    return False, "the model's user can signal PID 1 (and so stop its own container)"


def pid1_private() -> tuple[bool, str]:
    for name in ("root", "environ", "mem"):
        try:
            with open(
                f"/proc/1/{name}" if name != "root" else "/proc/1/root/etc/hostname", "rb"
            ) as f:
                f.read(1)
            return False, f"/proc/1/{name} readable"
        except OSError:
            pass
    return True, "/proc/1/root, environ, mem refused"


def cgroup_path_private() -> tuple[bool, str]:
    with open("/proc/self/cgroup") as f:
        text = f.read()
    leaky = [
        line for line in text.splitlines() if "docker" in line or len(line.rsplit("/", 1)[-1]) == 64
    ]
    return (not leaky, f"{len(leaky)} cgroup line(s) naming the host's container id")


def nnp() -> tuple[bool, str]:
    return status_field("NoNewPrivs") == "1", f"NoNewPrivs {status_field('NoNewPrivs')}"


def seccomp_on() -> tuple[bool, str]:
    return status_field("Seccomp") == "2", f"Seccomp mode {status_field('Seccomp')}"


def caps_zero(field: str) -> Callable[[], tuple[bool, str]]:
    return lambda: (int(status_field(field), 16) == 0, f"{field} {status_field(field)}")


def not_root() -> tuple[bool, str]:
    return (os.getuid() != 0 and os.geteuid() != 0, f"uid {os.getuid()} euid {os.geteuid()}")


def setuid_root() -> tuple[bool, str]:
    try:
        os.setuid(0)
    except PermissionError:
        return True, "setuid(0): EPERM"
    return False, "setuid(0) succeeded"


def setgid_root() -> tuple[bool, str]:
    try:
        os.setgid(0)
    except PermissionError:
        return True, "setgid(0): EPERM"
    return False, "setgid(0) succeeded"


def ptrace_pid1() -> tuple[bool, str]:
    return syscall("ptrace", 16, 1, 0, 0)  # PTRACE_ATTACH to PID 1


def setns_pid1() -> tuple[bool, str]:
    try:
        fd = os.open("/proc/1/ns/mnt", os.O_RDONLY)
    except OSError as e:
        return True, f"/proc/1/ns/mnt: {errno.errorcode.get(e.errno or 0, e.errno)}"
    try:
        return in_child(lambda: syscall("setns", fd, 0))
    finally:
        os.close(fd)


def mknod_char() -> tuple[bool, str]:
    target = os.path.join(FACTS.get("workdir", "/tmp"), ".tierlock-selftest-node")
    try:
        os.mknod(target, 0o600 | 0o020000, os.makedev(1, 3))
    except OSError as e:
        return True, f"mknod: {errno.errorcode.get(e.errno or 0, e.errno)}"
    os.unlink(target)
    return False, "created a character device node"


def adjtime_set(name: str) -> tuple[bool, str]:
    """Reading the clock's state (`modes` 0) is harmless and allowed; setting it must not be."""
    buf = ctypes.create_string_buffer(512)
    ctypes.c_uint.from_buffer(buf).value = 1  # ADJ_OFFSET
    if name == "clock_adjtime":
        return syscall(name, 0, ctypes.addressof(buf))
    return syscall(name, ctypes.addressof(buf))


def kallsyms_hidden() -> tuple[bool, str]:
    try:
        with open("/proc/kallsyms") as f:
            lines = [f.readline() for _ in range(200)]
    except OSError as e:
        return True, f"/proc/kallsyms: {e}"
    leaked = [line for line in lines if line and not line.startswith("0000000000000000")]
    return (not leaked, f"{len(leaked)} of the first {len(lines)} symbols show an address")
