"""Conformance: read a created container back from Docker and compare it with its policy.

The expected values are derived here from the `Policy` itself, not from the settings that were sent
(`_translate`), so a translation that drops or weakens a setting is caught. Two checks:

- `check_config` (here): the container's `docker inspect` (HostConfig and Config) against the
  policy; `check_daemon`: the daemon's own defaults a policy relies on (its seccomp profile).
- the kernel's view (`_conformance_kernel`): the running container's PID 1 (and, for a sandbox, a
  command exec'd as the model's are, `_effective.SELF_PROBE`) as the kernel sees it
  (`/proc/<pid>/status`, its namespaces, its network devices): uid/gid, effective and bounding
  capabilities, no_new_privs, seccomp mode, host namespace sharing and network interfaces.
  The same exec reads back the effective limits (cgroups, tmpfs sizes): see `_effective`.

Any mismatch aborts the sample before the model's first command (the provider raises SandboxError).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from ._policy import Policy
from ._translate import (
    HOSTNAME,
    IPC_SYSCTLS,
    KEEPALIVE_USER,
    MASKED_PATHS,
    normalize_capability,
    seccomp_profile,
    user_ids,
)


def _env_dict(items: list[str] | None) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in items or []:
        k, _, v = item.partition("=")
        out[k] = v
    return out


def expected_env(
    policy: Policy, image_env: list[str] | None, extra_env: dict[str, str] | None
) -> dict[str, str]:
    """The exact environment the container must have: image defaults, then the policy's env."""
    return {**_env_dict(image_env), **policy.env, **(extra_env or {})}


_KNOWN_SECURITY_OPTS = ("no-new-privileges", "seccomp=", "seccomp:", "apparmor=")
_MASKED_PATHS = frozenset(MASKED_PATHS)
_READONLY_PATHS = frozenset({"/proc/sys", "/proc/sysrq-trigger", "/proc/irq", "/proc/bus"})
_NEVER_SET = (
    "GroupAdd",
    "DeviceCgroupRules",
    "DeviceRequests",
    "OomKillDisable",
    "ExtraHosts",
    "Dns",
    "DnsSearch",
    "CgroupParent",
    "Links",
    "PortBindings",
    "PublishAllPorts",
    "VolumeDriver",
    "Cgroup",
)
"""HostConfig keys tierlock never sets: a value means the container is not what the policy says
(supplementary groups such as root's, device access, DNS or host-name overrides, another parent
cgroup, published ports)."""
_SAFE_SYSCTLS = {"net.ipv4.ip_forward": "0", **IPC_SYSCTLS}
"""Kernel parameters that only take something away (the egress proxy turns forwarding off)."""


def _tmpfs_size(options: str) -> str | None:
    m = re.search(r"(?:^|,)size=([^,]+)", options)
    return m.group(1) if m else None


def check_config(
    attrs: dict[str, Any],
    policy: Policy,
    *,
    image_env: list[str] | None,
    extra_env: dict[str, str] | None = None,
    network: str | None = None,
    policy_dir: Path | None = None,
    sandbox: bool = False,
) -> list[str]:
    """Mismatches between a container's `docker inspect` and its policy (empty when conforming).

    `sandbox`: the model's container, whose PID 1 must run as `KEEPALIVE_USER` (a uid other than
    the policy's, which runs the model's commands)."""
    from ._units import format_size

    hc: dict[str, Any] = attrs.get("HostConfig") or {}
    cfg: dict[str, Any] = attrs.get("Config") or {}
    proc, fs, limits, ns = (
        policy.process,
        policy.filesystem,
        policy.limits,
        policy.process.namespaces,
    )
    bad: list[str] = []

    def want(what: str, got: object, expected: object, key: str) -> None:
        if got != expected:
            bad.append(f"{what} is {got!r}, policy {key} wants {expected!r}")

    want("HostConfig.Privileged", bool(hc.get("Privileged")), proc.privileged, "process.privileged")
    want(
        "HostConfig.ReadonlyRootfs",
        bool(hc.get("ReadonlyRootfs")),
        fs.read_only_root,
        "filesystem.read_only_root",
    )
    if sandbox:
        want("Config.User", cfg.get("User") or "", KEEPALIVE_USER, "(keepalive user)")
        if user_ids(proc.user) == user_ids(KEEPALIVE_USER):
            bad.append(
                f"policy process.user {proc.user!r} is the keepalive user "
                f"{KEEPALIVE_USER}: the model's commands could stop the container"
            )
    else:
        want("Config.User", cfg.get("User") or "", proc.user, "process.user")
    want("Config.WorkingDir", cfg.get("WorkingDir") or "", fs.workdir, "filesystem.workdir")
    want("Config.Hostname", cfg.get("Hostname") or "", HOSTNAME, "(neutral hostname)")
    want("HostConfig.Init", bool(hc.get("Init")), proc.init, "process.init")
    want("HostConfig.Runtime", hc.get("Runtime") or "runc", proc.runtime, "process.runtime")

    # capabilities: what Docker was told, and (check_kernel) what the kernel applied
    drop = sorted({normalize_capability(c) for c in (hc.get("CapDrop") or [])})
    add = sorted({normalize_capability(c) for c in (hc.get("CapAdd") or [])})
    want(
        "HostConfig.CapDrop",
        drop,
        sorted({normalize_capability(c) for c in proc.capabilities.drop}),
        "process.capabilities.drop",
    )
    want(
        "HostConfig.CapAdd",
        add,
        sorted({normalize_capability(c) for c in proc.capabilities.add}),
        "process.capabilities.add",
    )

    # security options
    sec = list(hc.get("SecurityOpt") or [])
    nnp = any(o.replace("=", ":") in ("no-new-privileges:true", "no-new-privileges") for o in sec)
    want("no-new-privileges", nnp, proc.no_new_privileges, "process.no_new_privileges")
    seccomp = [
        o.split("=", 1)[1] if "=" in o else o.split(":", 1)[1]
        for o in sec
        if o.startswith(("seccomp=", "seccomp:"))
    ]
    if proc.seccomp == "unconfined":
        if seccomp != ["unconfined"]:
            bad.append(
                "HostConfig.SecurityOpt has no seccomp=unconfined, policy process.seccomp "
                "wants unconfined"
            )
    else:
        profile = seccomp_profile(policy, policy_dir)
        got = None
        if len(seccomp) == 1:
            try:
                got = json.dumps(json.loads(seccomp[0]), separators=(",", ":"), sort_keys=True)
            except json.JSONDecodeError:
                got = None
        if got != profile:
            bad.append(
                f"HostConfig.SecurityOpt seccomp profile differs from {proc.seccomp!r} "
                "(process.seccomp)"
            )
    apparmor = [o.split("=", 1)[1] for o in sec if o.startswith("apparmor=")]
    want("AppArmor profile", apparmor[0] if apparmor else None, proc.apparmor, "process.apparmor")
    unknown = [o for o in sec if not o.startswith(_KNOWN_SECURITY_OPTS)]
    if unknown:  # e.g. systempaths=unconfined (unmasks /proc), label=disable
        bad.append(f"HostConfig.SecurityOpt has options no policy sets: {unknown}")
    if not proc.privileged:
        masked = set(hc.get("MaskedPaths") or [])
        readonly = set(hc.get("ReadonlyPaths") or [])
        if not (masked >= _MASKED_PATHS and readonly >= _READONLY_PATHS):
            bad.append(
                "HostConfig.MaskedPaths/ReadonlyPaths lack paths tierlock masks "
                f"(masked {sorted(_MASKED_PATHS - masked)}, read-only "
                f"{sorted(_READONLY_PATHS - readonly)})"
            )

    # settings no policy grants: any value here comes from outside the policy
    for key in _NEVER_SET:
        if hc.get(key):
            bad.append(f"HostConfig.{key} is {hc.get(key)!r}, no policy sets it")
    sysctls = {k: v for k, v in (hc.get("Sysctls") or {}).items() if _SAFE_SYSCTLS.get(k) != v}
    if sysctls:
        bad.append(f"HostConfig.Sysctls is {sysctls!r}, no policy sets kernel parameters")
    if (hc.get("OomScoreAdj") or 0) < 0:
        bad.append(f"HostConfig.OomScoreAdj is {hc.get('OomScoreAdj')}, no policy lowers it")

    # resources
    want("HostConfig.Memory", hc.get("Memory") or 0, limits.memory or 0, "limits.memory")
    if limits.memory:
        want(
            "HostConfig.MemorySwap (memory+swap)",
            hc.get("MemorySwap") or 0,
            limits.memory,
            "limits.memory (no swap)",
        )
    want(
        "HostConfig.NanoCpus",
        hc.get("NanoCpus") or 0,
        round(limits.cpus * 1e9) if limits.cpus else 0,
        "limits.cpus",
    )
    pids = hc.get("PidsLimit")
    want("HostConfig.PidsLimit", pids if pids and pids > 0 else None, limits.pids, "limits.pids")

    # network and namespaces
    if ns.network == "host":
        want_net = "host"
    elif policy.network.mode == "none":
        want_net = "none"
    elif policy.network.mode == "open":
        want_net = "bridge"
    else:
        want_net = network or "<per-sample network>"
    want("HostConfig.NetworkMode", hc.get("NetworkMode"), want_net, "network.mode")
    for key, field, mode in (
        ("PidMode", "pid", ns.pid),
        ("IpcMode", "ipc", ns.ipc),
        ("UTSMode", "uts", ns.uts),
        ("UsernsMode", "userns", ns.userns),
    ):
        got_host = (hc.get(key) or "") == "host"
        if got_host != (mode == "host"):
            bad.append(
                f"HostConfig.{key} is {hc.get(key)!r}, policy process.namespaces.{field} "
                f"wants {mode}"
            )
    got_sysctls = hc.get("Sysctls") or {}
    if ns.ipc != "host" and any(got_sysctls.get(k) != v for k, v in IPC_SYSCTLS.items()):
        bad.append(
            f"HostConfig.Sysctls is {hc.get('Sysctls')!r}, want {IPC_SYSCTLS!r} (no SysV or "
            "POSIX IPC storage beyond the writable paths)"
        )
    if hc.get("CgroupnsMode") != "private":
        bad.append(f"HostConfig.CgroupnsMode is {hc.get('CgroupnsMode')!r}, want 'private'")
    if ns.ipc != "host" and hc.get("IpcMode") != "none":  # no /dev/shm beyond the writable paths
        bad.append(
            f"HostConfig.IpcMode is {hc.get('IpcMode')!r}, want 'none' (private, no "
            "/dev/shm unless filesystem.writable lists it)"
        )

    # filesystem: tmpfs sizes, bind mounts, no other mounts
    tmpfs: dict[str, str] = hc.get("Tmpfs") or {}
    want_tmpfs = {w.path: format_size(w.size) for w in fs.writable}
    got_tmpfs = {p: _tmpfs_size(o) for p, o in tmpfs.items()}
    want("HostConfig.Tmpfs (path: size)", got_tmpfs, want_tmpfs, "filesystem.writable")
    for path, options in tmpfs.items():
        opts = options.split(",")
        if not {"nosuid", "nodev"} <= set(opts) or {"suid", "dev"} & set(opts):
            bad.append(f"HostConfig.Tmpfs {path} is mounted {options!r}, want nosuid and nodev")
    want_binds = sorted((m.source, m.target, m.mode == "ro") for m in fs.mounts)
    got_binds = sorted(
        (m.get("Source"), m.get("Target"), bool(m.get("ReadOnly")))
        for m in (hc.get("Mounts") or [])
        if m.get("Type") == "bind"
    )
    want("HostConfig.Mounts (bind)", got_binds, want_binds, "filesystem.mounts")
    others = [m for m in (hc.get("Mounts") or []) if m.get("Type") != "bind"]
    if others or hc.get("Binds") or hc.get("VolumesFrom"):
        bad.append("container has mounts the policy does not list (volumes, binds or volumes-from)")
    live = sorted(
        (m.get("Source"), m.get("Destination"), not m.get("RW", True))
        for m in (attrs.get("Mounts") or [])
    )
    if live != want_binds:
        bad.append(
            f"mounted {[d for _, d, _ in live]}, policy filesystem.mounts lists "
            f"{[t for _, t, _ in want_binds]}"
        )

    # devices
    devices = sorted(d.get("PathOnHost", "") for d in (hc.get("Devices") or []))
    want(
        "HostConfig.Devices",
        devices,
        sorted(d.split(":", 1)[0] for d in proc.devices),
        "process.devices",
    )

    # environment: exactly the image's defaults plus the policy's env, nothing from the host
    if "Config" in attrs and "Image" in attrs:
        want_env = expected_env(policy, image_env, extra_env)
        got_env = _env_dict(cfg.get("Env"))
        unexpected = sorted(set(got_env) - set(want_env))
        missing = sorted(set(want_env) - set(got_env))
        differ = sorted(k for k in set(got_env) & set(want_env) if got_env[k] != want_env[k])
        if unexpected:
            bad.append(
                f"environment has variables the policy does not set: {', '.join(unexpected)}"
            )
        if missing:
            bad.append(f"environment lacks variables of policy env: {', '.join(missing)}")
        if differ:
            bad.append(f"environment values differ from policy env: {', '.join(differ)}")
    return bad


BUILTIN_SECCOMP = ("default", "builtin")
"""How `docker info` names Docker's own seccomp profile (20.10: default; 23+: builtin)."""


def check_daemon(security_options: list[str] | None, policy: Policy) -> list[str]:
    """Mismatches between the daemon's defaults (`docker info` SecurityOptions) and the policy.

    A container without its own seccomp option gets the daemon's default profile, which a
    daemon can set to anything (`seccomp-profile` in daemon.json); the kernel only shows that
    *some* filter is on. So `process.seccomp: default` needs the daemon's profile to be Docker's.
    """
    if policy.process.seccomp != "default" or policy.process.privileged:
        return []
    for opt in security_options or []:
        fields = dict(f.split("=", 1) for f in opt.split(",") if "=" in f)
        if fields.get("name") == "seccomp":
            profile = fields.get("profile", "default")
            if profile in BUILTIN_SECCOMP:
                return []
            return [
                f"the Docker daemon's default seccomp profile is {profile!r}, not Docker's "
                "own; policy process.seccomp: default wants Docker's"
            ]
    return [
        "the Docker daemon reports no seccomp support; policy process.seccomp: default "
        "wants Docker's profile"
    ]
