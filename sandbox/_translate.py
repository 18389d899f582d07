"""Policy → Docker container settings, in one place.

`container_settings` is the only code that turns a `Policy` into the keyword arguments of
`client.containers.create(...)`. Every permission a sandbox gets comes from here, and the
conformance check (`_conformance`) then reads the created container back and compares it with the
policy, derived independently, so a mistake here cannot pass silently.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ._errors import SandboxError
from ._policy import Policy, numeric_id
from ._units import format_size

HOSTNAME = "sandbox"
"""Neutral host name: nothing about the host, the lab or the eval."""

KEEPALIVE_COMMAND = ["sleep", "infinity"]
"""What the sandbox runs until it is removed; model commands arrive through `docker exec`."""

KEEPALIVE_USER = "65534:65534"
"""Who runs a sandbox's PID 1 (docker-init and the keepalive): `nobody`, unprivileged and not the
policy's user. The model's commands are exec'd as the policy's user, which cannot signal another
uid, so they cannot stop the container (and take its cgroup evidence with it)."""

DOCKER_MASKED_PATHS = (
    "/proc/asound", "/proc/acpi", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
    "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/proc/scsi", "/sys/firmware",
)  # fmt: skip
"""Docker's own masked paths (setting `MaskedPaths` replaces them, so they are listed again)."""

EXTRA_MASKED_PATHS = ("/proc/cmdline", "/proc/config.gz", "/sys/devices/virtual/powercap")
"""What tierlock masks beyond Docker: the host kernel's command line and build configuration,
and the RAPL energy counters (a power side channel)."""

MASKED_PATHS = DOCKER_MASKED_PATHS + EXTRA_MASKED_PATHS

IPC_SYSCTLS = {
    "kernel.shmmni": "0",
    "kernel.msgmni": "0",
    "kernel.sem": "0 0 0 0",
    "fs.mqueue.queues_max": "0",
}
"""IPC-namespaced limits set to zero: no SysV shared memory, message queues or semaphores and no
POSIX message queues, so the writable paths stay the only storage a sandbox has."""

KNOWN_USERS: dict[str, tuple[int, int]] = {"root": (0, 0), "agent": (1000, 1000)}
"""Users of the project's images, for owning the writable tmpfs mounts."""


def user_ids(user: str) -> tuple[int, int] | None:
    """(uid, gid) of a policy `process.user` (`1000:1000`, `1000`, `+0`, `agent`), if known."""
    name, _, group = user.partition(":")
    uid = numeric_id(name)
    if uid is not None:
        gid = numeric_id(group)
        return uid, uid if gid is None else gid
    return KNOWN_USERS.get(name)


def tmpfs_options(policy: Policy) -> dict[str, str]:
    """Writable paths as tmpfs mounts: size-capped, nosuid, nodev; owned by the policy's user
    (the `/tmp`-like paths are world-writable with the sticky bit instead)."""
    ids = user_ids(policy.process.user)
    out: dict[str, str] = {}
    for w in policy.filesystem.writable:
        opts = [f"size={format_size(w.size)}", "exec", "nosuid", "nodev"]
        if w.path in ("/tmp", "/var/tmp", "/dev/shm") or ids is None:
            opts.append("mode=1777")
        else:
            opts += ["mode=0755", f"uid={ids[0]}", f"gid={ids[1]}"]
        out[w.path] = ",".join(opts)
    return out


def seccomp_profile(policy: Policy, policy_dir: Path | None = None) -> str | None:
    """The seccomp profile JSON (compact): tierlock's own for `default` (`_seccomp`), the named
    file's otherwise; None for `unconfined`."""
    value = policy.process.seccomp
    if value == "default":
        from ._seccomp import default_profile_json

        return default_profile_json()
    if value == "unconfined":
        return None
    path = Path(value)
    if not path.is_absolute() and policy_dir is not None:
        path = policy_dir / path
    try:
        data = json.loads(path.read_text())
    except OSError as e:
        raise SandboxError(f"process.seccomp: cannot read profile {value!r} ({e.strerror})") from None
    except json.JSONDecodeError as e:
        raise SandboxError(f"process.seccomp: profile {value!r} is not JSON ({e.msg})") from None
    return json.dumps(data, separators=(",", ":"), sort_keys=True)


def security_options(policy: Policy, policy_dir: Path | None = None) -> list[str]:
    """`--security-opt` values: no-new-privileges, seccomp, AppArmor."""
    proc = policy.process
    opts: list[str] = []
    if proc.no_new_privileges:
        opts.append("no-new-privileges:true")
    if proc.seccomp == "unconfined":
        opts.append("seccomp=unconfined")
    else:
        profile = seccomp_profile(policy, policy_dir)
        if profile is not None:
            opts.append(f"seccomp={profile}")
    if proc.apparmor:
        opts.append(f"apparmor={proc.apparmor}")
    return opts


PER_SAMPLE_MODES = ("internal", "allowlist")
"""Network modes whose sandbox joins a per-sample network made by the network module."""


def network_mode(policy: Policy, network: str | None = None) -> str:
    """Docker network mode: `none` (loopback only), `bridge` (open), `host` (host namespace),
    or the per-sample network (`internal`/`allowlist`, created by the network module)."""
    if policy.process.namespaces.network == "host":
        return "host"
    mode = policy.network.mode
    if mode == "none":
        return "none"
    if mode == "open":
        return "bridge"
    if network is None:
        raise SandboxError(f"network.mode {mode!r} needs a per-sample network")
    return network


def normalize_capability(cap: str) -> str:
    """`net_admin`, `CAP_NET_ADMIN` → `NET_ADMIN`."""
    c = cap.strip().upper()
    return c[4:] if c.startswith("CAP_") else c


def container_settings(
    policy: Policy,
    *,
    image: str,
    labels: dict[str, str],
    name: str | None = None,
    network: str | None = None,
    extra_env: dict[str, str] | None = None,
    policy_dir: Path | None = None,
    sandbox: bool = False,
) -> dict[str, Any]:
    """Keyword arguments for `client.containers.create(...)` that apply `policy` exactly.

    `sandbox`: the model's own container, whose PID 1 (the keepalive) runs as `KEEPALIVE_USER`
    while every command is exec'd as the policy's `process.user` (see the provider). Without it
    (sidecars, which replace the command) the main process runs as the policy's user.

    The environment is the policy's `env` (plus `extra_env`, e.g. proxy variables) on top of the
    image's own (`PATH`); the host environment never enters.
    """
    from docker.types import Mount

    proc, fs, limits, ns = policy.process, policy.filesystem, policy.limits, policy.process.namespaces
    return {
        "image": image,
        "command": list(KEEPALIVE_COMMAND),
        "name": name,
        "hostname": HOSTNAME,
        "labels": dict(labels),
        # who and where
        "user": KEEPALIVE_USER if sandbox else proc.user,
        "working_dir": fs.workdir,
        "environment": {**policy.env, **(extra_env or {})},
        # docker-py otherwise copies `proxies` of the host's ~/.docker/config.json (credentials
        # included) into the environment
        "use_config_proxy": False,
        # network (on a per-sample network, names the sidecars do not answer fail fast instead of
        # waiting ~20 s for Docker's embedded DNS to give up on an upstream it cannot reach)
        "network_mode": network_mode(policy, network),
        "dns_opt": ["timeout:1", "attempts:1"] if policy.network.mode in PER_SAMPLE_MODES else None,
        # filesystem
        "read_only": fs.read_only_root,
        "tmpfs": tmpfs_options(policy),
        "mounts": [
            Mount(target=m.target, source=m.source, type="bind", read_only=m.mode == "ro")
            for m in fs.mounts
        ],
        # privileges
        "privileged": proc.privileged,
        "cap_drop": [normalize_capability(c) for c in proc.capabilities.drop],
        "cap_add": [normalize_capability(c) for c in proc.capabilities.add],
        "security_opt": security_options(policy, policy_dir),
        "runtime": proc.runtime,
        "devices": list(proc.devices),
        "init": proc.init,
        # namespaces (private unless the policy says host)
        "pid_mode": "host" if ns.pid == "host" else None,
        # a private IPC namespace without Docker's writable 64m /dev/shm ("none"); a policy that
        # wants one lists /dev/shm among its writable paths (a size-capped tmpfs like the others)
        "ipc_mode": "host" if ns.ipc == "host" else "none",
        "sysctls": dict(IPC_SYSCTLS) if ns.ipc != "host" else None,
        # the container sees its own cgroup as `/`, not the host's path naming its id
        "cgroupns": "private",
        # applied by `_docker.create_container` (docker-py has no argument for it)
        "masked_paths": None if proc.privileged else list(MASKED_PATHS),
        "uts_mode": "host" if ns.uts == "host" else None,
        "userns_mode": "host" if ns.userns == "host" else None,
        # resources (memory+swap equal: no swap)
        "mem_limit": limits.memory or None,
        "memswap_limit": limits.memory or None,
        "nano_cpus": round(limits.cpus * 1e9) if limits.cpus else None,
        "pids_limit": limits.pids,
    }


def docker_settings(policy: Policy, policy_dir: Path | None = None) -> dict[str, Any]:
    """The sandbox container settings of a policy as plain data, for `tierlock policy show`:
    `user` runs the keepalive (PID 1), `exec_user` every command of the model.

    Image is the resolved tag, labels show their keys with placeholders, and a seccomp profile
    is shown by its file name instead of its contents.
    """
    from ._images import resolve_image
    from ._labels import object_labels

    labels = object_labels(role="default", task="<task>", sample="<sample>",
                           policy_hash=policy.digest(), policy_name=policy.name)
    labels.update({k: f"<{k.split('.', 1)[1]}>" for k in labels
                   if k in ("tierlock.run", "tierlock.owner")})
    network = None if policy.network.mode in ("none", "open") else "<per-sample network>"
    settings = container_settings(policy, image=resolve_image(policy.image), labels=labels,
                                  network=network, policy_dir=policy_dir, sandbox=True)
    shown: dict[str, Any] = {}
    for key, value in settings.items():
        shown[key] = value
        if key == "user":
            shown["exec_user"] = policy.process.user
    settings = shown
    settings.pop("name")
    settings.pop("use_config_proxy")
    settings["mounts"] = [
        {"type": "bind", "source": m["Source"], "target": m["Target"], "read_only": m["ReadOnly"]}
        for m in settings["mounts"]
    ]
    settings["security_opt"] = [
        f"seccomp=<profile {policy.process.seccomp}>" if o.startswith("seccomp={") else o
        for o in settings["security_opt"]
    ]
    return {k: v for k, v in settings.items() if v is not None}
