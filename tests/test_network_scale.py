"""Sample networks at any concurrency: the subnet allocator (`_subnets`) and, on the real daemon,
more sample networks at once than Docker's default address pools hold (≈30 on Engine 20.10)."""

from __future__ import annotations

import ipaddress
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import anyio
import pytest

from tierlock.sandbox._errors import SandboxError
from tierlock.sandbox._labels import OWNER_LABEL, owner
from tierlock.sandbox._network import SampleNetwork, create_sample_network
from tierlock.sandbox._policy import Policy
from tierlock.sandbox._subnets import (
    DEFAULT_POOL,
    LEGACY_POOL_ENV,
    POOL_ENV,
    configured_pool,
    docker_subnets,
    lease_for_docker,
    lease_subnet,
)

N = ipaddress.IPv4Network
RUN = f"netscale-{uuid.uuid4().hex[:8]}"
LABELS = {"tierlock.project": "tierlock", "tierlock.run": RUN, OWNER_LABEL: owner()}
CONCURRENT_NETWORKS = 40
"""More than Docker 20.10's default pools hold (15 /16s + 16 /20s, one already docker0's)."""


def test_lease_avoids_in_use_subnets_and_live_leases(tmp_path: Path) -> None:
    pool = N("10.213.77.0/26")  # four /28s
    in_use = [N("10.213.77.0/28"), N("10.213.77.32/27"), N("172.17.0.0/16")]
    first = lease_subnet(pool, in_use, lease_dir=tmp_path)
    assert first.subnet == N("10.213.77.16/28")  # the only /28 overlapping nothing
    with pytest.raises(SandboxError) as e:  # held by a live lease: never handed out twice
        lease_subnet(pool, in_use, lease_dir=tmp_path)
    msg = str(e.value)
    assert "\n" not in msg and "no free /28" in msg and POOL_ENV in msg, msg
    first.release()
    again = lease_subnet(pool, in_use, lease_dir=tmp_path)  # a released lease comes back
    assert again.subnet == first.subnet
    again.release()


def test_leases_are_distinct_until_the_pool_runs_out(tmp_path: Path) -> None:
    pool = N("10.213.78.0/24")  # sixteen /28s
    leases = [lease_subnet(pool, [], lease_dir=tmp_path) for _ in range(16)]
    subnets = [lease.subnet for lease in leases]
    assert len(set(subnets)) == 16 and all(s.subnet_of(pool) and s.prefixlen == 28 for s in subnets)
    with pytest.raises(SandboxError, match="no free /28 left in"):
        lease_subnet(pool, [], lease_dir=tmp_path)
    for lease in leases:
        lease.release()


def test_a_dead_processs_lease_is_reclaimed(tmp_path: Path) -> None:
    """Leases are host-wide: another process's live lease blocks the subnet; when it dies (no
    release call, as in a crash) the subnet is free again."""
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import ipaddress, pathlib, sys, time\n"
            "from tierlock.sandbox._subnets import lease_subnet\n"
            f"l = lease_subnet(ipaddress.ip_network('10.213.79.0/28'), [], "
            f"lease_dir=pathlib.Path({str(tmp_path)!r}))\n"
            "print(l.subnet, flush=True)\n"
            "time.sleep(60)\n",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == "10.213.79.0/28"
        with pytest.raises(SandboxError, match="no free /28"):
            lease_subnet(N("10.213.79.0/28"), [], lease_dir=tmp_path)
    finally:
        holder.kill()
        holder.wait()
    lease = lease_subnet(N("10.213.79.0/28"), [], lease_dir=tmp_path)
    assert lease.subnet == N("10.213.79.0/28")
    lease.release()


def test_pool_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(POOL_ENV, raising=False)
    monkeypatch.delenv(LEGACY_POOL_ENV, raising=False)
    assert configured_pool() == N(DEFAULT_POOL)
    monkeypatch.setenv(LEGACY_POOL_ENV, "10.99.0.0/20")
    assert configured_pool() == N("10.99.0.0/20")
    monkeypatch.setenv(POOL_ENV, "docker")
    assert configured_pool() is None
    for bad in ("10.0.0.0/30", "fd00::/64", "ten.0.0.0/8", "10.0.0.1/16"):
        monkeypatch.setenv(POOL_ENV, bad)
        with pytest.raises(SandboxError) as e:
            configured_pool()
        assert POOL_ENV in str(e.value) and "\n" not in str(e.value)


def _policy() -> Policy:
    return Policy.model_validate(
        {"name": "net-scale", "tier": "networked", "network": {"mode": "internal"}}
    )


@pytest.mark.docker
def test_a_leftover_networks_subnet_is_skipped_then_reclaimed(
    docker_client: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A crashed run leaves its network and no lease: Docker's answer keeps its subnet out of
    use until the network is removed, then it is handed out again."""
    import docker

    monkeypatch.setenv(POOL_ENV, "10.213.80.0/27")  # two /28s
    leftover = docker_client.networks.create(
        f"tierlock-leftover-{RUN}",
        driver="bridge",
        internal=True,
        labels=LABELS,
        ipam=docker.types.IPAMConfig(pool_configs=[docker.types.IPAMPool(subnet="10.213.80.0/28")]),
    )
    held = []
    try:
        assert N("10.213.80.0/28") in docker_subnets(docker_client)
        held.append(lease_for_docker(docker_client))
        assert held[0] is not None and held[0].subnet == N("10.213.80.16/28")
        with pytest.raises(SandboxError, match="no free /28"):
            lease_for_docker(docker_client)
    finally:
        leftover.remove()
    reclaimed = lease_for_docker(docker_client)
    assert reclaimed is not None and reclaimed.subnet == N("10.213.80.0/28")
    for lease in [*held, reclaimed]:
        if lease is not None:
            lease.release()


def _objects(client: Any) -> list[str]:
    return [n.name for n in client.networks.list(filters={"label": f"tierlock.run={RUN}"})]


@pytest.mark.docker
def test_more_sample_networks_at_once_than_dockers_default_pools_hold(
    docker_client: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(POOL_ENV, raising=False)
    monkeypatch.delenv(LEGACY_POOL_ENV, raising=False)
    policy = _policy()
    samples: list[SampleNetwork] = []
    errors: list[BaseException] = []

    async def one() -> None:
        try:
            samples.append(await create_sample_network(docker_client, policy, {}, LABELS))
        except Exception as e:  # collected: every failure is reported, not just the first
            errors.append(e)

    async def all_at_once() -> None:
        async with anyio.create_task_group() as tg:
            for _ in range(CONCURRENT_NETWORKS):
                tg.start_soon(one)

    async def teardown() -> None:
        async with anyio.create_task_group() as tg:
            for sample in samples:
                tg.start_soon(sample.teardown)

    try:
        anyio.run(all_at_once)
        assert not errors, [str(e) for e in errors]
        assert len(samples) == CONCURRENT_NETWORKS
        subnets = []
        for sample in samples:
            cfg = docker_client.api.inspect_network(sample.network)["IPAM"]["Config"]
            subnets += [N(c["Subnet"]) for c in cfg]
        assert len(subnets) == CONCURRENT_NETWORKS
        assert all(s.subnet_of(N(DEFAULT_POOL)) and s.prefixlen == 28 for s in subnets)
        assert not any(a.overlaps(b) for i, a in enumerate(subnets) for b in subnets[i + 1 :])
        assert len(_objects(docker_client)) == CONCURRENT_NETWORKS
    finally:
        anyio.run(teardown)
    assert _objects(docker_client) == []
    assert not any(s._state and s._state.subnet_leases for s in samples)  # leases released
