"""tierlock's own seccomp profile: the syscalls an unprivileged shell and Python need, nothing else.

The profile is an allow-list written for tierlock's sandboxes, whose processes never hold a
capability: like Docker's default it refuses everything not listed (EPERM) and namespace flags to
`clone`, and it goes further, refusing io_uring, ptrace and cross-process memory access, and every
socket family but `AF_UNIX`, `AF_INET`, `AF_INET6` and `AF_NETLINK` (no `AF_VSOCK`, no
`AF_PACKET`, no module autoloading through an exotic family). Only the native architecture is
listed, so 32-bit entry points (`socketcall`, `ipc`) fall to the default action.

`PROFILE_FILE` is the versioned profile shipped with the package; `build_profile()` is how it is
made, and a test keeps the two identical. Its SHA-256 is recorded with every container.
"""

from __future__ import annotations

import hashlib
import json
from functools import cache
from importlib import resources
from typing import Any

EPERM, ENOSYS = 1, 38

_ALLOWED_NAMES = """
accept accept4 access adjtimex alarm arch_prctl bind brk capget capset chdir chmod chown
clock_adjtime clock_getres clock_gettime clock_nanosleep close close_range connect
copy_file_range creat dup dup2 dup3 epoll_create epoll_create1 epoll_ctl epoll_pwait
epoll_pwait2 epoll_wait eventfd eventfd2 execve execveat exit exit_group faccessat faccessat2
fadvise64 fallocate fanotify_mark fchdir fchmod fchmodat fchown fchownat fcntl fdatasync
fgetxattr flistxattr flock fork fremovexattr fsetxattr fstat fstatfs fsync ftruncate futex
futex_waitv futimesat get_robust_list get_thread_area getcpu getcwd getdents getdents64
getegid geteuid getgid getgroups getitimer getpeername getpgid getpgrp getpid getppid
getpriority getrandom getresgid getresuid getrlimit getrusage getsid getsockname getsockopt
gettid gettimeofday getuid getxattr inotify_add_watch inotify_init inotify_init1
inotify_rm_watch io_cancel io_destroy io_getevents io_pgetevents io_setup io_submit ioctl
ioprio_get ioprio_set kill landlock_add_rule landlock_create_ruleset landlock_restrict_self
lchown lgetxattr link linkat listen listxattr llistxattr lremovexattr lseek lsetxattr lstat
madvise membarrier memfd_create mincore mkdir mkdirat mknod mknodat mlock mlock2 mlockall mmap
mprotect mq_getsetattr mq_notify mq_open mq_timedreceive mq_timedsend mq_unlink mremap msgctl
msgget msgrcv msgsnd msync munlock munlockall munmap name_to_handle_at nanosleep newfstatat
open openat openat2 pause pidfd_open pidfd_send_signal pipe pipe2 pkey_alloc pkey_free
pkey_mprotect poll ppoll prctl pread64 preadv preadv2 prlimit64 pselect6 pwrite64 pwritev
pwritev2 read readahead readlink readlinkat readv recvfrom recvmmsg recvmsg remap_file_pages
removexattr rename renameat renameat2 restart_syscall rmdir rseq rt_sigaction rt_sigpending
rt_sigprocmask rt_sigqueueinfo rt_sigreturn rt_sigsuspend rt_sigtimedwait rt_tgsigqueueinfo
sched_get_priority_max sched_get_priority_min sched_getaffinity sched_getattr sched_getparam
sched_getscheduler sched_rr_get_interval sched_setaffinity sched_setattr sched_setparam
sched_setscheduler sched_yield seccomp select semctl semget semop semtimedop sendfile
sendmmsg sendmsg sendto set_robust_list set_thread_area set_tid_address setfsgid setfsuid
setgid setgroups setitimer setpgid setpriority setregid setresgid setresuid setreuid
setrlimit setsid setsockopt setuid setxattr shmat shmctl shmdt shmget shutdown sigaltstack
signalfd signalfd4 socketpair splice stat statfs statx symlink symlinkat sync
sync_file_range syncfs sysinfo tee tgkill time timer_create timer_delete timer_getoverrun
timer_gettime timer_settime timerfd_create timerfd_gettime timerfd_settime times tkill
truncate umask uname unlink unlinkat utime utimensat utimes vfork vmsplice wait4 waitid write
writev
"""
ALLOWED = tuple(_ALLOWED_NAMES.split())
"""Allowed unconditionally (names absent on an architecture are ignored by the runtime)."""

SOCKET_FAMILIES = {"AF_UNIX": 1, "AF_INET": 2, "AF_INET6": 10, "AF_NETLINK": 16}
"""The only socket families a sandbox may create."""

CLONE_NAMESPACE_FLAGS = 0x7E020000
"""CLONE_NEWNS | NEWCGROUP | NEWUTS | NEWIPC | NEWUSER | NEWPID | NEWNET: refused to `clone`."""

PERSONALITIES = (0x0, 0x8, 0x20000, 0x20008, 0xFFFFFFFF)
"""PER_LINUX, PER_LINUX32, UNAME26 variants, and the query value; nothing that weakens ASLR."""

ARCHITECTURES = ("SCMP_ARCH_X86_64", "SCMP_ARCH_AARCH64")

PROFILE_FILE = "seccomp/tierlock-default.json"


def build_profile() -> dict[str, Any]:
    """The profile as data (what `PROFILE_FILE` holds)."""
    rules: list[dict[str, Any]] = [{"names": sorted(set(ALLOWED)), "action": "SCMP_ACT_ALLOW"}]
    rules += [
        {
            "names": ["socket"],
            "action": "SCMP_ACT_ALLOW",
            "args": [{"index": 0, "value": value, "valueTwo": 0, "op": "SCMP_CMP_EQ"}],
            "comment": name,
        }
        for name, value in SOCKET_FAMILIES.items()
    ]
    rules += [
        {
            "names": ["personality"],
            "action": "SCMP_ACT_ALLOW",
            "args": [{"index": 0, "value": value, "valueTwo": 0, "op": "SCMP_CMP_EQ"}],
        }
        for value in PERSONALITIES
    ]
    rules.append(
        {
            "names": ["clone"],
            "action": "SCMP_ACT_ALLOW",
            "args": [
                {
                    "index": 0,
                    "value": CLONE_NAMESPACE_FLAGS,
                    "valueTwo": 0,
                    "op": "SCMP_CMP_MASKED_EQ",
                }
            ],
            "comment": "no new namespaces",
        }
    )
    # glibc falls back to clone() when clone3 says it does not exist; clone3's flags live in
    # memory seccomp cannot read, so it cannot be filtered the way clone is.
    rules.append({"names": ["clone3"], "action": "SCMP_ACT_ERRNO", "errnoRet": ENOSYS})
    return {
        "defaultAction": "SCMP_ACT_ERRNO",
        "defaultErrnoRet": EPERM,
        "architectures": list(ARCHITECTURES),
        "syscalls": rules,
    }


def profile_text() -> str:
    """The versioned profile file's text, as shipped."""
    return resources.files(__package__).joinpath(PROFILE_FILE).read_text()


@cache
def default_profile_json() -> str:
    """The shipped profile as compact JSON (what is handed to Docker as `seccomp=...`)."""
    return json.dumps(json.loads(profile_text()), separators=(",", ":"), sort_keys=True)


def default_profile_sha256() -> str:
    """SHA-256 of the compact profile handed to Docker (recorded with every container)."""
    return hashlib.sha256(default_profile_json().encode()).hexdigest()


def render_profile() -> str:
    """The text `PROFILE_FILE` must hold (indented, one rule a line block)."""
    return json.dumps(build_profile(), indent=1, sort_keys=True) + "\n"


if __name__ == "__main__":  # regenerate: python -m tierlock.sandbox._seccomp > sandbox/seccomp/...
    print(render_profile(), end="")
