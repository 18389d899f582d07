"""The sample's own Docker bridge: created `internal` (no route out) and without a host address
(`inhibit_ipv4`), in a /28 leased from `$TIERLOCK_SUBNET_POOL` (`_subnets`, so any number of
samples can have a network at once), read back and recorded as a `ConformanceRecord`; and its
removal."""

from __future__ import annotations

import contextlib
import ipaddress
from typing import TYPE_CHECKING

import structlog

from ._docker import run_sync
from ._errors import SandboxError
from ._evidence import ConformanceRecord
from ._labels import ROLE_LABEL
from ._subnets import lease_for_docker, pool_setting

if TYPE_CHECKING:
    from ipaddress import IPv4Network

    import docker

    from ._network_state import NetworkState

log = structlog.get_logger("tierlock.sandbox._network")

OVERLAP_RETRIES = 8
"""Fresh subnets tried when Docker reports an overlap our look-up did not see (a network created
meanwhile by something that takes no lease, e.g. another user's tierlock or plain docker)."""


async def create_internal_network(
    client: docker.DockerClient, name: str, suffix: str, labels: dict[str, str], state: NetworkState
) -> None:
    """Create the network in a /28 leased from `$TIERLOCK_SUBNET_POOL` (`_subnets`; the lease is
    kept in `state.subnet_leases` until teardown), read it back and record the conformance."""
    import docker.errors
    import docker.types

    def create(subnet: str | None) -> None:
        ipam = None
        if subnet is not None:
            # the gateway named as Docker picks it itself: never on the bridge (inhibit_ipv4),
            # but shown by inspect like a default-pool network's
            gateway = str(ipaddress.ip_network(subnet)[1])
            pool = docker.types.IPAMPool(subnet=subnet, gateway=gateway)
            ipam = docker.types.IPAMConfig(pool_configs=[pool])
        client.networks.create(
            name,
            driver="bridge",
            internal=True,
            check_duplicate=True,
            ipam=ipam,
            labels={**labels, ROLE_LABEL: "network"},
            options={
                "com.docker.network.bridge.name": f"tl-{suffix[:10]}",
                "com.docker.network.bridge.inhibit_ipv4": "true",
                "com.docker.network.bridge.enable_ip_masquerade": "false",
                "com.docker.network.bridge.enable_icc": "true",
            },
        )

    def create_in_pool() -> None:
        skip: set[IPv4Network] = set()
        for _ in range(OVERLAP_RETRIES):
            lease = lease_for_docker(client, skip)
            if lease is None:  # $TIERLOCK_SUBNET_POOL=docker
                create(None)
                return
            state.subnet_leases.append(lease)  # released by teardown, after the removal
            try:
                create(str(lease.subnet))
                return
            except docker.errors.APIError as e:
                if "overlap" not in str(e).lower():
                    raise
                skip.add(lease.subnet)
                state.subnet_leases.remove(lease)
                lease.release()
        raise SandboxError(
            f"sample network {name}: Docker reported {OVERLAP_RETRIES} leased subnets as "
            "overlapping an existing network; is another tool creating networks in "
            f"${pool_setting()[0]}?"
        )

    state.networks.append(name)  # recorded first: a failed create is still cleaned up by name
    await run_sync(create_in_pool)
    attrs = await run_sync(client.api.inspect_network, name)
    opts = attrs.get("Options") or {}
    bad = []
    if not attrs.get("Internal"):
        bad.append("network is not internal (it has a route out)")
    if opts.get("com.docker.network.bridge.inhibit_ipv4") != "true":
        bad.append("bridge has a host address (inhibit_ipv4 not applied): the host is reachable")
    if attrs.get("EnableIPv6"):
        bad.append("IPv6 is enabled on the network")
    policy = state.policy
    state.conformance.append(
        ConformanceRecord(
            container=name,
            role="network",
            policy_name=policy.name,
            policy_hash=policy.digest(),
            ok=not bad,
            mismatches=bad,
        )
    )
    if bad:
        raise SandboxError(f"sample network {name} does not conform: {'; '.join(bad)}")


async def remove_network(client: docker.DockerClient, name: str) -> None:
    import docker.errors

    def remove() -> None:
        try:
            attrs = client.api.inspect_network(name)
        except docker.errors.NotFound:
            return
        for cid in attrs.get("Containers") or {}:  # e.g. a sandbox its provider left behind
            with contextlib.suppress(docker.errors.APIError):
                client.api.disconnect_container_from_network(cid, name, force=True)
        with contextlib.suppress(docker.errors.NotFound):
            client.api.remove_network(attrs["Id"])

    try:
        await run_sync(remove)
    except Exception as e:
        log.warning("network removal failed", network=name, error=str(e))
