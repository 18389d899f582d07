"""The sample's own Docker bridge: created `internal` (no route out) and without a host address
(`inhibit_ipv4`), optionally in a /28 of `$TIERLOCK_SAMPLE_SUBNETS`, read back and recorded as a
`ConformanceRecord`; and its removal."""

from __future__ import annotations

import contextlib
import ipaddress
import os
import random
from typing import TYPE_CHECKING

import structlog

from ._docker import run_sync
from ._errors import SandboxError
from ._evidence import ConformanceRecord
from ._labels import ROLE_LABEL

if TYPE_CHECKING:
    import docker

    from ._network_state import NetworkState

log = structlog.get_logger("tierlock.sandbox._network")

SUBNETS_ENV = "TIERLOCK_SAMPLE_SUBNETS"
"""Optional IPv4 range (e.g. 10.213.0.0/16) sample networks take /28 subnets from."""


async def create_internal_network(
    client: docker.DockerClient, name: str, suffix: str, labels: dict[str, str], state: NetworkState
) -> None:
    import docker.errors
    import docker.types

    pool = os.environ.get(SUBNETS_ENV, "").strip()

    def create(ipam: docker.types.IPAMConfig | None) -> None:
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
        """A random free /28 of `$TIERLOCK_SAMPLE_SUBNETS` (Docker's own pools hold ~30
        networks on Engine 20.10, too few for many parallel samples)."""
        try:
            net = ipaddress.ip_network(pool)
        except ValueError:
            raise SandboxError(
                f"${SUBNETS_ENV}={pool!r} is not a network (e.g. 10.213.0.0/16)"
            ) from None
        if net.version != 4 or net.prefixlen > 28:
            raise SandboxError(f"${SUBNETS_ENV} must be an IPv4 network of /28 or larger")
        count = 2 ** (28 - net.prefixlen)
        for _ in range(min(count, 32)):
            sub = ipaddress.ip_network(
                (int(net.network_address) + 16 * random.randrange(count), 28)
            )
            ipam = docker.types.IPAMConfig(pool_configs=[docker.types.IPAMPool(subnet=str(sub))])
            try:
                create(ipam)
                return
            except docker.errors.APIError as e:
                if "overlap" not in str(e).lower():
                    raise
        raise SandboxError(f"no free /28 left in ${SUBNETS_ENV}={pool}")

    state.networks.append(name)  # recorded first: a failed create is still cleaned up by name
    if pool:
        await run_sync(create_in_pool)
    else:
        await run_sync(create, None)
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
