"""The in-sandbox half of `tierlock selftest`: probes that run as the model's user, in one process.

The program is sent to the sandbox's `python3` on stdin as one script and imports nothing from
tierlock: `_selftest` joins its parts in order (`INSIDE_PARTS`: the harness in
`_selftest_inside_base`, the probes in `_selftest_inside_kernel`, `_selftest_inside_resources`
and `_selftest_inside_leak`, then this file: what is probed, and `main`). Its only
argument is a JSON object of what the policy promises (`writable`, `network`, limits). Each probe
prints one JSON line `{"id", "held", "detail"}`; a probe that crashes prints `held: false` with
the error, so a broken probe never reads as a contained one. Every probe is harmless when it
succeeds (invalid arguments, a forked child for anything that changes the process).
"""

from __future__ import annotations

import os
import socket
from functools import partial

from ._selftest_inside_base import FACTS, in_child, probe, syscall
from ._selftest_inside_kernel import (
    absent,
    adjtime_set,
    caps_zero,
    cgroup_path_private,
    kallsyms_hidden,
    mknod_char,
    nnp,
    not_pid1_signalable,
    not_root,
    pid1_private,
    ptrace_pid1,
    seccomp_on,
    setgid_root,
    setns_pid1,
    setuid_root,
    socket_refused,
    unreadable,
    unwritable,
)
from ._selftest_inside_leak import (
    gateway_unreachable,
    interfaces,
    no_dns,
    no_docker_socket,
    only_policy_env,
)
from ._selftest_inside_resources import (
    cannot_create,
    cpu_capped,
    forks_capped,
    inotify_quota,
    ipc_refused,
    memory_capped,
    pids_capped,
    posix_mq,
    writable_is_capped,
)

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
