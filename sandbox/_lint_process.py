"""Lint rules about the sandbox's processes: privileges, capabilities, namespaces, devices, user,
no-new-privileges, AppArmor, and the environment they start with."""

from __future__ import annotations

import re
from collections.abc import Iterator

from ._lint_rule import Finding, LintContext
from ._policy import Policy, numeric_id

# --- capabilities -----------------------------------------------------------------------------

KNOWN_CAPABILITIES: frozenset[str] = frozenset(
    """AUDIT_CONTROL AUDIT_READ AUDIT_WRITE BLOCK_SUSPEND BPF CHECKPOINT_RESTORE CHOWN DAC_OVERRIDE
    DAC_READ_SEARCH FOWNER FSETID IPC_LOCK IPC_OWNER KILL LEASE LINUX_IMMUTABLE MAC_ADMIN
    MAC_OVERRIDE MKNOD NET_ADMIN NET_BIND_SERVICE NET_BROADCAST NET_RAW PERFMON SETFCAP SETGID
    SETPCAP SETUID SYS_ADMIN SYS_BOOT SYS_CHROOT SYS_MODULE SYS_NICE SYS_PACCT SYS_PTRACE SYS_RAWIO
    SYS_RESOURCE SYS_TIME SYS_TTY_CONFIG SYSLOG WAKE_ALARM""".split()  # noqa: SIM905
)
"""Every Linux capability (as of Linux 6.x), without the `CAP_` prefix."""

DOCKER_DEFAULT_CAPABILITIES: frozenset[str] = frozenset(
    """AUDIT_WRITE CHOWN DAC_OVERRIDE FOWNER FSETID KILL MKNOD NET_BIND_SERVICE NET_RAW SETFCAP
    SETGID SETPCAP SETUID SYS_CHROOT""".split()  # noqa: SIM905
)
"""What Docker grants when nothing is dropped."""

DANGEROUS_CAPABILITIES: dict[str, str] = {
    "SYS_ADMIN": "mount, namespaces, cgroup release_agent: the classic container escape",
    "SYS_MODULE": "loads kernel modules: full host control",
    "SYS_PTRACE": "traces and injects into other processes",
    "SYS_RAWIO": "raw I/O ports and device memory",
    "DAC_READ_SEARCH": "open_by_handle_at reads host files (the 'shocker' escape)",
    "DAC_OVERRIDE": "ignores file permissions",
    "NET_ADMIN": "reconfigures interfaces, routes and firewall rules (egress controls)",
    "NET_RAW": "raw and packet sockets: spoofing, kernel packet-socket exploits",
    "BPF": "loads eBPF programs into the kernel",
    "PERFMON": "perf events: kernel attack surface and side channels",
    "SYS_BOOT": "reboots the host or loads a new kernel",
    "MKNOD": "creates device nodes",
    "SYSLOG": "reads kernel logs (kernel address leaks)",
    "SYS_TIME": "sets the host clock",
    "MAC_ADMIN": "changes the mandatory access control policy",
    "MAC_OVERRIDE": "bypasses mandatory access control",
    "LINUX_IMMUTABLE": "clears immutable and append-only file flags",
    "AUDIT_CONTROL": "changes the kernel audit rules",
    "SYS_PACCT": "configures process accounting",
    "SYS_RESOURCE": "overrides resource limits",
    "SYS_TTY_CONFIG": "reconfigures host terminals",
    "SETPCAP": "changes capability sets",
    "SETFCAP": "sets file capabilities (privilege for later execs)",
    "CHECKPOINT_RESTORE": "checkpoint/restore of other processes",
    "IPC_OWNER": "bypasses IPC permission checks",
    "WAKE_ALARM": "wakes the host from suspend",
    "BLOCK_SUSPEND": "keeps the host from suspending",
}
"""Capabilities a policy must not grant (lint error), with why. The rest (e.g. NET_BIND_SERVICE,
CHOWN, SETUID, KILL) are ordinary for a non-root process behind no-new-privileges."""


def normalize_capability(name: str) -> str | None:
    """`ALL` or a canonical capability name (`cap_sys_admin` → `SYS_ADMIN`); None if unknown."""
    n = name.strip().upper()
    n = n.removeprefix("CAP_")
    if n == "ALL" or n in KNOWN_CAPABILITIES:
        return n
    return None


def effective_capabilities(policy: Policy) -> frozenset[str]:
    """The capabilities a container of this policy ends up with (bounding set)."""
    caps = policy.process.capabilities
    drop = {n for c in caps.drop if (n := normalize_capability(c))}
    add = {n for c in caps.add if (n := normalize_capability(c))}
    have: set[str] = set() if "ALL" in drop else set(DOCKER_DEFAULT_CAPABILITIES) - drop
    have |= KNOWN_CAPABILITIES if "ALL" in add else add & KNOWN_CAPABILITIES
    if policy.process.privileged:
        have |= KNOWN_CAPABILITIES
    return frozenset(have)


# --- rules ------------------------------------------------------------------------------------


def _privileged(p: Policy, _: LintContext) -> Iterator[Finding]:
    if p.process.privileged:
        yield Finding(
            ("process", "privileged"),
            "privileged containers get every capability and every device: no isolation",
        )


_NS_CIS = {"network": "5.10", "pid": "5.16", "ipc": "5.17", "uts": "5.21", "userns": "5.31"}


def _host_namespaces(p: Policy, _: LintContext) -> Iterator[Finding]:
    for ns in _NS_CIS:
        if getattr(p.process.namespaces, ns) == "host":
            yield Finding(
                ("process", "namespaces", ns),
                f"shares the host's {ns} namespace (CIS {_NS_CIS[ns]})",
            )


def _devices(p: Policy, _: LintContext) -> Iterator[Finding]:
    for i, d in enumerate(p.process.devices):
        yield Finding(("process", "devices", i), f"host device {d.split(':')[0]} passed in")


def cap_index(names: list[str], cap: str) -> int | None:
    """Where `cap` (or ALL) is listed in `names`, in any spelling; None if it is not."""
    for i, n in enumerate(names):
        if normalize_capability(n) in (cap, "ALL"):
            return i
    return None


def _dangerous_caps(p: Policy, _: LintContext) -> Iterator[Finding]:
    if p.process.privileged:
        return  # reported by `privileged`
    caps = p.process.capabilities
    have = effective_capabilities(p)
    adds_all = any(normalize_capability(c) == "ALL" for c in caps.add)
    if adds_all:
        i = cap_index(caps.add, "ALL")
        assert i is not None
        yield Finding(
            ("process", "capabilities", "add", i),
            "adds ALL capabilities, including SYS_ADMIN and SYS_MODULE",
        )
        return
    for cap in sorted(have & DANGEROUS_CAPABILITIES.keys()):
        i = cap_index(caps.add, cap)
        why = DANGEROUS_CAPABILITIES[cap]
        if i is not None:
            yield Finding(("process", "capabilities", "add", i), f"capability {cap}: {why}")
        else:
            yield Finding(
                ("process", "capabilities", "drop"),
                f"capability {cap} is kept from Docker's default set ({why}); "
                "drop ALL and add back only what is needed",
            )


def _unknown_caps(p: Policy, _: LintContext) -> Iterator[Finding]:
    for key in ("drop", "add"):
        for i, c in enumerate(getattr(p.process.capabilities, key)):
            if normalize_capability(c) is None:
                yield Finding(
                    ("process", "capabilities", key, i),
                    f"{c!r} is not a Linux capability (e.g. NET_BIND_SERVICE, or ALL)",
                )


def _cap_drop_all(p: Policy, _: LintContext) -> Iterator[Finding]:
    if not any(normalize_capability(c) == "ALL" for c in p.process.capabilities.drop):
        yield Finding(
            ("process", "capabilities", "drop"),
            "does not drop ALL capabilities; drop ALL and add back what is needed",
        )


def _apparmor(p: Policy, _: LintContext) -> Iterator[Finding]:
    if (p.process.apparmor or "").strip().lower() == "unconfined":
        yield Finding(("process", "apparmor"), "AppArmor unconfined")


def _new_privileges(p: Policy, _: LintContext) -> Iterator[Finding]:
    if not p.process.no_new_privileges:
        yield Finding(
            ("process", "no_new_privileges"),
            "setuid binaries and file capabilities can raise privileges; set true",
        )


def is_root_user(user: str) -> bool:
    """Whether a Docker `user` runs as root: `root`, `0`, `0:0`, `root:root`, `0:1000`, `+0`
    (Docker reads uids like Go's Atoi), or empty (the image's default user)."""
    uid = user.strip().split(":")[0].strip()
    return uid == "" or uid == "root" or numeric_id(uid) == 0


def _root_user(p: Policy, _: LintContext) -> Iterator[Finding]:
    if is_root_user(p.process.user):
        yield Finding(
            ("process", "user"),
            f"user {p.process.user!r} runs as root; use a non-root uid:gid like 1000:1000",
        )


LOADER_ENV = frozenset({
    "LD_PRELOAD", "LD_LIBRARY_PATH", "LD_AUDIT", "PYTHONPATH", "PYTHONSTARTUP", "PYTHONHOME",
    "PYTHONINSPECT", "BASH_ENV", "ENV", "PERL5LIB", "PERL5OPT", "RUBYOPT", "NODE_OPTIONS",
})  # fmt: skip
"""Variables that make every process load extra code (with a writable path: the model's)."""


def _env_loader(p: Policy, _: LintContext) -> Iterator[Finding]:
    for name in p.env:
        if name in LOADER_ENV or name.startswith("LD_"):
            yield Finding(
                ("env", name),
                f"{name} makes every process in the sandbox (tierlock's "
                "helper commands too) load extra code",
                at_key=True,
            )


_SECRET_WORDS = frozenset(
    {
        "KEY",
        "APIKEY",
        "TOKEN",
        "SECRET",
        "PASSWORD",
        "PASSWD",
        "PASS",
        "CREDENTIAL",
        "CREDENTIALS",
        "AUTH",
        "PAT",
        "COOKIE",
        "SESSION",
    }
)


def _env_secrets(p: Policy, _: LintContext) -> Iterator[Finding]:
    for name in p.env:
        if _SECRET_WORDS & set(re.split(r"[^A-Z0-9]+", name.upper())):
            yield Finding(
                ("env", name),
                "looks like a secret; host secrets must never enter a sandbox",
                at_key=True,
            )
