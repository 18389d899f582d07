"""Lint a policy: errors block running, warnings print.

Rules are data (`RULES`): an id, a severity, the CIS Docker Benchmark item it covers (section 5,
where one applies), a summary, and a check that yields findings (key path + message). An `unsafe:`
block in the policy downgrades exactly the named error rules to warnings, with a written reason
that stays on the `Policy` (so every run that uses it records it).
"""

from __future__ import annotations

import contextlib
import os
import posixpath
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from ._errors import Location, PolicyError, Problem
from ._loader import KeyPath, LoadedPolicy, format_key_path, load_policy_file, one_line
from ._policy import Policy
from ._translate import numeric_id

Severity = Literal["error", "warning"]

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
    """Every canonical spelling of an absolute host path: `..`, `//` and a trailing `/` removed,
    symlinked parents resolved on this host (e.g. `/var/run` → `/run`), `/var/run` read as `/run`
    where the host lacks the link. Empty for a relative path."""
    if not path.startswith("/"):
        return frozenset()
    lexical = posixpath.normpath("/" + path.lstrip("/"))
    forms = {lexical}
    with contextlib.suppress(OSError, ValueError):
        forms.add(os.path.realpath(path))
    return frozenset(_alias(f) for f in forms) | forms


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
    return path if path == form else f"{path} (= {form})"


# --- rules ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Finding:
    """One thing a rule found: where (key path) and what."""

    path: KeyPath
    message: str
    at_key: bool = False


@dataclass(frozen=True)
class LintContext:
    """What a check may need besides the policy: the loaded file (for places and relative paths)."""

    source: LoadedPolicy | None = None


Check = Callable[[Policy, LintContext], Iterable[Finding]]


@dataclass(frozen=True)
class Rule:
    """A lint rule. `downgradable`: whether `unsafe.allow` may turn its errors into warnings."""

    id: str
    severity: Severity
    summary: str
    check: Check
    cis: str = ""
    downgradable: bool = True


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
        yield ("filesystem", "writable", i, "path"), posixpath.normpath(w.path), True
    for i, m in enumerate(fs.mounts):
        yield ("filesystem", "mounts", i, "target"), posixpath.normpath(m.target), m.mode == "rw"


def _overlaps(path: str, base: str) -> bool:
    """`path` is `base`, inside it, or above it (e.g. `/`)."""
    return _inside(path, base) or _inside(base, path)


def _kernel_paths(p: Policy, _: LintContext) -> Iterator[Finding]:
    for key, path, _w in _container_targets(p):
        if not path.startswith("/") or path in KERNEL_PATH_EXCEPTIONS:
            continue
        hit = path == "/" or any(_overlaps(path, k) for k in KERNEL_PATHS)
        if hit:
            yield Finding(key, f"{path} covers the root or a kernel interface (/proc, /sys, "
                               "/dev); mount elsewhere")


def _system_paths(p: Policy, _: LintContext) -> Iterator[Finding]:
    for key, path, writable in _container_targets(p):
        if writable and path.startswith("/") and any(_overlaps(path, s) for s in SYSTEM_PATHS):
            yield Finding(key, f"writable {path} lets the sandbox rewrite system files (users, "
                               "the programs tierlock runs inside); use e.g. /workspace")


def _workdir_writable(p: Policy, _: LintContext) -> Iterator[Finding]:
    fs = p.filesystem
    if not fs.read_only_root:
        return
    writable = [w.path for w in fs.writable] + [m.target for m in fs.mounts if m.mode == "rw"]
    if not any(_inside(posixpath.normpath(fs.workdir), posixpath.normpath(w)) for w in writable):
        yield Finding(("filesystem", "workdir"),
                      f"workdir {fs.workdir} is not under a writable path: commands cannot "
                      "write where they start")


LOADER_ENV = frozenset({
    "LD_PRELOAD", "LD_LIBRARY_PATH", "LD_AUDIT", "PYTHONPATH", "PYTHONSTARTUP", "PYTHONHOME",
    "PYTHONINSPECT", "BASH_ENV", "ENV", "PERL5LIB", "PERL5OPT", "RUBYOPT", "NODE_OPTIONS",
})  # fmt: skip
"""Variables that make every process load extra code (with a writable path: the model's)."""


def _env_loader(p: Policy, _: LintContext) -> Iterator[Finding]:
    for name in p.env:
        if name in LOADER_ENV or name.startswith("LD_"):
            yield Finding(("env", name), f"{name} makes every process in the sandbox (tierlock's "
                          "helper commands too) load extra code", at_key=True)


def _devices(p: Policy, _: LintContext) -> Iterator[Finding]:
    for i, d in enumerate(p.process.devices):
        yield Finding(("process", "devices", i), f"host device {d.split(':')[0]} passed in")


def _cap_index(names: list[str], cap: str) -> int | None:
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
        i = _cap_index(caps.add, "ALL")
        assert i is not None
        yield Finding(
            ("process", "capabilities", "add", i),
            "adds ALL capabilities, including SYS_ADMIN and SYS_MODULE",
        )
        return
    for cap in sorted(have & DANGEROUS_CAPABILITIES.keys()):
        i = _cap_index(caps.add, cap)
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


def _seccomp(p: Policy, _: LintContext) -> Iterator[Finding]:
    if p.process.seccomp.strip().lower() == "unconfined":
        yield Finding(("process", "seccomp"), "seccomp unconfined: every syscall is allowed")


def _seccomp_profile(p: Policy, ctx: LintContext) -> Iterator[Finding]:
    s = p.process.seccomp.strip()
    if s.lower() in ("default", "unconfined") or ctx.source is None:
        return
    path = ctx.source.resolve_path(("process", "seccomp"), s)
    if not path.is_file():
        yield Finding(("process", "seccomp"), f"seccomp profile {s!r} not found ({path})")


def _apparmor(p: Policy, _: LintContext) -> Iterator[Finding]:
    if (p.process.apparmor or "").strip().lower() == "unconfined":
        yield Finding(("process", "apparmor"), "AppArmor unconfined")


def _new_privileges(p: Policy, _: LintContext) -> Iterator[Finding]:
    if not p.process.no_new_privileges:
        yield Finding(
            ("process", "no_new_privileges"),
            "setuid binaries and file capabilities can raise privileges; set true",
        )


def _memory(p: Policy, _: LintContext) -> Iterator[Finding]:
    if p.limits.memory is None:
        yield Finding(("limits", "memory"), "no memory limit; set one, e.g. 512m")


def _pids(p: Policy, _: LintContext) -> Iterator[Finding]:
    if p.limits.pids is None:
        yield Finding(("limits", "pids"), "no pids limit (fork bombs); set one, e.g. 256")


def _cpus(p: Policy, _: LintContext) -> Iterator[Finding]:
    if p.limits.cpus is None:
        yield Finding(("limits", "cpus"), "no CPU limit; set one, e.g. 1.0")


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


def _writable_root(p: Policy, _: LintContext) -> Iterator[Finding]:
    if not p.filesystem.read_only_root:
        yield Finding(
            ("filesystem", "read_only_root"),
            "writable root filesystem; keep it read-only and list writable paths",
        )


def _network_tier(p: Policy, _: LintContext) -> Iterator[Finding]:
    if p.tier != "networked" and p.network.mode != "none":
        yield Finding(
            ("network", "mode"),
            f"tier {p.tier} allows no network, but mode is {p.network.mode}; "
            "use mode: none, or tier: networked",
        )


def _network_open(p: Policy, _: LintContext) -> Iterator[Finding]:
    if p.tier == "networked" and p.network.mode == "open":
        yield Finding(
            ("network", "mode"),
            "open network: unaudited access to anything the host can reach; prefer allowlist",
        )


def _allowlist_empty(p: Policy, _: LintContext) -> Iterator[Finding]:
    if p.network.mode == "allowlist" and not p.network.allow:
        yield Finding(
            ("network", "allow"),
            "mode allowlist with an empty allow list reaches no domain; "
            "use mode: internal or list domains",
        )


def _network_unused(p: Policy, _: LintContext) -> Iterator[Finding]:
    if p.network.allow and p.network.mode in ("none", "internal"):
        yield Finding(
            ("network", "allow"),
            f"allow entries are ignored with mode {p.network.mode} (only allowlist uses them)",
        )
    if p.network.services and p.network.mode == "none":
        yield Finding(("network", "services"), "services are unreachable with mode none")


def _text_only_tools(p: Policy, _: LintContext) -> Iterator[Finding]:
    if p.tier == "text-only" and p.tools.allow:
        yield Finding(
            ("tools", "allow"),
            f"text-only exposes no tools, but allow lists {', '.join(p.tools.allow)}",
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


RULES: tuple[Rule, ...] = (
    Rule("privileged", "error", "no privileged containers", _privileged, "5.5"),
    Rule(
        "host-namespace",
        "error",
        "no host network/pid/ipc/uts/user namespace",
        _host_namespaces,
        "5.10 5.16 5.17 5.21 5.31",
    ),
    Rule(
        "runtime-mount",
        "error",
        "no mount of the Docker/containerd socket or state",
        _runtime_mounts,
        "5.32",
    ),
    Rule(
        "sensitive-mount",
        "error",
        "no mount of /, /proc, /sys, /dev, /etc, /root, /boot, homes",
        _sensitive_mounts,
        "5.6",
    ),
    Rule("writable-bind", "error", "host mounts are read-only", _writable_binds, "5.6"),
    Rule("kernel-path", "error", "nothing mounted over /, /proc, /sys or /dev", _kernel_paths,
         downgradable=False),
    Rule("system-path", "error", "no writable /etc, /usr, /bin, /sbin or /lib*", _system_paths),
    Rule("devices", "error", "no host devices", _devices, "5.18"),
    Rule("dangerous-capability", "error", "no dangerous capabilities", _dangerous_caps, "5.4"),
    Rule(
        "unknown-capability",
        "error",
        "capability names must exist",
        _unknown_caps,
        downgradable=False,
    ),
    Rule("cap-drop-all", "warning", "drop ALL capabilities", _cap_drop_all, "5.4"),
    Rule("seccomp-unconfined", "error", "seccomp stays on", _seccomp, "5.22"),
    Rule(
        "seccomp-profile-missing",
        "error",
        "a seccomp profile file must exist",
        _seccomp_profile,
        downgradable=False,
    ),
    Rule("apparmor-unconfined", "error", "AppArmor stays on", _apparmor, "5.1"),
    Rule("new-privileges", "error", "no-new-privileges is set", _new_privileges, "5.26"),
    Rule("no-memory-limit", "error", "a memory limit is set", _memory, "5.11"),
    Rule("no-pids-limit", "error", "a pids limit is set", _pids, "5.29"),
    Rule("no-cpu-limit", "warning", "a CPU limit is set", _cpus, "5.12"),
    Rule("root-user", "error", "processes do not run as root", _root_user, "4.1"),
    Rule("writable-root", "error", "the root filesystem is read-only", _writable_root, "5.13"),
    Rule(
        "not-absolute",
        "error",
        "container and host paths are absolute",
        _absolute_paths,
        downgradable=False,
    ),
    # A tier's network and tools define the tier: no `unsafe` reason can change them.
    Rule(
        "network-tier",
        "error",
        "no network below the networked tier",
        _network_tier,
        downgradable=False,
    ),
    Rule("network-open", "warning", "open network is always warned about", _network_open),
    Rule("allowlist-empty", "warning", "allowlist mode lists domains", _allowlist_empty),
    Rule(
        "network-unused",
        "warning",
        "no allow entries or services that cannot apply",
        _network_unused,
    ),
    Rule(
        "text-only-tools",
        "error",
        "text-only exposes no tools",
        _text_only_tools,
        downgradable=False,
    ),
    Rule("env-secret", "warning", "env carries no secrets", _env_secrets),
    Rule("env-loader", "warning", "env loads no extra code (LD_PRELOAD...)", _env_loader),
    Rule("workdir-not-writable", "warning", "workdir is writable", _workdir_writable),
)
"""Every lint rule, in report order."""

RULE_IDS: frozenset[str] = frozenset(r.id for r in RULES)


def _locate(ctx: LintContext, file: str, path: KeyPath, at_key: bool) -> Location:
    if ctx.source is not None:
        return ctx.source.locate(path, at_key=at_key)
    return Location(file, key=format_key_path(path))


def lint_policy(
    policy: Policy, *, source: LoadedPolicy | str | Path | None = None
) -> list[Problem]:
    """Every lint problem of a policy, errors and warnings, `unsafe.allow` applied.

    `source`: the `LoadedPolicy` it came from (problems then name file:line:col of the offending
    key), or just a file name for the problems.
    """
    ctx = LintContext(source if isinstance(source, LoadedPolicy) else None)
    file = ctx.source.source if ctx.source else str(source or "<policy>")
    unsafe = policy.unsafe
    allowed = set(unsafe.allow) if unsafe else set()
    fired: set[str] = set()
    out: list[Problem] = []
    for rule in RULES:
        for f in rule.check(policy, ctx):
            severity: Severity = rule.severity
            message = f.message
            if severity == "error" and rule.id in allowed and rule.downgradable:
                severity = "warning"
                message += " (downgraded by unsafe.allow)"
            fired.add(rule.id)
            out.append(
                Problem(_locate(ctx, file, f.path, f.at_key), one_line(message), severity, rule.id)
            )
    if unsafe:
        by_id = {r.id: r for r in RULES}
        for i, rid in enumerate(unsafe.allow):
            where = _locate(ctx, file, ("unsafe", "allow", i), False)
            named = by_id.get(rid)
            if named is None:
                out.append(
                    Problem(
                        where,
                        f"{one_line(repr(rid))} is not a lint rule; rules: "
                        f"{', '.join(sorted(RULE_IDS))}",
                        "error",
                        "unsafe-unknown-rule",
                    )
                )
            elif not named.downgradable:
                out.append(
                    Problem(
                        where, f"rule {rid} cannot be downgraded", "error", "unsafe-unknown-rule"
                    )
                )
            elif rid not in fired or named.severity != "error":
                out.append(
                    Problem(
                        where,
                        f"rule {rid} raises no error here; remove it",
                        "warning",
                        "unsafe-unused",
                    )
                )
    return out


def has_errors(problems: Iterable[Problem]) -> bool:
    """Whether any problem is an error (which blocks running)."""
    return any(p.severity == "error" for p in problems)


def load_runnable_policy(path: str | Path) -> tuple[Policy, list[Problem]]:
    """Load and lint a policy for running: raises `PolicyError` (all problems, errors first) if
    it has errors; otherwise returns it with its warnings (to print and record)."""
    loaded = load_policy_file(path)
    problems = lint_policy(loaded.policy, source=loaded)
    if has_errors(problems):
        ordered = sorted(problems, key=lambda p: p.severity != "error")
        raise PolicyError(f"{loaded.source}: policy has lint errors", ordered)
    return loaded.policy, problems
