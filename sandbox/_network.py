"""Per-sample networks for the `internal` and `allowlist` modes: service sidecars, egress proxy.

Each sample gets its own Docker bridge network created `internal` (no route out) and with
`com.docker.network.bridge.inhibit_ipv4`: on Docker 20.10 an internal bridge still carries the
gateway address on the host side, so without it a sandbox reaches every host service listening
on that address (the FORWARD-chain isolation rules never see traffic addressed to the host).
With no address on the bridge there is nothing of the host to reach. Task sidecars join the
network under their service name; in `allowlist` mode a squid sidecar joins it too, plus an
egress network, and is the sandbox's only way out.
"""

from __future__ import annotations

import base64
import contextlib
import ipaddress
import os
import random
import threading
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import anyio
import structlog

from ._docker import run_sync
from ._errors import SandboxError
from ._evidence import ConformanceRecord, EvidenceRecord, ProxyLog
from ._labels import PROJECT, PROJECT_LABEL, ROLE_LABEL
from ._proxy import (
    PROXY_PORT,
    PROXY_RECIPE,
    PROXY_START,
    describe_allow,
    parse_access_log,
    squid_config,
)

if TYPE_CHECKING:
    import docker
    from docker.models.containers import Container

    from ._config import ServiceSpec
    from ._policy import Policy

log = structlog.get_logger(__name__)

EGRESS_NETWORK_ENV = "TIERLOCK_EGRESS_NETWORK"
"""Environment variable naming the network the proxy uses to reach the outside."""
DEFAULT_EGRESS_NETWORK = "tierlock-egress"
"""Created on first use: an ordinary bridge with inter-container traffic disabled."""
PROXY_ALIAS = "tierlock-proxy"
"""Host name of the egress proxy on a sample network."""
PROXY_USER = "13:13"  # Debian's `proxy` user
PROXY_MEMORY = 256 * 1024**2
PROXY_PIDS = 64
READY_TIMEOUT = 30.0
MAX_FILE_BYTES = 96 * 1024
"""Service files travel in the environment (the root is read-only before start)."""

PRIVATE_UPSTREAMS_ENV = "TIERLOCK_PROXY_PRIVATE_UPSTREAMS"
"""Set to 1 to let the proxy connect to private addresses (e.g. a lab-internal mirror)."""
SUBNETS_ENV = "TIERLOCK_SAMPLE_SUBNETS"
"""Optional IPv4 range (e.g. 10.213.0.0/16) sample networks take /28 subnets from."""
HARDEN_LABEL = "tierlock.harden"

_SYSTEM_DIRS = frozenset(
    {
        "/",
        "/bin",
        "/boot",
        "/dev",
        "/etc",
        "/home",
        "/lib",
        "/lib64",
        "/opt",
        "/proc",
        "/root",
        "/run",
        "/sbin",
        "/srv",
        "/sys",
        "/usr",
        "/var",
    }
)
"""Directories a hardened sidecar's files may not replace with a tmpfs."""
_PROJECT_LABEL = {PROJECT_LABEL: PROJECT}
_ROLE_LABEL = ROLE_LABEL

# Writes the service's files (base64 in the environment), then runs its command.
_FILES_SCRIPT = """set -e
n=0
while [ "$n" -lt "${TIERLOCK_NFILES:-0}" ]; do
  eval "p=\\$TIERLOCK_FILE_PATH_$n; d=\\$TIERLOCK_FILE_DATA_$n"
  mkdir -p "$(dirname "$p")"
  printf %s "$d" | base64 -d > "$p"
  unset "TIERLOCK_FILE_PATH_$n" "TIERLOCK_FILE_DATA_$n"
  n=$((n+1))
done
unset TIERLOCK_NFILES
exec "$@"
"""


@dataclass
class _State:
    client: docker.DockerClient
    policy: Policy
    networks: list[str] = field(default_factory=list)
    containers: list[tuple[str, str]] = field(default_factory=list)  # (id, role)
    proxy: str | None = None
    conformance: list[ConformanceRecord] = field(default_factory=list)
    proxy_log: ProxyLog | None = None
    torn_down: bool = False


@dataclass
class SampleNetwork:
    """The network a sample's sandbox joins, and the sidecars that live on it."""

    network: str
    """Docker network name the sandbox container joins."""
    env: dict[str, str] = field(default_factory=dict)
    """Extra environment for the sandbox (proxy variables in `allowlist` mode)."""
    _state: _State | None = field(default=None, repr=False)

    @property
    def containers(self) -> list[str]:
        """Ids of the sidecars (services and proxy) created for this sample."""
        return [cid for cid, _ in self._state.containers] if self._state else []

    async def evidence(self) -> list[EvidenceRecord]:
        """Sidecar conformance records and (allowlist) the proxy's request log.

        Call before `teardown`; after it, the log captured during teardown is returned.
        """
        st = self._state
        if st is None:
            return []
        records: list[EvidenceRecord] = list(st.conformance)
        if st.proxy is not None:
            if not st.torn_down:
                try:
                    st.proxy_log = await _read_proxy_log(st.client, st.proxy)
                except Exception as e:  # e.g. the proxy was removed behind our back
                    log.warning("proxy log unreadable", proxy=st.proxy, error=str(e))
            if st.proxy_log is not None:
                records.append(st.proxy_log)
        return records

    async def teardown(self) -> None:
        """Remove sidecars and networks; idempotent, and safe after a partial setup."""
        st = self._state
        if st is None or st.torn_down:
            return
        with anyio.CancelScope(shield=True):
            if st.proxy is not None and st.proxy_log is None:
                try:
                    st.proxy_log = await _read_proxy_log(st.client, st.proxy)
                except Exception as e:  # the log is best effort once the sample is over
                    log.warning("proxy log unreadable", proxy=st.proxy, error=str(e))
            st.torn_down = True
            async with anyio.create_task_group() as tg:
                for cid, _ in st.containers:
                    tg.start_soon(_remove_container, st.client, cid)
            for net in reversed(st.networks):
                await _remove_network(st.client, net)


async def create_sample_network(
    client: docker.DockerClient,
    policy: Policy,
    services: dict[str, ServiceSpec],
    labels: dict[str, str],
    *,
    egress_network: str | None = None,
    private_upstreams: bool | None = None,
    ready_timeout: float = READY_TIMEOUT,
) -> SampleNetwork:
    """Create the sample's internal network, its sidecars and (allowlist) the egress proxy.

    Returns once every sidecar with a `port` (and the proxy) is listening and each passed its
    conformance check. On any failure everything created so far is removed before raising.
    `egress_network` (allowlist only) defaults to `$TIERLOCK_EGRESS_NETWORK`, else
    `tierlock-egress`, created on first use. The proxy refuses private destinations unless
    `private_upstreams` (default: `$TIERLOCK_PROXY_PRIVATE_UPSTREAMS` is 1).
    """
    mode = policy.network.mode
    if mode not in ("internal", "allowlist"):
        raise SandboxError(f"network.mode {mode!r} does not use a sample network")
    _check_services(policy, services)
    labels = {**labels, **_PROJECT_LABEL}
    suffix = uuid.uuid4().hex[:12]
    state = _State(client=client, policy=policy)
    sample = SampleNetwork(network=f"tierlock-net-{suffix}", _state=state)
    try:
        await _create_internal_network(client, sample.network, suffix, labels, state)
        pending: list[tuple[Container, int | None]] = []
        for name, spec in services.items():
            container = await _create_service(
                client, policy, sample.network, name, spec, labels, suffix, state
            )
            pending.append((container, spec.port))
        if mode == "allowlist":
            egress = egress_network or os.environ.get(EGRESS_NETWORK_ENV) or DEFAULT_EGRESS_NETWORK
            if private_upstreams is None:
                private_upstreams = os.environ.get(PRIVATE_UPSTREAMS_ENV, "") == "1"
            proxy = await _create_proxy(
                client, policy, sample.network, egress, labels, suffix, state, private_upstreams
            )
            pending.append((proxy, PROXY_PORT))
            sample.env = proxy_env(list(services))
        for container, _ in pending:
            await run_sync(container.start)
        failures: list[SandboxError] = []

        async def wait(container: Container, port: int) -> None:
            try:
                await _wait_listening(container, port, ready_timeout)
            except SandboxError as e:
                failures.append(e)

        async with anyio.create_task_group() as tg:
            for container, port in pending:
                if port is not None:
                    tg.start_soon(wait, container, port)
        if failures:
            raise failures[0]
        for container, _ in pending:
            await _check_conformance(client, container.id, state, sample.network, mode)
    except BaseException as e:
        await sample.teardown()
        import docker.errors

        if isinstance(e, docker.errors.DockerException):  # one line, not a traceback
            detail = getattr(e, "explanation", None) or str(e)
            raise SandboxError(f"could not set up the sample network: {detail}") from None
        raise
    return sample


def proxy_env(services: list[str]) -> dict[str, str]:
    """The sandbox's proxy variables: everything through the proxy except the services."""
    url = f"http://{PROXY_ALIAS}:{PROXY_PORT}"
    no_proxy = ",".join(["localhost", "127.0.0.1", "::1", *services])
    return {
        "HTTP_PROXY": url,
        "HTTPS_PROXY": url,
        "http_proxy": url,
        "https_proxy": url,
        "NO_PROXY": no_proxy,
        "no_proxy": no_proxy,
    }


def describe_network(policy: Policy, services: list[str] | None = None) -> list[str]:
    """What networking a policy produces, one line each (for `tierlock policy show`)."""
    net = policy.network
    names = services if services is not None else net.services
    svc = ", ".join(names) if names else "none"
    if policy.process.namespaces.network == "host":
        return ["network: host (the host's network namespace: every host interface and service)"]
    if net.mode == "none":
        return ["network: none (loopback only; no interface but lo)"]
    if net.mode == "open":
        return [
            "network: open (Docker's default bridge: unrestricted outbound access, "
            "no proxy, nothing logged)"
        ]
    lines = [
        "network: per-sample internal bridge tierlock-net-<id> (internal: no route out; "
        "no host address on the bridge, so neither the host nor the gateway is reachable)",
        f"sidecars: {svc} (reachable by name; same hardening as the sandbox unless the "
        "task sets harden: false)",
    ]
    if net.mode == "internal":
        lines.append("egress: none (no proxy; DNS resolves only the sidecars)")
        return lines
    lines += [
        f"proxy: squid sidecar `{PROXY_ALIAS}:{PROXY_PORT}` on the sample network and the egress "
        f"network (${EGRESS_NETWORK_ENV}, default {DEFAULT_EGRESS_NETWORK}); the sandbox gets "
        "HTTP(S)_PROXY, NO_PROXY = the sidecars",
        *(f"proxy rule: {line}" for line in describe_allow(net.allow)),
        "proxy rule: HTTPS only as a CONNECT tunnel whose TLS server name (SNI) is allowed; the "
        "tunnel is passed through, never decrypted; other tunnels (other SNI, not TLS) are cut",
        "proxy rule: deny everything else (other names, ports, IP addresses; loopback, "
        "link-local, metadata and private addresses, the egress gateway); refused names are "
        "never resolved",
        "proxy log: every request (allowed or refused) goes into the sample's transcript",
    ]
    if not net.allow:
        lines.insert(3, "proxy rule: (allow list is empty: every request is refused)")
    return lines


def _check_services(policy: Policy, services: dict[str, ServiceSpec]) -> None:
    allowed = set(policy.network.services)
    for name in services:
        if name not in allowed:
            raise SandboxError(
                f"service {name!r} is not listed in the policy's network.services "
                f"({', '.join(sorted(allowed)) or 'none'})"
            )
        if name == PROXY_ALIAS:
            raise SandboxError(f"service name {name!r} is reserved for the egress proxy")
        for path, content in services[name].files.items():
            if not path.startswith("/") or len(content.encode()) > MAX_FILE_BYTES:
                raise SandboxError(
                    f"service {name!r}: file {path!r} must be an absolute path of at most "
                    f"{MAX_FILE_BYTES // 1024} KiB"
                )
            parent = path.rsplit("/", 1)[0] or "/"
            if services[name].harden and parent in _SYSTEM_DIRS:
                raise SandboxError(
                    f"service {name!r}: file {path!r} would need a writable {parent} over the "
                    "read-only root; put service files under /tmp, /srv/<name> or /opt/<name>"
                )


async def _create_internal_network(
    client: docker.DockerClient, name: str, suffix: str, labels: dict[str, str], state: _State
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
            labels={**labels, _ROLE_LABEL: "network"},
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


def _hardening(policy: Policy, user: str) -> dict[str, Any]:
    """The sandbox's hardening for a sidecar: read-only root, no capabilities, no privilege
    gain, non-root, and the policy's runtime (e.g. gVisor)."""
    out: dict[str, Any] = {
        "read_only": True,
        "cap_drop": ["ALL"],
        "security_opt": ["no-new-privileges:true"],
        "user": user,
    }
    if policy.process.runtime != "runc":
        out["runtime"] = policy.process.runtime
    return out


def _limits(policy: Policy) -> dict[str, Any]:
    lim = policy.limits
    out: dict[str, Any] = {}
    if lim.memory is not None:
        out["mem_limit"] = int(lim.memory)
        out["memswap_limit"] = int(lim.memory)
    if lim.pids is not None:
        out["pids_limit"] = lim.pids
    if lim.cpus is not None:
        out["nano_cpus"] = int(lim.cpus * 1e9)
    return out


async def _create_service(
    client: docker.DockerClient,
    policy: Policy,
    network: str,
    name: str,
    spec: ServiceSpec,
    labels: dict[str, str],
    suffix: str,
    state: _State,
) -> Container:
    image = await _resolve_image(client, spec.image)
    env = dict(spec.env)
    tmpfs = {"/tmp": "size=16m,mode=1777"}
    for i, (path, content) in enumerate(spec.files.items()):
        env[f"TIERLOCK_FILE_PATH_{i}"] = path
        env[f"TIERLOCK_FILE_DATA_{i}"] = base64.b64encode(content.encode()).decode()
        parent = path.rsplit("/", 1)[0] or "/"
        if spec.harden and parent not in tmpfs and not parent.startswith("/tmp/"):
            tmpfs[parent] = "size=16m,mode=1777"
    env["TIERLOCK_NFILES"] = str(len(spec.files))
    role = f"service:{name}"
    kwargs: dict[str, Any] = {
        "image": image,
        "command": ["sh", "-c", _FILES_SCRIPT, "tierlock-service", *spec.command],
        "name": f"tierlock-svc-{name}-{suffix}",
        "hostname": name,
        "environment": env,
        "labels": {**labels, _ROLE_LABEL: role, HARDEN_LABEL: str(spec.harden).lower()},
        "network": network,
        "networking_config": {network: client.api.create_endpoint_config(aliases=[name])},
        "init": True,
        "detach": True,
        "tmpfs": tmpfs,
        **_limits(policy),
    }
    if spec.harden:
        kwargs.update(_hardening(policy, policy.process.user))
    return await _create_container(client, kwargs, role, state)


async def _create_container(
    client: docker.DockerClient, kwargs: dict[str, Any], role: str, state: _State
) -> Container:
    name = kwargs["name"]
    state.containers.append((name, role))  # by name until created: cleanup must find it
    container = await run_sync(lambda: client.containers.create(**kwargs))
    state.containers[-1] = (container.id, role)
    return container


async def _create_proxy(
    client: docker.DockerClient,
    policy: Policy,
    network: str,
    egress: str,
    labels: dict[str, str],
    suffix: str,
    state: _State,
    private_upstreams: bool,
) -> Container:
    import docker.errors

    gateways = await _ensure_egress(client, egress)
    image = await _resolve_image(client, PROXY_RECIPE.repository)
    kwargs: dict[str, Any] = {
        "image": image,
        "command": ["sh", "-c", PROXY_START],
        "name": f"tierlock-proxy-{suffix}",
        "hostname": "proxy",
        "environment": {
            "TIERLOCK_SQUID_CONF": squid_config(
                policy.network.allow, gateways, private_upstreams=private_upstreams
            )
        },
        "labels": {**labels, _ROLE_LABEL: "proxy"},
        "network": network,
        "networking_config": {network: client.api.create_endpoint_config(aliases=[PROXY_ALIAS])},
        "init": True,
        "detach": True,
        "tmpfs": {"/tmp": "size=16m,mode=1777"},
        "sysctls": {"net.ipv4.ip_forward": "0"},
        # the request log is read back with `docker logs`: never let a daemon default lose it
        "log_config": {"type": "json-file", "config": {}},
        "mem_limit": PROXY_MEMORY,
        "memswap_limit": PROXY_MEMORY,
        "pids_limit": PROXY_PIDS,
        "nano_cpus": int(0.5e9),
        **_hardening(policy, PROXY_USER),
    }
    container = await _create_container(client, kwargs, "proxy", state)
    state.proxy = container.id
    try:
        await run_sync(lambda: client.api.connect_container_to_network(container.id, egress))
    except docker.errors.NotFound:  # the default egress network was removed meanwhile (cleanup)
        await _ensure_egress(client, egress)
        await run_sync(lambda: client.api.connect_container_to_network(container.id, egress))
    return container


_egress_lock = threading.Lock()


async def _ensure_egress(client: docker.DockerClient, name: str) -> list[str]:
    """The egress network's gateway addresses (the host), creating the default network."""
    import docker.errors

    def get_or_create() -> list[str]:
        with _egress_lock:
            return _get_or_create()

    def _get_or_create() -> list[str]:
        try:
            net = client.networks.get(name)
        except docker.errors.NotFound:
            if name != DEFAULT_EGRESS_NETWORK:
                raise SandboxError(
                    f"egress network {name!r} (${EGRESS_NETWORK_ENV}) does not exist"
                ) from None
            net = client.networks.create(
                name,
                driver="bridge",
                check_duplicate=True,
                labels={**_PROJECT_LABEL, _ROLE_LABEL: "egress"},
                options={"com.docker.network.bridge.enable_icc": "false"},
            )
            net.reload()
        if net.attrs.get("Internal"):
            raise SandboxError(f"egress network {name!r} is internal: it has no way out")
        configs = (net.attrs.get("IPAM") or {}).get("Config") or []
        return [c["Gateway"] for c in configs if c.get("Gateway")]

    return await run_sync(get_or_create)


async def _resolve_image(client: docker.DockerClient, image: str | None) -> str:
    """A sidecar's image: a project recipe (built on first use) or an existing image."""
    from . import _images

    return await _images.ensure_image_async(client, image or _images.BASE_IMAGE)


async def _wait_listening(container: Container, port: int, timeout: float) -> None:
    """Poll the container's own socket table until something listens on `port`."""
    import docker.errors

    want = f":{port:04X}"
    with anyio.move_on_after(timeout):
        while True:
            try:
                res = await run_sync(
                    lambda: container.exec_run(["cat", "/proc/net/tcp", "/proc/net/tcp6"])
                )
            except docker.errors.APIError:  # not running (any more)
                res = None
            if res is not None and res.output:  # cat fails without tcp6 but still prints tcp
                for line in res.output.decode(errors="replace").splitlines()[1:]:
                    parts = line.split()
                    if len(parts) > 3 and parts[1].endswith(want) and parts[3] == "0A":
                        return
            await run_sync(container.reload)
            if container.status != "running":
                break
            await anyio.sleep(0.05)
    logs = await run_sync(lambda: container.logs(tail=20))
    tail = logs.decode(errors="replace").strip().splitlines()[-5:]
    state = container.attrs.get("State") or {}
    why = (
        f"within {timeout:g}s"
        if container.status == "running"
        else f"(it stopped with exit code {state.get('ExitCode')})"
    )
    raise SandboxError(
        f"sidecar {container.name} did not listen on port {port} {why}: "
        f"{' | '.join(tail) or 'no output'}"
    )


async def _check_conformance(
    client: docker.DockerClient, cid: str, state: _State, network: str, mode: str
) -> None:
    """Read a sidecar's configuration back and compare it with what it must be."""
    attrs = await run_sync(lambda: client.api.inspect_container(cid))
    labels = attrs["Config"].get("Labels") or {}
    role = labels.get(_ROLE_LABEL, "service")
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
    elif hc.get("Memory") != PROXY_MEMORY or hc.get("PidsLimit") != PROXY_PIDS:
        bad.append("proxy memory/pids limits not applied")
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


async def _read_proxy_log(client: docker.DockerClient, cid: str) -> ProxyLog:
    def read() -> tuple[str, bytes]:
        attrs = client.api.inspect_container(cid)
        return attrs["Name"].lstrip("/"), client.api.logs(cid, stdout=True, stderr=False)

    name, out = await run_sync(read)
    return ProxyLog(proxy=name, requests=parse_access_log(out.decode(errors="replace")))


async def _remove_container(client: docker.DockerClient, ref: str) -> None:
    import docker.errors

    def remove() -> None:
        with contextlib.suppress(docker.errors.NotFound):
            client.api.remove_container(ref, force=True, v=True)

    try:
        await run_sync(remove)
    except Exception as e:
        log.warning("sidecar removal failed", container=ref, error=str(e))


async def _remove_network(client: docker.DockerClient, name: str) -> None:
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
