"""What a sample network has created so far (networks, sidecars, the proxy) and the evidence read
from it: the state its setup, teardown and evidence share."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ._evidence import ConformanceRecord, ContainerEvidence, ProxyLog
from ._subnets import SubnetLease

if TYPE_CHECKING:
    from pathlib import Path

    import docker

    from ._policy import Policy


@dataclass(frozen=True)
class Sidecar:
    """What a created sidecar must be: read back by the conformance check."""

    want: Policy
    """The policy it applies (`service_policy`, `proxy_policy`)."""
    env: dict[str, str]
    hostname: str
    writable: list[str]


@dataclass
class NetworkState:
    client: docker.DockerClient
    policy: Policy
    networks: list[str] = field(default_factory=list)
    subnet_leases: list[SubnetLease] = field(default_factory=list)
    """Held while the networks exist; released after their removal (`_subnets`)."""
    containers: list[tuple[str, str]] = field(default_factory=list)  # (id, role)
    proxy: str | None = None
    log_mark: str = ""
    policy_dir: Path | None = None
    conformance: list[ConformanceRecord] = field(default_factory=list)
    sidecars: dict[str, Sidecar] = field(default_factory=dict)  # by container id
    container_evidence: list[ContainerEvidence] | None = None
    proxy_log: ProxyLog | None = None
    torn_down: bool = False
