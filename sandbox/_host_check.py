"""Host-aware policy checks, and Docker's refusals turned into policy errors.

Lint (`_lint`) judges a policy on its own. These checks need the Docker host (`docker info`):
a CPU limit above the host's CPU count, a runtime the daemon does not have, an AppArmor profile on
a host without AppArmor (Docker would silently run without it), a limit the kernel cannot enforce
(Docker would only warn), a bind-mount source missing on a local daemon. They run in
`tierlock policy check` (when Docker is reachable), when a tierlock task is built (the run's
pre-flight loads every task before anything runs), and in the provider's `task_init`.

What only Docker knows is learnt when it refuses a container: `engine_refusal` turns the API
error into an `EngineRefused` naming the policy file, line, field and Docker's own reason. Its
text starts with `REFUSAL_TAG`, so the runner can recognise it in a sample's error and stop with a
policy/host error (exit 1) instead of an incomplete tier that would fail the same way again.
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ._errors import Location, PolicyError, Problem, SandboxError, display_path
from ._loader import LoadedPolicy, load_policy_file
from ._loader_positions import KeyPath
from ._policy import TIERS, Policy

if TYPE_CHECKING:
    import docker


@dataclass(frozen=True)
class HostFacts:
    """What the Docker host offers, from `docker info`."""

    cpus: int
    runtimes: tuple[str, ...]
    security_options: tuple[str, ...]
    memory_limit: bool = True
    swap_limit: bool = True
    pids_limit: bool = True
    cpu_quota: bool = True
    local: bool = False
    """The daemon runs on this machine (bind-mount sources can be checked here)."""

    @classmethod
    def from_info(cls, info: Mapping[str, Any], *, local: bool = False) -> HostFacts:
        def flag(key: str) -> bool:
            return info.get(key) is not False  # absent (other engines): assume supported

        return cls(
            cpus=int(info.get("NCPU") or 0),
            runtimes=tuple(sorted(info.get("Runtimes") or {})),
            security_options=tuple(info.get("SecurityOptions") or ()),
            memory_limit=flag("MemoryLimit"),
            swap_limit=flag("SwapLimit"),
            pids_limit=flag("PidsLimit"),
            cpu_quota=flag("CpuCfsQuota"),
            local=local,
        )

    @property
    def apparmor(self) -> bool:
        return any(o.startswith("name=apparmor") for o in self.security_options)


_facts: dict[int, HostFacts] = {}
_facts_lock = threading.Lock()


def daemon_is_local() -> bool:
    """Whether the daemon is reached through a local socket (its paths are this machine's)."""
    host = os.environ.get("DOCKER_HOST", "")
    return host == "" or host.startswith("unix://")


def host_facts(client: docker.DockerClient) -> HostFacts:
    """`HostFacts` of the client's daemon, read once per client."""
    with _facts_lock:
        cached = _facts.get(id(client))
    if cached is None:
        cached = HostFacts.from_info(client.info(), local=daemon_is_local())
        with _facts_lock:
            _facts[id(client)] = cached
    return cached


def _problem(
    loaded: LoadedPolicy | None,
    file: str,
    key: KeyPath,
    message: str,
    rule: str,
    severity: str = "error",
) -> Problem:
    where = loaded.locate(key) if loaded is not None else Location(file, key=_dotted(key))
    return Problem(where, message, severity=severity, rule=rule)


def _dotted(key: KeyPath) -> str:
    return ".".join(f"[{k}]" if isinstance(k, int) else str(k) for k in key).replace(".[", "[")


def host_problems(
    policy: Policy, facts: HostFacts, loaded: LoadedPolicy | None = None, *, file: str = "<policy>"
) -> list[Problem]:
    """What the Docker host cannot give `policy` (errors: Docker would refuse the container, or
    run it with less containment than the policy says)."""
    if policy.tier == TIERS[0]:  # text-only: no container is ever made
        return []
    out: list[Problem] = []
    proc, limits = policy.process, policy.limits

    def add(key: KeyPath, message: str, rule: str, severity: str = "error") -> None:
        out.append(_problem(loaded, file, key, message, rule, severity))

    if limits.cpus is not None and facts.cpus and limits.cpus > facts.cpus:
        add(
            ("limits", "cpus"),
            f"{limits.cpus:g} CPUs is more than the Docker host has "
            f"({facts.cpus}); Docker refuses the container",
            "host-cpus",
        )
    if facts.runtimes and proc.runtime not in facts.runtimes:
        add(
            ("process", "runtime"),
            f"runtime {proc.runtime!r} is not installed in the Docker "
            f"daemon (it has: {', '.join(facts.runtimes)}); Docker refuses the container",
            "host-runtime",
        )
    if proc.apparmor and proc.apparmor != "unconfined" and not facts.apparmor:
        add(
            ("process", "apparmor"),
            f"AppArmor is not enabled on the Docker host: profile "
            f"{proc.apparmor!r} would silently not apply",
            "host-apparmor",
        )
    for key, wanted, supported, what in (
        ("memory", limits.memory, facts.memory_limit, "memory limits"),
        ("pids", limits.pids, facts.pids_limit, "pids limits"),
        ("cpus", limits.cpus, facts.cpu_quota, "CPU quotas"),
    ):
        if wanted is not None and not supported:
            add(
                ("limits", key),
                f"the Docker host's kernel does not support {what}: "
                "Docker would run the container without it",
                "host-limits",
            )
    if limits.memory is not None and facts.memory_limit and not facts.swap_limit:
        add(
            ("limits", "memory"),
            "the Docker host's kernel does not limit swap: the container "
            "may swap beyond limits.memory",
            "host-limits",
            "warning",
        )
    if facts.local:
        for i, m in enumerate(policy.filesystem.mounts):
            if not os.path.exists(m.source):
                add(
                    ("filesystem", "mounts", i, "source"),
                    f"{m.source} does not exist on the Docker host; Docker refuses the bind mount",
                    "host-mount-source",
                )
    from ._conformance import check_daemon

    for message in check_daemon(list(facts.security_options), policy):
        add(("process", "seccomp"), message, "host-seccomp")
    return out


def check_host_file(path: str | Path, client: docker.DockerClient) -> list[Problem]:
    """`host_problems` of a policy file, with file:line:col of each key."""
    loaded = load_policy_file(path)
    return host_problems(loaded.policy, host_facts(client), loaded)


def require_host_fit(path: str | Path, client: docker.DockerClient | None = None) -> None:
    """Raise `PolicyError` (one line per problem) when the host cannot run the policy file as
    written. Skipped silently when Docker is not reachable: creating the sandbox will say so."""
    from ._docker import get_client

    if client is None:
        try:
            client = get_client()
        except SandboxError:
            return
    problems = [p for p in check_host_file(path, client) if p.severity == "error"]
    if problems:
        raise PolicyError(f"{problems[0]}", problems)


# --- Docker's refusals ---------------------------------------------------------------------------

REFUSAL_TAG = "Docker refused the sandbox container"
"""Every `EngineRefused` message contains this (the runner looks for it in sample errors)."""


class EngineRefused(SandboxError):
    """Docker refused to create or start a sandbox container as its policy describes it: a policy
    or host problem, not a transient one (running again fails the same way)."""

    def __init__(self, message: str, problems: list[Problem] | None = None) -> None:
        super().__init__(message, problems)
        self.message = message  # what Inspect records as the sample's error, verbatim


_FIELDS: tuple[tuple[str, KeyPath], ...] = (
    (r"\bCPUs?\b|cpu\.|cfs_|NanoCpus|cpuset", ("limits", "cpus")),
    (r"swap", ("limits", "memory")),
    (r"memory", ("limits", "memory")),
    (r"pids", ("limits", "pids")),
    (r"runtime specified|unknown runtime", ("process", "runtime")),
    (r"tmpfs", ("filesystem", "writable")),
    (r"bind source|mount", ("filesystem", "mounts")),
    (r"device", ("process", "devices")),
    (r"seccomp", ("process", "seccomp")),
    (r"apparmor", ("process", "apparmor")),
    (r"capabilit", ("process", "capabilities")),
    (r"user|uid|gid", ("process", "user")),
    (r"network", ("network", "mode")),
)
_NOISE = re.compile(
    r"^(?:failed to create shim task|OCI runtime (?:create|start) failed|runc (?:create|start) "
    r"failed|unable to start container process|error during container init): "
)
_CONTAINER_ID = re.compile(r"\b[0-9a-f]{64}\b")


def docker_reason(explanation: str) -> str:
    """Docker's reason in one short line (runtime wrapper prefixes and container ids removed)."""
    text = " ".join(explanation.split())
    while (m := _NOISE.match(text)) is not None:
        text = text[m.end() :]
    text = _CONTAINER_ID.sub("<id>", text).removesuffix(": unknown")
    return text if len(text) <= 240 else text[:237] + "..."


def refused_field(reason: str) -> KeyPath | None:
    """The policy field a Docker refusal is about, when its message says."""
    for pattern, key in _FIELDS:
        if re.search(pattern, reason, re.IGNORECASE):
            return key
    return None


def engine_refusal(error: Exception, policy_file: Path, when: str) -> EngineRefused | None:
    """An `EngineRefused` for a Docker API error of creating/starting a sandbox (`when`), or
    None when `error` is not Docker refusing the request (a 400/409/500 from the daemon)."""
    import docker.errors

    if not isinstance(error, docker.errors.APIError) or isinstance(error, docker.errors.NotFound):
        return None
    status = error.status_code or 0
    if status not in (400, 409, 500):
        return None
    explanation = error.explanation
    if isinstance(explanation, bytes):
        explanation = explanation.decode(errors="replace")
    reason = docker_reason(str(explanation or error))
    key = refused_field(reason)
    try:
        loaded: LoadedPolicy | None = load_policy_file(policy_file)
    except PolicyError:
        loaded = None
    file = display_path(policy_file)
    what = f"{REFUSAL_TAG} ({when}, HTTP {status}): {reason}"
    if key is None:
        problem = Problem(Location(file), what, rule="docker-refused")
    else:
        problem = _problem(loaded, file, key, what, "docker-refused")
    return EngineRefused(str(problem), [problem])


def refusal_in(text: str | None) -> str | None:
    """The `EngineRefused` line in an error message as Inspect recorded it, if there is one."""
    if not text or REFUSAL_TAG not in text:
        return None
    line = next(ln for ln in text.splitlines() if REFUSAL_TAG in ln)
    return line.strip()


def raise_if_refused(messages: Iterable[str | None]) -> None:
    """Raise `PolicyError` with the first `EngineRefused` line among error messages (a task's or
    its samples' errors after an eval): a policy/host problem ends the run with exit 1."""
    for text in messages:
        line = refusal_in(text)
        if line is not None:
            raise PolicyError(line)
