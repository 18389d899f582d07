"""The in-sandbox probes' harness: the policy's facts (`FACTS`), libc, one JSON line per probe
(`emit`, `probe`), raw system calls by number (`syscall`) and probes run in a forked child
(`in_child`).

Part of the in-sandbox program of `tierlock selftest` (see `_selftest_inside`): `_selftest`
joins the parts into one script, so this file imports nothing from tierlock at run time (its
imports of the other parts are dropped when joined: in one script they share one namespace).
"""

from __future__ import annotations

import ctypes
import errno
import json
import os
import platform
import sys
from collections.abc import Callable

FACTS = json.loads(sys.argv[1]) if len(sys.argv) > 1 else {}
LIBC = ctypes.CDLL(None, use_errno=True)
REFUSED = {errno.EPERM, errno.EACCES, errno.ENOSYS}


_X86 = {
    "mount": 165,
    "umount2": 166,
    "unshare": 272,
    "setns": 308,
    "ptrace": 101,
    "keyctl": 250,
    "add_key": 248,
    "request_key": 249,
    "bpf": 321,
    "perf_event_open": 298,
    "io_uring_setup": 425,
    "io_uring_enter": 426,
    "io_uring_register": 427,
    "kexec_load": 246,
    "kexec_file_load": 320,
    "init_module": 175,
    "finit_module": 313,
    "delete_module": 176,
    "reboot": 169,
    "swapon": 167,
    "swapoff": 168,
    "pivot_root": 155,
    "chroot": 161,
    "settimeofday": 164,
    "clock_settime": 227,
    "clock_adjtime": 305,
    "adjtimex": 159,
    "userfaultfd": 323,
    "open_by_handle_at": 304,
    "acct": 163,
    "quotactl": 179,
    "syslog": 103,
    "sethostname": 170,
    "setdomainname": 171,
    "iopl": 172,
    "ioperm": 173,
    "fsopen": 430,
    "fsmount": 432,
    "open_tree": 428,
    "move_mount": 429,
    "fsconfig": 431,
    "mount_setattr": 442,
    "fanotify_init": 300,
    "lookup_dcookie": 212,
    "vhangup": 153,
    "process_vm_writev": 311,
    "kcmp": 312,
    "name_to_handle_at": 303,
    "mknod": 133,
}
_ARM = {
    "mount": 40,
    "umount2": 39,
    "unshare": 97,
    "setns": 268,
    "ptrace": 117,
    "keyctl": 219,
    "add_key": 217,
    "request_key": 218,
    "bpf": 280,
    "perf_event_open": 241,
    "io_uring_setup": 425,
    "io_uring_enter": 426,
    "io_uring_register": 427,
    "kexec_load": 104,
    "kexec_file_load": 294,
    "init_module": 105,
    "finit_module": 273,
    "delete_module": 106,
    "reboot": 142,
    "swapon": 224,
    "swapoff": 225,
    "pivot_root": 41,
    "chroot": 51,
    "settimeofday": 170,
    "clock_settime": 112,
    "clock_adjtime": 266,
    "adjtimex": 171,
    "userfaultfd": 282,
    "open_by_handle_at": 265,
    "acct": 89,
    "quotactl": 60,
    "syslog": 116,
    "sethostname": 161,
    "setdomainname": 162,
    "fsopen": 430,
    "fsmount": 432,
    "open_tree": 428,
    "move_mount": 429,
    "fsconfig": 431,
    "mount_setattr": 442,
    "fanotify_init": 262,
    "lookup_dcookie": 18,
    "vhangup": 58,
    "process_vm_writev": 271,
    "kcmp": 272,
    "name_to_handle_at": 264,
}
NR = _ARM if platform.machine() in ("aarch64", "arm64") else _X86


def emit(pid: str, held: bool, detail: str) -> None:
    print(json.dumps({"id": pid, "held": bool(held), "detail": detail[:300]}), flush=True)


def probe(pid: str, fn: Callable[[], tuple[bool, str]]) -> None:
    try:
        held, detail = fn()
    except Exception as e:  # a probe that breaks is not a probe that held
        held, detail = False, f"probe error: {type(e).__name__}: {e}"
    emit(pid, held, detail)


def syscall(name: str, *args: int) -> tuple[bool, str]:
    """Held when the kernel refuses the call itself (EPERM/EACCES/ENOSYS): filtered, or no
    privilege. Any other outcome means the call reached the code it guards."""
    nr = NR.get(name)
    if nr is None:
        return True, f"{name} does not exist on {platform.machine()}"
    ctypes.set_errno(0)
    rv = LIBC.syscall(ctypes.c_long(nr), *[ctypes.c_long(a) for a in args])
    err = ctypes.get_errno()
    if rv == -1 and err in REFUSED:
        return True, f"{name}: {errno.errorcode.get(err, err)}"
    return False, f"{name} reached the kernel: rv={rv} errno={errno.errorcode.get(err, err)}"


def in_child(fn: Callable[[], tuple[bool, str]]) -> tuple[bool, str]:
    """Run a probe that may change the calling process in a forked child."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(r)
        try:
            held, detail = fn()
        except Exception as e:
            held, detail = False, f"probe error: {e}"
        os.write(w, json.dumps([held, detail]).encode())
        os._exit(0)
    os.close(w)
    data = b""
    while chunk := os.read(r, 65536):
        data += chunk
    os.close(r)
    os.waitpid(pid, 0)
    held, detail = json.loads(data or b'[false, "child died"]')
    return bool(held), str(detail)
