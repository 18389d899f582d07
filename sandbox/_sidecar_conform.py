"""A sidecar read back against what it must be: networks, hardening, user and limits, the
sandbox's own configuration check (`_conformance.check_config`) and the kernel's view of its
PID 1; the outcome is a `ConformanceRecord` in the sample network's evidence."""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING

from ._docker import run_sync
from ._errors import SandboxError
from ._evidence import ConformanceRecord
from ._labels import ROLE_LABEL
from ._proxylog import check_proxy_log_config
from ._sidecar_policy import PROXY_MEMORY, PROXY_PIDS, PROXY_USER
from ._sidecars import HARDEN_LABEL

if TYPE_CHECKING:
    import docker

    from ._network_state import NetworkState
    from ._policy import Policy


async def check_sidecar(
    client: docker.DockerClient, cid: str, state: NetworkState, network: str, mode: str
) -> None:
    """Read a sidecar's configuration back and compare it with what it must be."""
    attrs = await run_sync(lambda: client.api.inspect_container(cid))
    labels = attrs["Config"].get("Labels") or {}
    role = labels.get(ROLE_LABEL, "service")
    hc = attrs["HostConfig"]
    nets = set((attrs["NetworkSettings"].get("Networks") or {}).keys())
    policy = state.policy
    bad: list[str] = []
    hardened = labels.get(HARDEN_LABEL, "true") == "true"
    if hc.get("Privileged"):
        bad.append("Privileged is true")
    if role == "proxy":
        if len(nets) != 2 or network not in nets:
            bad.append(f"proxy networks are {sorted(nets)}, want {network} plus one egress")
    elif nets != {network}:
        bad.append(f"networks are {sorted(nets)}, want only {network}")
    if hardened:
        if not hc.get("ReadonlyRootfs"):
            bad.append("root filesystem is writable")
        if "ALL" not in (hc.get("CapDrop") or []) or hc.get("CapAdd"):
            bad.append(f"capabilities: drop {hc.get('CapDrop')} add {hc.get('CapAdd')}")
        if not any(o.startswith("no-new-privileges") for o in hc.get("SecurityOpt") or []):
            bad.append("no-new-privileges is not set")
        user = attrs["Config"].get("User") or ""
        want = PROXY_USER if role == "proxy" else policy.process.user
        if user != want:
            bad.append(f"runs as user {user!r}, want {want!r}")
    if role != "proxy":
        lim = policy.limits
        if lim.memory is not None and hc.get("Memory") != int(lim.memory):
            bad.append(f"memory limit {hc.get('Memory')} != {int(lim.memory)}")
        if lim.pids is not None and hc.get("PidsLimit") != lim.pids:
            bad.append(f"pids limit {hc.get('PidsLimit')} != {lim.pids}")
    else:
        if hc.get("Memory") != PROXY_MEMORY or hc.get("PidsLimit") != PROXY_PIDS:
            bad.append("proxy memory/pids limits not applied")
        bad += check_proxy_log_config(hc)
    from ._conformance import check_config

    spec = state.sidecars.get(cid)
    if hardened and spec is not None:  # all the sandbox's own check compares, and the kernel
        image_env = (await run_sync(client.api.inspect_image, attrs["Image"]))["Config"].get("Env")
        mismatches = check_config(
            attrs,
            spec.want,
            image_env=image_env,
            extra_env=spec.env,
            network=network,
            policy_dir=state.policy_dir,
        )
        bad += [m for m in mismatches if not m.startswith("Config.Hostname ")]
        if attrs["Config"].get("Hostname") != spec.hostname:
            bad.append(f"hostname is {attrs['Config'].get('Hostname')!r}, want {spec.hostname!r}")
        bad += await run_sync(_kernel_check, client, cid, spec.want)
    elif hardened:
        bad.append("sidecar was not created by this sample network")
    record = ConformanceRecord(
        container=attrs["Name"].lstrip("/"),
        role=role,
        policy_name=policy.name,
        policy_hash=policy.digest(),
        ok=not bad,
        mismatches=bad,
    )
    state.conformance.append(record)
    if bad:
        raise SandboxError(f"sidecar {record.container} does not conform: {'; '.join(bad)}")


def _kernel_check(client: docker.DockerClient, cid: str, want: Policy) -> list[str]:
    """The sidecar's PID 1 as the kernel sees it (uid, capabilities, no_new_privs, seccomp,
    namespaces) against `want`: the host's /proc when visible, else read from inside. A sidecar
    that already exited has nothing left to check (its configuration was checked)."""
    from ._conformance_kernel import (
        EXEC_PROBE,
        check_kernel_exec_output,
        check_kernel_host,
        host_proc_visible,
    )
    from ._exec import PINNED_PATH, run_exec

    state = client.api.inspect_container(cid).get("State") or {}
    if not state.get("Running"):  # a one-shot service that is done: no process left to check
        return []
    pid = int(state.get("Pid") or 0)
    if host_proc_visible(pid, cid):
        with contextlib.suppress(OSError):
            return check_kernel_host(pid, want)
    out = run_exec(
        client.api, cid, EXEC_PROBE, env={"PATH": PINNED_PATH}, limit=1 << 16, deadline=30
    )
    if out.exit_code != 0:
        return [f"cannot read the sidecar's process status ({out.stderr.decode(errors='replace')})"]
    return check_kernel_exec_output(out.stdout.decode(errors="replace"), want)
