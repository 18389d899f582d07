"""The in-sandbox half of `tierlock selftest`: probes that run as the model's user, in one process.

This file is sent to the sandbox's `python3` on stdin and imports nothing from tierlock. Its only
argument is a JSON object of what the policy promises (`writable`, `network`, limits). Each probe
prints one JSON line `{"id", "held", "detail"}`; a probe that crashes prints `held: false` with
the error, so a broken probe never reads as a contained one. Every probe is harmless when it
succeeds (invalid arguments, a forked child for anything that changes the process).
"""

from __future__ import annotations

import ctypes
import errno
import json
import os
import platform
import socket
import sys
from collections.abc import Callable
from functools import partial

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


def cannot_create(path: str) -> tuple[bool, str]:
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except OSError as e:
        return True, f"{path}: {errno.errorcode.get(e.errno or 0, e.errno)}"
    os.close(fd)
    os.unlink(path)
    return False, f"created {path}"


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


def only_policy_env() -> tuple[bool, str]:
    allowed = set(FACTS.get("env", [])) | {
        "PATH",
        "HOSTNAME",
        "HOME",
        "PWD",
        "SHLVL",
        "_",
        "LC_CTYPE",
    }
    if FACTS.get("network") == "allowlist":  # tierlock points the sandbox at its egress proxy
        allowed |= {
            "HTTP_PROXY",
            "HTTPS_PROXY",
            "NO_PROXY",
            "http_proxy",
            "https_proxy",
            "no_proxy",
        }
    extra = sorted(set(os.environ) - allowed)
    return (
        not extra,
        f"unexpected variables: {', '.join(extra)}" if extra else "only the policy's",
    )


def interfaces() -> tuple[bool, str]:
    names = sorted(os.listdir("/sys/class/net"))
    if FACTS.get("network") == "none":
        return (names == ["lo"], f"interfaces: {', '.join(names)}")
    return (len(names) <= 2, f"interfaces: {', '.join(names)}")


def gateway_unreachable() -> tuple[bool, str]:
    """The sample network's gateway (the host side of its bridge) must not answer: a refused
    connection is an answer from the host."""
    with open("/proc/net/route") as f:
        rows = [line.split() for line in f.readlines()[1:]]
    gateways = {r[2] for r in rows if len(r) > 2 and r[1] == "00000000"}
    if not gateways:
        return True, "no default route"
    import struct

    for hexgw in gateways:
        gw = socket.inet_ntoa(struct.pack("<I", int(hexgw, 16)))
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.settimeout(1.5)
        try:
            s.connect((gw, 22))
            return False, f"the gateway {gw} accepted a connection"
        except ConnectionRefusedError:
            return False, f"the gateway {gw} answered (connection refused)"
        except OSError:
            pass
        finally:
            s.close()
    return True, f"gateway(s) {', '.join(sorted(gateways))} unreachable"


def no_dns() -> tuple[bool, str]:
    if FACTS.get("network") != "none":
        return True, "not applicable: the policy has a network"
    try:
        socket.getaddrinfo("tierlock-selftest.invalid", 80)
    except OSError as e:
        return True, f"lookup failed: {e}"
    return False, "a name resolved without a network"


def no_docker_socket() -> tuple[bool, str]:
    found = [
        p
        for p in ("/var/run/docker.sock", "/run/docker.sock", "/run/containerd/containerd.sock")
        if os.path.exists(p)
    ]
    return (not found, f"present: {', '.join(found)}" if found else "no engine socket")


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


def inotify_quota() -> tuple[bool, str]:
    """Report how many inotify instances this uid may create (the host-side probe compares
    samples); here, only that the call works at all."""
    ctypes.set_errno(0)
    fd = LIBC.inotify_init1(0)
    if fd >= 0:
        os.close(fd)
    return True, f"inotify_init1: {'ok' if fd >= 0 else ctypes.get_errno()}"


MASKED = [
    "/proc/kcore",
    "/proc/keys",
    "/proc/timer_list",
    "/proc/sched_debug",
    "/proc/acpi",
    "/proc/scsi",
    "/proc/latency_stats",
    "/proc/asound",
    "/sys/firmware",
    "/proc/cmdline",
    "/sys/devices/virtual/powercap",
    "/proc/modules",
    "/sys/kernel/debug",
    "/proc/config.gz",
    "/sys/kernel/security",
    "/proc/sysrq-trigger",
]
DEVICES_ABSENT = [
    "/dev/kmsg",
    "/dev/mem",
    "/dev/kmem",
    "/dev/port",
    "/dev/sda",
    "/dev/vda",
    "/dev/nvme0",
    "/dev/fuse",
    "/dev/kvm",
    "/dev/net/tun",
    "/dev/vsock",
    "/dev/vhost-vsock",
]
READ_ONLY = [
    "/proc/sys/kernel/hostname",
    "/proc/sysrq-trigger",
    "/sys/kernel/uevent_helper",
    "/proc/sys/vm/drop_caches",
    "/sys/fs/cgroup/pids/cgroup.procs",
]
SYSCALLS = [
    ("mount", (0, 0, 0, 0, 0)),
    ("umount2", (0, 0)),
    ("keyctl", (0, 0, 0, 0, 0)),
    ("add_key", (0, 0, 0, 0, 0)),
    ("request_key", (0, 0, 0, 0)),
    ("bpf", (0, 0, 0)),
    ("perf_event_open", (0, 0, -1, -1, 0)),
    ("io_uring_setup", (1, 0)),
    ("io_uring_enter", (-1, 0, 0, 0, 0, 0)),
    ("io_uring_register", (-1, 0, 0, 0)),
    ("kexec_load", (0, 0, 0, 0)),
    ("kexec_file_load", (-1, -1, 0, 0, 0)),
    ("init_module", (0, 0, 0)),
    ("finit_module", (-1, 0, 0)),
    ("delete_module", (0, 0)),
    ("reboot", (0, 0, 0, 0)),
    ("swapon", (0, 0)),
    ("swapoff", (0,)),
    ("pivot_root", (0, 0)),
    ("chroot", (0,)),
    ("settimeofday", (1, 0)),
    ("clock_settime", (0, 0)),
    ("userfaultfd", (0,)),
    ("open_by_handle_at", (-1, 0, 0)),
    ("acct", (0,)),
    ("quotactl", (0, 0, 0, 0)),
    ("syslog", (3, 0, 0)),
    ("sethostname", (0, 0)),
    ("setdomainname", (0, 0)),
    ("iopl", (3,)),
    ("ioperm", (0, 1, 1)),
    ("fsopen", (0, 0)),
    ("fsmount", (-1, 0, 0)),
    ("open_tree", (-1, 0, 0)),
    ("move_mount", (-1, 0, -1, 0, 0)),
    ("mount_setattr", (-1, 0, 0, 0, 0)),
    ("fanotify_init", (0, 0)),
    ("lookup_dcookie", (0, 0, 0)),
    ("vhangup", ()),
]
SOCKET_FAMILIES = [
    ("vsock", 40),
    ("packet", 17),
    ("alg", 38),
    ("key", 15),
    ("tipc", 30),
    ("rds", 21),
    ("x25", 9),
    ("ax25", 3),
    ("appletalk", 5),
    ("ipx", 4),
    ("netrom", 6),
    ("rose", 11),
    ("decnet", 12),
    ("atmpvc", 8),
    ("can", 29),
    ("bluetooth", 31),
    ("nfc", 39),
    ("smc", 43),
    ("xdp", 44),
    ("kcm", 41),
    ("llc", 26),
    ("pppox", 24),
    ("rxrpc", 33),
    ("qipcrtr", 42),
    ("caif", 37),
    ("phonet", 35),
    ("ieee802154", 36),
    ("mctp", 45),
]


def main() -> None:
    probe("identity.not-root", not_root)
    probe("identity.setuid-root", setuid_root)
    probe("identity.setgid-root", setgid_root)
    probe("privilege.no-new-privs", nnp)
    probe("privilege.seccomp-filter", seccomp_on)
    for field in ("CapEff", "CapPrm", "CapBnd", "CapAmb", "CapInh"):
        probe(f"privilege.{field.lower()}-empty", caps_zero(field))
    probe("privilege.mknod-device", mknod_char)
    probe("process.signal-pid1", not_pid1_signalable)
    probe("process.pid1-private", pid1_private)
    probe("process.ptrace-pid1", ptrace_pid1)
    probe("namespace.setns-pid1", setns_pid1)
    probe("namespace.unshare-user", lambda: in_child(lambda: syscall("unshare", 0x10000000)))
    probe("namespace.unshare-mount", lambda: in_child(lambda: syscall("unshare", 0x00020000)))
    probe("namespace.unshare-net", lambda: in_child(lambda: syscall("unshare", 0x40000000)))
    for name, args in SYSCALLS:
        probe(f"syscall.{name}", partial(syscall, name, *args))
    for name, fam in SOCKET_FAMILIES:
        probe(f"socket.af-{name}", partial(socket_refused, fam))
    probe("socket.raw-inet", lambda: socket_refused(socket.AF_INET, socket.SOCK_RAW, 1))
    probe("socket.packet-dgram", lambda: socket_refused(17, socket.SOCK_DGRAM, 0))
    for path in MASKED:
        probe(f"kernel.masked{path.replace('/', '.')}", partial(unreadable, path))
    for path in DEVICES_ABSENT:
        probe(
            f"kernel.no-device{path.replace('/', '.')}",
            partial(absent, path),
        )
    for path in READ_ONLY:
        probe(f"kernel.read-only{path.replace('/', '.')}", partial(unwritable, path))
    probe("kernel.kallsyms-addresses", kallsyms_hidden)
    probe("syscall.adjtimex-set", lambda: adjtime_set("adjtimex"))
    probe("syscall.clock_adjtime-set", lambda: adjtime_set("clock_adjtime"))
    probe("cgroup.path-private", cgroup_path_private)
    writable = {w["path"]: int(w["size"]) for w in FACTS.get("writable", [])}
    for path in ("/etc", "/usr/bin", "/", "/var/tmp", "/home", "/opt", "/root", "/dev"):
        probe(
            f"filesystem.read-only{path.replace('/', '.') if path != '/' else '.root'}",
            partial(cannot_create, os.path.join(path, ".tierlock-selftest")),
        )
    if "/dev/shm" not in writable:
        probe("ipc.dev-shm", lambda: cannot_create("/dev/shm/.tierlock-selftest"))
    if "/dev/mqueue" not in writable:
        probe("ipc.dev-mqueue", lambda: cannot_create("/dev/mqueue/tierlock-selftest"))
        probe("ipc.posix-mq", posix_mq)
    probe("ipc.sysv-shm", lambda: ipc_refused("shmget", 0, 4096, 0o1000 | 0o600))
    probe("ipc.sysv-msg", lambda: ipc_refused("msgget", 0, 0o1000 | 0o600))
    probe("ipc.sysv-sem", lambda: ipc_refused("semget", 0, 1, 0o1000 | 0o600))
    for path, size in writable.items():
        probe(
            f"filesystem.capped{path.replace('/', '.')}",
            partial(writable_is_capped, path, size),
        )
    probe("resources.memory-limit", memory_capped)
    probe("resources.pids-limit", pids_capped)
    probe("resources.cpu-quota", cpu_capped)
    probe("resources.fork-bomb", forks_capped)
    probe("leak.host-environment", only_policy_env)
    probe("leak.engine-socket", no_docker_socket)
    probe("network.interfaces", interfaces)
    probe("network.gateway-unreachable", gateway_unreachable)
    probe("network.no-dns", no_dns)
    probe("resources.inotify", inotify_quota)


if __name__ == "__main__":
    main()
