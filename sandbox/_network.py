"""Per-sample networks for the `internal` and `allowlist` modes: service sidecars, egress proxy.

Each sample gets its own Docker bridge network created `internal` (no route out) and with
`com.docker.network.bridge.inhibit_ipv4`: on Docker 20.10 an internal bridge still carries the
gateway address on the host side, so without it a sandbox reaches every host service listening
on that address (the FORWARD-chain isolation rules never see traffic addressed to the host).
With no address on the bridge there is nothing of the host to reach. Task sidecars join the
network under their service name; in `allowlist` mode a squid sidecar joins it too, plus an
egress network, and is the sandbox's only way out.

Sidecars are built by the sandbox's own translation (`_translate.container_settings`) of the
policy (`_sidecars`), on a floor no policy lowers (`_sidecar_policy.hardened_policy`), and read
back like the sandbox (`_sidecar_conform`: `_conformance.check_config` and the kernel's view of
PID 1). Their `ContainerEvidence` and the proxy's (bounded) request log go into the transcript
with the sandbox's. This module puts the pieces together: `create_sample_network` and the
`SampleNetwork` handle (evidence, teardown); the bridge itself is `_sample_bridge`, the egress
proxy `_egress_proxy`, the words for `policy show` `_network_describe`.
"""

from __future__ import annotations

import os
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import anyio
import structlog

from ._docker import run_sync
from ._egress_proxy import (
    DEFAULT_EGRESS_NETWORK,
    EGRESS_NETWORK_ENV,
    PRIVATE_UPSTREAMS_ENV,
    create_proxy,
    proxy_env,
)
from ._errors import SandboxError
from ._evidence import ContainerEvidence, EvidenceRecord
from ._labels import PROJECT, PROJECT_LABEL
from ._network_state import NetworkState
from ._proxy import PROXY_PORT
from ._proxylog import read_proxy_log
from ._sample_bridge import create_internal_network, remove_network
from ._sidecar_conform import check_sidecar
from ._sidecars import check_services, create_service, remove_sidecar, wait_listening

if TYPE_CHECKING:
    from pathlib import Path

    import docker
    from docker.models.containers import Container

    from ._config import ServiceSpec
    from ._policy import Policy

log = structlog.get_logger(__name__)

READY_TIMEOUT = 30.0

_PROJECT_LABEL = {PROJECT_LABEL: PROJECT}


@dataclass
class SampleNetwork:
    """The network a sample's sandbox joins, and the sidecars that live on it."""

    network: str
    """Docker network name the sandbox container joins."""
    env: dict[str, str] = field(default_factory=dict)
    """Extra environment for the sandbox (proxy variables in `allowlist` mode)."""
    _state: NetworkState | None = field(default=None, repr=False)

    @property
    def containers(self) -> list[str]:
        """Ids of the sidecars (services and proxy) created for this sample."""
        return [cid for cid, _ in self._state.containers] if self._state else []

    async def evidence(self) -> list[EvidenceRecord]:
        """Sidecar conformance records, each sidecar's `ContainerEvidence` (OOM, exit state,
        changes outside its writable paths) and (allowlist) the proxy's request log.

        Call before `teardown` (each call reads the containers afresh); after it, what was
        captured during teardown is returned.
        """
        st = self._state
        if st is None:
            return []
        if not st.torn_down:
            await _capture(st)
        records: list[EvidenceRecord] = list(st.conformance)
        records += st.container_evidence or []
        if st.proxy_log is not None:
            records.append(st.proxy_log)
        return records

    async def teardown(self) -> None:
        """Remove sidecars and networks; idempotent, and safe after a partial setup.

        Evidence not read by an `evidence()` call before is captured first."""
        st = self._state
        if st is None or st.torn_down:
            return
        with anyio.CancelScope(shield=True):
            if st.container_evidence is None:
                await _capture(st)
            st.torn_down = True
            async with anyio.create_task_group() as tg:
                for cid, _ in st.containers:
                    tg.start_soon(remove_sidecar, st.client, cid)
            for net in reversed(st.networks):
                await remove_network(st.client, net)
            for lease in st.subnet_leases:  # a network left behind keeps its subnet in Docker
                lease.release()
            st.subnet_leases.clear()


async def _capture(st: NetworkState) -> None:
    """Read the sidecars' evidence and the proxy log (best effort: a failure is logged)."""
    from ._collect import collect_evidence

    evidence: list[ContainerEvidence] = []
    for cid, role in st.containers:
        if cid not in st.sidecars:  # never created
            continue
        try:
            evidence.append(
                await run_sync(
                    collect_evidence,
                    st.client,
                    cid,
                    role=role,
                    policy_hash=st.policy.digest(),
                    writable=st.sidecars[cid].writable,
                )
            )
        except Exception as e:  # e.g. removed behind our back
            log.warning("sidecar evidence unreadable", container=cid, error=str(e))
    st.container_evidence = evidence
    if st.proxy is not None:
        try:
            st.proxy_log = await read_proxy_log(st.client, st.proxy, st.log_mark)
        except Exception as e:  # the log is best effort once the sample is over
            log.warning("proxy log unreadable", proxy=st.proxy, error=str(e))


async def create_sample_network(
    client: docker.DockerClient,
    policy: Policy,
    services: dict[str, ServiceSpec],
    labels: dict[str, str],
    *,
    egress_network: str | None = None,
    private_upstreams: bool | None = None,
    ready_timeout: float = READY_TIMEOUT,
    policy_dir: Path | None = None,
) -> SampleNetwork:
    """Create the sample's internal network, its sidecars and (allowlist) the egress proxy.

    Returns once every sidecar with a `port` (and the proxy) is listening and each passed its
    conformance check. On any failure everything created so far is removed before raising.
    `egress_network` (allowlist only) defaults to `$TIERLOCK_EGRESS_NETWORK`, else
    `tierlock-egress`, created on first use. The proxy refuses private destinations unless
    `private_upstreams` (default: `$TIERLOCK_PROXY_PRIVATE_UPSTREAMS` is 1). `policy_dir` is
    where a relative `process.seccomp` profile path resolves (as for the sandbox).
    """
    mode = policy.network.mode
    if mode not in ("internal", "allowlist"):
        raise SandboxError(f"network.mode {mode!r} does not use a sample network")
    check_services(policy, services)
    labels = {**labels, **_PROJECT_LABEL}
    suffix = uuid.uuid4().hex[:12]
    state = NetworkState(client=client, policy=policy, policy_dir=policy_dir)
    sample = SampleNetwork(network=f"tierlock-net-{suffix}", _state=state)
    try:
        await create_internal_network(client, sample.network, suffix, labels, state)
        pending: list[tuple[Container, int | None]] = []
        for name, spec in services.items():
            container = await create_service(
                client, policy, sample.network, name, spec, labels, suffix, state
            )
            pending.append((container, spec.port))
        if mode == "allowlist":
            egress = egress_network or os.environ.get(EGRESS_NETWORK_ENV) or DEFAULT_EGRESS_NETWORK
            if private_upstreams is None:
                private_upstreams = os.environ.get(PRIVATE_UPSTREAMS_ENV, "") == "1"
            proxy = await create_proxy(
                client, policy, sample.network, egress, labels, suffix, state, private_upstreams
            )
            pending.append((proxy, PROXY_PORT))
            sample.env = proxy_env(list(services))
        for container, _ in pending:
            await run_sync(container.start)
        failures: list[SandboxError] = []

        async def wait(container: Container, port: int) -> None:
            try:
                await wait_listening(container, port, ready_timeout)
            except SandboxError as e:
                failures.append(e)

        async with anyio.create_task_group() as tg:
            for container, port in pending:
                if port is not None:
                    tg.start_soon(wait, container, port)
        if failures:
            raise failures[0]
        for container, _ in pending:
            await check_sidecar(client, container.id, state, sample.network, mode)
    except BaseException as e:
        await sample.teardown()
        import docker.errors

        if isinstance(e, docker.errors.DockerException):  # one line, not a traceback
            detail = getattr(e, "explanation", None) or str(e)
            raise SandboxError(f"could not set up the sample network: {detail}") from None
        raise
    return sample
