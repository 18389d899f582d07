"""The policies sidecars run under, derived from the sandbox's: `hardened_policy` (the policy's
kernel hardening on a floor no policy lowers), `service_policy` and `proxy_policy`."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ._config import ServiceSpec
    from ._policy import Policy

PROXY_USER = "13:13"  # Debian's `proxy` user
PROXY_MEMORY = 256 * 1024**2
PROXY_PIDS = 64
PROXY_CPUS = 0.5
PROXY_TMP = 16 * 1024**2
"""Size of the proxy's /tmp (configuration, certificate)."""
PROXY_SHM = 8 * 1024**2
"""Size of the proxy's /dev/shm (squid 5 keeps a few shared-memory segments even unshared)."""
SERVICE_FILES_TMPFS = 16 * 1024**2
"""Size of the tmpfs a hardened service gets for each directory of its files."""


def hardened_policy(policy: Policy) -> Policy:
    """The sandbox's policy as a sidecar applies it: the policy's kernel hardening (user,
    seccomp profile, AppArmor, runtime, IPC, init, limits, writable paths) on a floor no policy
    lowers: read-only root, every capability dropped, no-new-privileges, not privileged, a
    seccomp filter, private namespaces, and none of the sandbox's devices or host mounts."""
    proc, fs = policy.process, policy.filesystem
    process = proc.model_copy(
        update={
            "privileged": False,
            "capabilities": proc.capabilities.model_copy(update={"drop": ["ALL"], "add": []}),
            "no_new_privileges": True,
            "seccomp": "default" if proc.seccomp == "unconfined" else proc.seccomp,
            "namespaces": type(proc.namespaces)(),
            "devices": [],
        }
    )
    # a working directory no writable path covers would be created in the image's layer
    workdir = fs.workdir if any(_under(fs.workdir, w.path) for w in fs.writable) else "/"
    filesystem = fs.model_copy(update={"read_only_root": True, "mounts": [], "workdir": workdir})
    return policy.model_copy(update={"process": process, "filesystem": filesystem, "env": {}})


def service_policy(policy: Policy, spec: ServiceSpec) -> Policy:
    """What a hardened service sidecar runs under: `hardened_policy`, plus a tmpfs for each
    directory of the service's files that no writable path covers."""
    base = hardened_policy(policy)
    writable = list(base.filesystem.writable)
    from ._policy import WritablePath

    for path in spec.files:
        parent = path.rsplit("/", 1)[0] or "/"
        if not any(_under(parent, w.path) for w in writable):
            writable.append(WritablePath(path=parent, size=SERVICE_FILES_TMPFS))
    fs = base.filesystem.model_copy(update={"writable": writable})
    return base.model_copy(update={"filesystem": fs})


def proxy_policy(policy: Policy) -> Policy:
    """What the egress proxy runs under: `hardened_policy` as squid's own user, with only /tmp
    and a small /dev/shm (the IPC namespace is private and has none otherwise) writable, and
    the proxy's own limits."""
    from ._policy import WritablePath

    base = hardened_policy(policy)
    process = base.process.model_copy(update={"user": PROXY_USER, "init": True})
    fs = base.filesystem.model_copy(
        update={
            "writable": [
                WritablePath(path="/tmp", size=PROXY_TMP),
                WritablePath(path="/dev/shm", size=PROXY_SHM),  # squid's shared segments
            ],
            "workdir": "/tmp",
        }
    )
    limits = base.limits.model_copy(
        update={"memory": PROXY_MEMORY, "pids": PROXY_PIDS, "cpus": PROXY_CPUS}
    )
    return base.model_copy(update={"process": process, "filesystem": fs, "limits": limits})


def _under(path: str, base: str) -> bool:
    return path == base or path.startswith(base.rstrip("/") + "/")
