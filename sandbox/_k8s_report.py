"""The per-field report of a policy's translation to the Kubernetes chart's values.

Every field of a tierlock policy gets one `FieldTreatment`: enforced the `same` way, `emulated`
by another mechanism with the same effect, `stronger` or `weaker` than on the Docker backend, or
`refused` (the translation fails with one line naming the field: `K8sRefused`). Nothing a policy
says is dropped without a line here. This module holds the vocabulary and the treatments of the
fields the chart's values do not carry (they are Inspect's, the runner's or the node's); the
translation itself is `_k8s_values`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from ._errors import SandboxError
from ._units import format_duration

if TYPE_CHECKING:
    from ._policy import Policy

Treatment = Literal["same", "emulated", "stronger", "weaker", "refused"]
TREATMENTS: tuple[Treatment, ...] = ("same", "emulated", "stronger", "weaker", "refused")

INSPECT_K8S_OUTPUT_CAP = 10 * 1024**2
"""What inspect-k8s-sandbox keeps of a command's output (Inspect's `MAX_EXEC_OUTPUT_SIZE`)."""


@dataclass(frozen=True)
class FieldTreatment:
    """How one policy field is enforced on Kubernetes, compared with the Docker backend."""

    field: str
    """The policy field, dotted (`network.allow[1]`, `limits.pids`)."""
    treatment: Treatment
    how: str
    """One line: what enforces it on the cluster, and what differs."""

    def line(self) -> str:
        return f"{self.field}: {self.treatment}: {self.how}"


class K8sRefused(SandboxError):
    """A policy field the chart cannot express safely; the message names the field."""

    def __init__(self, field: str, why: str) -> None:
        super().__init__(f"{field}: cannot run on Kubernetes: {why}")
        self.field = field


def refuse(field: str, why: str) -> K8sRefused:
    return K8sRefused(field, why)


def outside_values(policy: Policy) -> list[FieldTreatment]:
    """Treatments of the fields that are not in the chart's values: Inspect, the runner or the
    cluster's nodes enforce them, or nothing does."""
    proc, limits, tools = policy.process, policy.limits, policy.tools
    t = FieldTreatment
    out = [
        t("tools.allow", "same", "Inspect gives the task's tools; the backend does not change them"),
        t(
            "tools.approval",
            "same",
            "Inspect's approval runs in the eval process, before any command reaches the pod"
            if tools.approval
            else "no approval policy",
        ),
        t(
            "limits.command_timeout",
            "emulated",
            f"{format_duration(limits.command_timeout)} is passed by the tools as each exec's "
            "timeout (inspect-k8s-sandbox ends the exec, not every process it started)",
        ),
        t(
            "limits.sample_time",
            "emulated",
            f"{format_duration(limits.sample_time)} is Inspect's per-sample time limit, set by "
            "the runner, not by the chart",
        ),
        _output_cap(limits.output_bytes),
        t(
            "limits.pids",
            "weaker",
            f"the chart has no per-pod pids limit ({limits.pids} here): only the kubelet's "
            "node-wide --pod-max-pids bounds a fork bomb"
            if limits.pids is not None
            else "no pids limit in the policy; the kubelet's --pod-max-pids is the only bound",
        ),
        t(
            "process.init",
            "weaker",
            "no init process: PID 1 is the keepalive command, which does not reap orphaned "
            "zombies (they stay until the pod is removed)"
            if proc.init
            else "no init process, as the policy says",
        ),
        t(
            "process.background",
            "weaker" if proc.background == "forbid" else "same",
            "inspect-k8s-sandbox does not kill the processes a command leaves running, and "
            "their survivors are not listed in the transcript"
            if proc.background == "forbid"
            else "processes may keep running, as the policy allows (not listed in the transcript)",
        ),
        t(
            "process.namespaces.userns",
            "weaker",
            "the chart cannot ask for a user namespace (hostUsers: false); under gVisor the "
            "Sentry's own user namespace stands between the pod and the host",
        ),
        t(
            "process.apparmor",
            "emulated" if proc.apparmor else "same",
            f"not in the chart's values: profile {proc.apparmor!r} must be the node's default "
            "or set by an admission policy (gVisor does not use AppArmor inside the sandbox)"
            if proc.apparmor
            else "the container runtime's default profile, as Docker's",
        ),
        t(
            "evidence (not a policy field)",
            "weaker",
            "the conformance read-back, the cgroup evidence and the tripwires are tierlock's "
            "Docker provider's; on the cluster they are absent from the log",
        ),
    ]
    return out


def quantity(n: int) -> str:
    """A byte count as a Kubernetes quantity (`512Mi`, `1Gi`, or bytes)."""
    for unit, factor in (("Ti", 1024**4), ("Gi", 1024**3), ("Mi", 1024**2), ("Ki", 1024)):
        if n % factor == 0:
            return f"{n // factor}{unit}"
    return str(n)


def _output_cap(output_bytes: int) -> FieldTreatment:
    cap, mine = quantity(INSPECT_K8S_OUTPUT_CAP), quantity(output_bytes)
    if output_bytes >= INSPECT_K8S_OUTPUT_CAP:
        return FieldTreatment(
            "limits.output_bytes", "stronger", f"inspect-k8s-sandbox caps output at {cap} (< {mine})"
        )
    return FieldTreatment(
        "limits.output_bytes",
        "weaker",
        f"inspect-k8s-sandbox caps output at {cap}, not the policy's {mine}; the tools' own "
        "truncation still applies",
    )
