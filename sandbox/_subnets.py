"""Host-wide allocation of the small subnets sample networks live in.

Docker's default address pools (Engine 20.10: 172.17–31.0.0/16 and 192.168.0.0/20 in /20s) hold
about 30 bridge networks, so more networked samples than that at once fail with "could not find
an available, non-overlapping IPv4 address pool". Each sample network therefore takes an explicit
/28 (16 addresses: the sandbox, its sidecars and the proxy) of `$TIERLOCK_SUBNET_POOL` (default
10.213.0.0/16, 4096 networks; `docker` leaves allocation to Docker's pools).

A subnet is free when (1) no live lease holds it: a lease is a `flock` on one file per subnet in
a host-wide directory (the `_uids` scheme), so two processes never hand out the same subnet and a
crashed process's leases end with it; (2) Docker reports no network using it (asked on every
allocation, so a crashed run's network keeps its subnet until the network itself is removed, and
then the subnet comes back); (3) no host route other than the default overlaps it.
"""

from __future__ import annotations

import contextlib
import fcntl
import ipaddress
import os
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from ._errors import SandboxError
from ._hostlock import runtime_dir

if TYPE_CHECKING:
    import docker

POOL_ENV = "TIERLOCK_SUBNET_POOL"
LEGACY_POOL_ENV = "TIERLOCK_SAMPLE_SUBNETS"
"""The earlier name of `$TIERLOCK_SUBNET_POOL`, still read when the new one is unset."""
DEFAULT_POOL = "10.213.0.0/16"
DOCKER_POOLS = "docker"
"""`$TIERLOCK_SUBNET_POOL=docker`: no explicit subnet, Docker's own pools (≈30 networks)."""
PREFIX = 28

IPv4Net = ipaddress.IPv4Network


@dataclass
class SubnetLease:
    """One subnet of the pool, held until `release()` (or the process ends)."""

    subnet: IPv4Net
    _fd: int | None = field(default=None, repr=False)

    def release(self) -> None:
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.close(self._fd)
            self._fd = None


def pool_setting() -> tuple[str, str]:
    """(variable name, value) of the configured pool: the new name, else the old, else default."""
    for name in (POOL_ENV, LEGACY_POOL_ENV):
        raw = os.environ.get(name, "").strip()
        if raw:
            return name, raw
    return POOL_ENV, DEFAULT_POOL


def configured_pool() -> IPv4Net | None:
    """The pool to allocate from; None when Docker's own pools are asked for."""
    name, raw = pool_setting()
    if raw.lower() == DOCKER_POOLS:
        return None
    try:
        net = ipaddress.ip_network(raw)
    except ValueError:
        raise SandboxError(
            f"${name}={raw!r} is not a network (e.g. {DEFAULT_POOL}, or {DOCKER_POOLS!r})"
        ) from None
    if not isinstance(net, IPv4Net) or net.prefixlen > PREFIX:
        raise SandboxError(f"${name} must be an IPv4 network of /{PREFIX} or larger, not {raw}")
    return net


def docker_subnets(client: docker.DockerClient) -> list[IPv4Net]:
    """Every IPv4 subnet a network Docker knows about uses (any driver, any owner)."""
    out: list[IPv4Net] = []
    for attrs in client.api.networks():
        for cfg in (attrs.get("IPAM") or {}).get("Config") or []:
            with contextlib.suppress(ValueError, TypeError):
                net = ipaddress.ip_network(cfg.get("Subnet") or "", strict=False)
                if isinstance(net, IPv4Net):
                    out.append(net)
    return out


def host_routes(path: str = "/proc/net/route") -> list[IPv4Net]:
    """The host's IPv4 routes except the default one (their destinations must not be shadowed)."""
    out: list[IPv4Net] = []
    try:
        lines = Path(path).read_text().splitlines()[1:]
    except OSError:
        return out
    for line in lines:
        cols = line.split()
        if len(cols) < 8:
            continue
        try:
            dest = ipaddress.IPv4Address(int(cols[1], 16).to_bytes(4, "little"))
            prefix = bin(int(cols[7], 16)).count("1")
            net = IPv4Net((dest, prefix), strict=False)
        except ValueError:
            continue
        if net.prefixlen:
            out.append(net)
    return out


def _lease_dir() -> Path:
    d = runtime_dir("subnets")
    if d is None:
        raise SandboxError("no writable directory for subnet leases (/run, $XDG_RUNTIME_DIR, /tmp)")
    return d


def _try_lease(d: Path, subnet: IPv4Net) -> SubnetLease | None:
    path = d / f"{subnet.network_address}-{subnet.prefixlen}.lock"
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    return SubnetLease(subnet, fd)


def lease_subnet(
    pool: IPv4Net,
    in_use: list[IPv4Net],
    *,
    skip: set[IPv4Net] | None = None,
    lease_dir: Path | None = None,
) -> SubnetLease:
    """A free /28 of `pool`: not leased by a live process, not overlapping `in_use` (Docker's
    networks, the host's routes) nor `skip`. Starts at a random place so concurrent callers
    rarely contend for the same file. Raises one line when every /28 is taken."""
    d = lease_dir or _lease_dir()
    taken = [n for n in in_use if n.overlaps(pool)]
    count = 2 ** (PREFIX - pool.prefixlen)
    base = int(pool.network_address)
    start = random.randrange(count)
    for i in range(count):
        sub = IPv4Net((base + ((start + i) % count) * 2 ** (32 - PREFIX), PREFIX))
        if (skip and sub in skip) or any(sub.overlaps(n) for n in taken):
            continue
        lease = _try_lease(d, sub)
        if lease is not None:
            return lease
    name, raw = pool_setting()
    raise SandboxError(
        f"no free /{PREFIX} left in ${name}={raw} (all {count} in use by networks or live "
        f"samples); set ${name} to a larger private range or run fewer networked samples at once"
    )


def lease_for_docker(
    client: docker.DockerClient, skip: set[IPv4Net] | None = None
) -> SubnetLease | None:
    """A lease from the configured pool, checked against Docker's networks and the host's
    routes; None when `$TIERLOCK_SUBNET_POOL=docker`."""
    pool = configured_pool()
    if pool is None:
        return None
    return lease_subnet(pool, docker_subnets(client) + host_routes(), skip=skip)
