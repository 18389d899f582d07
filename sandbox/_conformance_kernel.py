"""Conformance as the kernel sees it: a container's PID 1 (or a command exec'd in it) read from
`/proc/<pid>/status`, its namespaces and its network devices, against what the policy implies:
uid/gid, effective and bounding capabilities, no_new_privs, seccomp mode, host namespace sharing
and network interfaces. Read from the host's `/proc` when the daemon is local
(`host_proc_visible`, `check_kernel_host`); otherwise from inside the container (`EXEC_PROBE`,
`check_kernel_exec_output`). What Docker was told is `_conformance.check_config`'s part.
"""

from __future__ import annotations

import os
from pathlib import Path

from ._policy import Policy
from ._translate import normalize_capability, user_ids

CAPABILITIES: tuple[str, ...] = (
    "CHOWN", "DAC_OVERRIDE", "DAC_READ_SEARCH", "FOWNER", "FSETID", "KILL", "SETGID", "SETUID",
    "SETPCAP", "LINUX_IMMUTABLE", "NET_BIND_SERVICE", "NET_BROADCAST", "NET_ADMIN", "NET_RAW",
    "IPC_LOCK", "IPC_OWNER", "SYS_MODULE", "SYS_RAWIO", "SYS_CHROOT", "SYS_PTRACE", "SYS_PACCT",
    "SYS_ADMIN", "SYS_BOOT", "SYS_NICE", "SYS_RESOURCE", "SYS_TIME", "SYS_TTY_CONFIG", "MKNOD",
    "LEASE", "AUDIT_WRITE", "AUDIT_CONTROL", "SETFCAP", "MAC_OVERRIDE", "MAC_ADMIN", "SYSLOG",
    "WAKE_ALARM", "BLOCK_SUSPEND", "AUDIT_READ", "PERFMON", "BPF", "CHECKPOINT_RESTORE",
)  # fmt: skip
"""Linux capabilities by bit number."""


DOCKER_DEFAULT_CAPS = frozenset({
    "CHOWN", "DAC_OVERRIDE", "FSETID", "FOWNER", "MKNOD", "NET_RAW", "SETGID", "SETUID",
    "SETFCAP", "SETPCAP", "NET_BIND_SERVICE", "SYS_CHROOT", "KILL", "AUDIT_WRITE",
})  # fmt: skip
"""The capabilities Docker grants when none are dropped."""


def expected_capabilities(policy: Policy) -> frozenset[str]:
    """The bounding set the policy implies."""
    proc = policy.process
    if proc.privileged:
        return frozenset(CAPABILITIES)
    drop = {normalize_capability(c) for c in proc.capabilities.drop}
    add = {normalize_capability(c) for c in proc.capabilities.add}
    if "ALL" in add:
        return frozenset(CAPABILITIES)
    base = set() if "ALL" in drop else set(DOCKER_DEFAULT_CAPS) - drop
    return frozenset(base | add)


def _caps_from_mask(mask: int) -> set[str]:
    return {name for bit, name in enumerate(CAPABILITIES) if mask >> bit & 1} | (
        {f"bit{b}" for b in range(len(CAPABILITIES), 64) if mask >> b & 1}
    )


def _status_fields(text: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for line in text.splitlines():
        k, _, v = line.partition(":")
        out[k.strip()] = v.strip()
    return out


def check_status(
    status_text: str, policy: Policy, interfaces: list[str] | None, *, user: str | None = None
) -> list[str]:
    """Mismatches in a process's `/proc/<pid>/status` (and its network interfaces). The process
    must run as `user` (default: the policy's `process.user`) and otherwise as the policy says."""
    st = _status_fields(status_text)
    proc = policy.process
    bad: list[str] = []
    who = "policy process.user" if user is None else "the keepalive user"
    ids = user_ids(proc.user if user is None else user)
    uid = int(st.get("Uid", "-1").split()[1]) if st.get("Uid") else -1
    gid = int(st.get("Gid", "-1").split()[1]) if st.get("Gid") else -1
    if ids is not None and (uid, gid) != ids:
        bad.append(f"processes run as uid:gid {uid}:{gid}, {who} wants {ids[0]}:{ids[1]}")
    elif ids is None and uid == 0:  # a user name the image maps to root
        bad.append(f"processes run as root (uid 0), {who} {user or proc.user!r} is not root")
    want_bnd = expected_capabilities(policy)
    got_bnd = _caps_from_mask(int(st.get("CapBnd", "0"), 16))
    got_eff = _caps_from_mask(int(st.get("CapEff", "0"), 16))
    if got_bnd != set(want_bnd):
        extra = sorted(got_bnd - want_bnd)
        lacking = sorted(want_bnd - got_bnd)
        bad.append(
            f"kernel capability bounding set differs from policy process.capabilities "
            f"(extra {extra}, missing {lacking})"
        )
    want_eff = set(want_bnd) if uid == 0 else set()
    if got_eff != want_eff:
        bad.append(
            f"effective capabilities are {sorted(got_eff)}, policy implies {sorted(want_eff)}"
        )
    nnp = st.get("NoNewPrivs") == "1"
    if nnp != proc.no_new_privileges:
        bad.append(
            f"kernel no_new_privs is {nnp}, policy process.no_new_privileges wants "
            f"{proc.no_new_privileges}"
        )
    seccomp_on = st.get("Seccomp", "0") != "0"
    want_seccomp = proc.seccomp != "unconfined" and not proc.privileged
    if seccomp_on != want_seccomp:
        bad.append(
            f"kernel seccomp filtering is {'on' if seccomp_on else 'off'}, policy "
            f"process.seccomp is {proc.seccomp!r}"
        )
    if (
        interfaces is not None
        and policy.network.mode == "none"
        and policy.process.namespaces.network != "host"
        and interfaces != ["lo"]
    ):
        bad.append(f"network interfaces are {interfaces}, policy network.mode none wants only lo")
    return bad


def _interfaces(net_dev: str) -> list[str]:
    return sorted(line.split(":", 1)[0].strip() for line in net_dev.splitlines()[2:] if ":" in line)


def host_proc_visible(pid: int, container_id: str) -> bool:
    """Whether `/proc/<pid>` on this host is the container's process (local daemon, same PID
    namespace), checked through its cgroup path naming the container id."""
    if pid <= 0:
        return False
    try:
        return container_id in Path(f"/proc/{pid}/cgroup").read_text()
    except OSError:
        return False


def check_kernel_host(pid: int, policy: Policy, *, user: str | None = None) -> list[str]:
    """`check_status` on the container's PID 1 (run by `user`, default the policy's) through
    the host's `/proc`, plus namespaces: a namespace the policy keeps private must differ from
    tierlock's own."""
    status = Path(f"/proc/{pid}/status").read_text()
    net_dev = Path(f"/proc/{pid}/net/dev").read_text()
    bad = check_status(status, policy, _interfaces(net_dev), user=user)
    ns = policy.process.namespaces
    for name, mode in (("net", ns.network), ("pid", ns.pid), ("ipc", ns.ipc), ("uts", ns.uts)):
        try:
            shared = os.readlink(f"/proc/{pid}/ns/{name}") == os.readlink(f"/proc/self/ns/{name}")
        except OSError:
            continue
        if shared != (mode == "host"):
            bad.append(
                f"{name} namespace is {'shared with' if shared else 'separate from'} the "
                f"host, policy process.namespaces says {mode}"
            )
    return bad


EXEC_PROBE = ["/bin/cat", "/proc/1/status", "/proc/1/net/dev"]
"""Fallback when the host cannot see the container's processes: read them from inside."""


def check_kernel_exec_output(text: str, policy: Policy, *, user: str | None = None) -> list[str]:
    """`check_status` on the output of `EXEC_PROBE` (PID 1 run by `user`, default the policy's)."""
    status, _, net = text.partition("Inter-|")
    return check_status(status, policy, _interfaces("Inter-|" + net) if net else None, user=user)


RUNTIME_PROBE = [
    "/usr/bin/python3",
    "-c",
    "import ctypes, platform; print(platform.release()); "
    "print(ctypes.CDLL(None).prctl(39, 0, 0, 0, 0))",
]
"""Run as the model's commands are: the kernel release they see and their no_new_privs
(prctl PR_GET_NO_NEW_PRIVS: gVisor's /proc/<pid>/status has no NoNewPrivs line)."""


def check_runtime_probe(text: str, policy: Policy, host_kernel: str) -> tuple[list[str], bool]:
    """Whether the kernel the commands meet is the one `process.runtime` implies: under runsc,
    gVisor's own (its release differs from the daemon host's `host_kernel`), under runc the
    host's. Returns the mismatches and the no_new_privs the probe read."""
    lines = text.strip().splitlines()
    if len(lines) < 2 or not lines[-1].strip().lstrip("-").isdigit():
        return [
            f"cannot read the kernel release inside the container ({text.strip()[:200]!r})"
        ], False
    release, nnp = lines[-2].strip(), lines[-1].strip() == "1"
    on_host_kernel = release == host_kernel
    if policy.process.runtime == "runsc" and on_host_kernel:
        return [
            f"commands run on the host's kernel {release!r}, not gVisor's: policy "
            "process.runtime wants runsc"
        ], nnp
    if policy.process.runtime == "runc" and not on_host_kernel:
        return [
            f"commands see kernel {release!r}, not the host's {host_kernel!r}: policy "
            "process.runtime wants runc"
        ], nnp
    return [], nnp
