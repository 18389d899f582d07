"""A sample's sandbox brought up under check: the created container read back against its
policy (`_conformance`) and against the daemon's security options, started, the kernel's view of
its PID 1 and of a command run as the model's are, the effective limits read back (`_effective`),
and the outcome recorded in the transcript as a `ConformanceRecord`.

`conform` does it all for a sample starting its own container; a warm pool (`_warm_pool`) checks
ahead with `check_now` and the sample that takes the container records it (`record_conformance`,
marked as pooled, with when it was checked)."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ._conformance import check_config, check_daemon
from ._conformance_kernel import (
    EXEC_PROBE,
    RUNTIME_PROBE,
    check_kernel_exec_output,
    check_kernel_host,
    check_runtime_probe,
    check_status,
    host_proc_visible,
)
from ._docker import run_sync
from ._effective import (
    CGROUP_FILES,
    SELF_PROBE,
    STATUS,
    check_effective,
    host_cgroup_files,
    parse_probe,
)
from ._errors import SandboxError, display_path
from ._evidence import ConformanceRecord
from ._exec import PINNED_PATH, run_exec
from ._host_check import engine_refusal
from ._policy import Policy
from ._running_sandbox import KILL_GRACE
from ._sample_context import record_evidence
from ._translate import KEEPALIVE_USER, seccomp_profile

if TYPE_CHECKING:
    import docker

    from ._sample_box import SampleBox


async def conform(box: SampleBox, image: str, attrs: dict[str, Any]) -> None:
    """Check the created container against its policy, start it, check the kernel's view,
    and record the outcome; raise `SandboxError` on any mismatch."""
    client = box.client
    image_env = (await _image_config(client, image)).get("Env")
    mismatches = config_mismatches(box, attrs, image_env, await _daemon_security(client))
    if not mismatches:
        mismatches = await _start_and_check(box)
    record_conformance(box, mismatches)


def check_now(box: SampleBox, image: str, attrs: dict[str, Any]) -> list[str]:
    """`conform`'s checks, blocking and unrecorded (the warm pool checks a container before any
    sample exists; the sample that takes it records the result: `record_conformance`)."""
    client = box.client
    image_env = _image_config_now(client, image).get("Env")
    mismatches = config_mismatches(box, attrs, image_env, _daemon_security_now(client))
    if mismatches:
        return mismatches
    _start(box)
    mismatches = kernel_check(client, box.container_id, box.policy)
    state = client.api.inspect_container(box.container_id)["State"]
    box.init_pid = int(state.get("Pid") or 0)
    return mismatches


def config_mismatches(
    box: SampleBox, attrs: dict[str, Any], image_env: Any, security: list[str]
) -> list[str]:
    """The created container's configuration (and the daemon's security options) against the
    policy."""
    net = box.network
    return check_config(
        attrs,
        box.policy,
        image_env=image_env,
        extra_env=net.env if net else None,
        network=net.network if net else None,
        policy_dir=box.loaded.policy_dir,
        sandbox=True,
    ) + check_daemon(security, box.policy)


def _start(box: SampleBox) -> None:
    try:
        box.client.api.start(box.container_id)
    except Exception as e:
        raise engine_refusal(e, box.loaded.path, "start") or e from None


async def _start_and_check(box: SampleBox) -> list[str]:
    client = box.client
    await run_sync(_start, box)
    mismatches = await run_sync(kernel_check, client, box.container_id, box.policy)
    state = (await run_sync(client.api.inspect_container, box.container_id))["State"]
    box.init_pid = int(state.get("Pid") or 0)
    return mismatches


def record_conformance(
    box: SampleBox, mismatches: list[str], *, checked_at: float | None = None
) -> None:
    """Record the check's outcome in the active sample's transcript as a `ConformanceRecord`
    (`checked_at`: when a warm pool checked it, before the sample took the container); raise
    `SandboxError` on any mismatch."""
    policy = box.policy
    unsafe = policy.unsafe
    record_evidence(
        ConformanceRecord(
            container=box.name,
            role="default",
            policy_name=policy.name,
            policy_hash=box.loaded.policy.digest(),
            policy_path=str(box.loaded.path),
            ok=not mismatches,
            mismatches=mismatches,
            unsafe_reason=unsafe.reason if unsafe else None,
            unsafe_rules=list(unsafe.allow) if unsafe else [],
            seccomp_sha256=profile_sha256(policy, box.loaded.policy_dir),
            user=policy.process.user,
            pooled=checked_at is not None,
            checked_at=checked_at,
        )
    )
    if mismatches:
        more = f" (and {len(mismatches) - 1} more)" if len(mismatches) > 1 else ""
        raise SandboxError(
            f"{display_path(box.loaded.path)}: sandbox {box.name} does not conform to policy "
            f"{policy.name!r}: {mismatches[0]}{more}"
        )


def profile_sha256(policy: Policy, policy_dir: Path) -> str | None:
    """SHA-256 of the seccomp profile the sandbox was given (what conformance compared)."""
    import hashlib

    with contextlib.suppress(SandboxError):
        profile = seccomp_profile(policy, policy_dir)
        return hashlib.sha256(profile.encode()).hexdigest() if profile is not None else None
    return None


_image_configs: dict[str, dict[str, Any]] = {}
_daemon_security_options: dict[int, list[str]] = {}


async def _daemon_security(client: docker.DockerClient) -> list[str]:
    """The daemon's `docker info` SecurityOptions (read once per client)."""
    key = id(client)
    if key not in _daemon_security_options:
        info = await run_sync(client.info)
        _daemon_security_options[key] = list(info.get("SecurityOptions") or [])
    return _daemon_security_options[key]


async def _image_config(client: docker.DockerClient, image: str) -> dict[str, Any]:
    if image not in _image_configs:
        info = await run_sync(client.api.inspect_image, image)
        _image_configs[image] = info.get("Config") or {}
    return _image_configs[image]


def _daemon_security_now(client: docker.DockerClient) -> list[str]:
    key = id(client)
    if key not in _daemon_security_options:
        _daemon_security_options[key] = list(client.info().get("SecurityOptions") or [])
    return _daemon_security_options[key]


def _image_config_now(client: docker.DockerClient, image: str) -> dict[str, Any]:
    if image not in _image_configs:
        _image_configs[image] = client.api.inspect_image(image).get("Config") or {}
    return _image_configs[image]


def kernel_check(client: docker.DockerClient, container_id: str, policy: Policy) -> list[str]:
    """The kernel's view of the started sandbox: its PID 1 (the keepalive, as `KEEPALIVE_USER`)
    from the host's /proc when it can see it, else from inside; then one command exec'd the way
    the model's are (as the policy's user, through `timeout`), which must run as the policy
    says (uid/gid, capabilities, no_new_privs, seccomp) and reads back the effective limits
    (cgroup memory, pids, CPU; tmpfs sizes from the mount table: `_effective`)."""
    attrs = client.api.inspect_container(container_id)
    state = attrs.get("State") or {}
    if not state.get("Running"):
        return [f"container is not running after start (exit code {state.get('ExitCode')})"]
    pid = int(state.get("Pid") or 0)
    bad: list[str] | None = None
    gvisor = policy.process.runtime == "runsc"  # the host's /proc shows gVisor's sandbox process
    runtime_bad, nnp = _runtime_check(client, container_id, policy) if gvisor else ([], False)
    if not gvisor and host_proc_visible(pid, container_id):
        with contextlib.suppress(OSError):
            bad = check_kernel_host(pid, policy, user=KEEPALIVE_USER)
    if bad is None:
        out = run_exec(
            client.api,
            container_id,
            EXEC_PROBE,
            env={"PATH": PINNED_PATH},
            user=KEEPALIVE_USER,
            limit=1 << 16,
            deadline=30,
        )
        if out.exit_code != 0:
            return [
                "cannot read the container's process status "
                f"({out.stderr.decode(errors='replace')})"
            ]
        bad = check_kernel_exec_output(
            _with_nnp(out.stdout.decode(errors="replace"), nnp, gvisor),
            policy,
            user=KEEPALIVE_USER,
        )
    bad = [f"PID 1: {m}" for m in bad]
    out = run_exec(
        client.api,
        container_id,
        ["/usr/bin/timeout", "-k", KILL_GRACE, "30s", *SELF_PROBE],
        env={"PATH": PINNED_PATH},
        workdir=policy.filesystem.workdir,
        user=policy.process.user,
        limit=1 << 18,
        deadline=45,
    )
    files = parse_probe(out.stdout.decode(errors="replace"))
    if out.exit_code not in (0, 2) or STATUS not in files:  # grep: 2 when a file is absent
        text = (out.stdout + out.stderr).decode(errors="replace").strip()[:300]
        return [
            *bad,
            f"cannot run a command as policy process.user {policy.process.user!r} "
            f"(exit {out.exit_code}: {text})",
        ]
    if not any(f in files for f in CGROUP_FILES) and host_proc_visible(pid, container_id):
        with contextlib.suppress(OSError, ValueError):
            files = {**host_cgroup_files(pid), **files}
    status = _with_nnp(files[STATUS], nnp, gvisor)
    return (
        bad
        + [f"runtime: {m}" for m in runtime_bad]
        + [f"commands: {m}" for m in check_status(status, policy, None)]
        + [f"limits: {m}" for m in check_effective(files, policy)]
    )


def _runtime_check(
    client: docker.DockerClient, container_id: str, policy: Policy
) -> tuple[list[str], bool]:
    """`RUNTIME_PROBE` run as the model's commands are, against the daemon host's kernel."""
    out = run_exec(
        client.api,
        container_id,
        RUNTIME_PROBE,
        env={"PATH": PINNED_PATH},
        workdir=policy.filesystem.workdir,
        user=policy.process.user,
        limit=1 << 12,
        deadline=30,
    )
    text = (out.stdout + out.stderr).decode(errors="replace")
    if out.exit_code != 0:
        return [
            f"cannot read the kernel release inside (exit {out.exit_code}: {text[:200]!r})"
        ], False
    return check_runtime_probe(text, policy, str(client.info().get("KernelVersion") or ""))


def _with_nnp(status: str, nnp: bool, gvisor: bool) -> str:
    """gVisor's /proc/<pid>/status has no NoNewPrivs line: use the one `RUNTIME_PROBE` read
    with prctl from a command started the same way (exec'd processes inherit the container's
    no_new_privs; PID 1's own cannot be read from inside gVisor)."""
    if not gvisor or "NoNewPrivs:" in status:
        return status
    head, sep, tail = status.partition("Inter-|")
    return f"{head.rstrip()}\nNoNewPrivs:\t{int(nnp)}\n{sep}{tail}"
