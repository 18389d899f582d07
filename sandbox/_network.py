"""Per-sample networks for the `internal` and `allowlist` modes: service sidecars, egress proxy.

Each sample gets its own Docker bridge network created `internal` (no route out) and with
`com.docker.network.bridge.inhibit_ipv4`: on Docker 20.10 an internal bridge still carries the
gateway address on the host side, so without it a sandbox reaches every host service listening
on that address (the FORWARD-chain isolation rules never see traffic addressed to the host).
With no address on the bridge there is nothing of the host to reach. Task sidecars join the
network under their service name; in `allowlist` mode a squid sidecar joins it too, plus an
egress network, and is the sandbox's only way out.

Sidecars are built by the sandbox's own translation (`_translate.container_settings`) of the
policy, on a floor no policy lowers (`hardened_policy`), and read back like the sandbox
(`_conformance.check_config` and the kernel's view of PID 1). Their `ContainerEvidence` and the
proxy's (bounded) request log go into the transcript with the sandbox's.
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

from ._allow import effective_allow
from ._docker import create_container, run_sync
from ._errors import SandboxError
from ._evidence import ConformanceRecord, ContainerEvidence, EvidenceRecord, ProxyLog
from ._hostlock import host_lock
from ._labels import PROJECT, PROJECT_LABEL, ROLE_LABEL
from ._proxy import PROXY_PORT, PROXY_RECIPE, PROXY_START, describe_allow, squid_config
from ._proxylog import (
    PROXY_LOG_FILE_SIZE,
    PROXY_LOG_FILES,
    PROXY_LOG_MAX_BYTES,
    check_proxy_log_config,
    new_log_mark,
    proxy_log_options,
    read_proxy_log,
)

if TYPE_CHECKING:
    from pathlib import Path

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
PROXY_CPUS = 0.5
PROXY_TMP = 16 * 1024**2
"""Size of the proxy's /tmp (configuration, certificate)."""
PROXY_SHM = 8 * 1024**2
"""Size of the proxy's /dev/shm (squid 5 keeps a few shared-memory segments even unshared)."""
SERVICE_FILES_TMPFS = 16 * 1024**2
"""Size of the tmpfs a hardened service gets for each directory of its files."""
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


@dataclass(frozen=True)
class _Sidecar:
    """What a created sidecar must be: read back by the conformance check."""

    want: Policy
    """The policy it applies (`service_policy`, `proxy_policy`)."""
    env: dict[str, str]
    hostname: str
    writable: list[str]


@dataclass
class _State:
    client: docker.DockerClient
    policy: Policy
    networks: list[str] = field(default_factory=list)
    containers: list[tuple[str, str]] = field(default_factory=list)  # (id, role)
    proxy: str | None = None
    log_mark: str = ""
    policy_dir: Path | None = None
    conformance: list[ConformanceRecord] = field(default_factory=list)
    sidecars: dict[str, _Sidecar] = field(default_factory=dict)  # by container id
    container_evidence: list[ContainerEvidence] | None = None
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
                    tg.start_soon(_remove_container, st.client, cid)
            for net in reversed(st.networks):
                await _remove_network(st.client, net)


async def _capture(st: _State) -> None:
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
    _check_services(policy, services)
    labels = {**labels, **_PROJECT_LABEL}
    suffix = uuid.uuid4().hex[:12]
    state = _State(client=client, policy=policy, policy_dir=policy_dir)
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
        *(
            f"proxy rule: {line}"
            for line in describe_allow(
                [e for _, e in effective_allow(net.allow, net.allow_subdomains)]
            )
        ),
        "proxy rule: HTTPS only as a CONNECT tunnel whose TLS server name (SNI) is allowed; the "
        "tunnel is passed through, never decrypted; other tunnels (other SNI, not TLS) are cut",
        "proxy rule: deny everything else (other names, ports, IP addresses; loopback, "
        "link-local, metadata and private addresses, the egress gateway); refused names are "
        "never resolved",
        "proxy log: every request (allowed or refused) goes into the sample's transcript, "
        "each field the sandbox controls encoded and parsed strictly (a line that does not "
        "match is rejected and reported); a "
        f"log over {PROXY_LOG_MAX_BYTES // 1024**2} MiB keeps its head and tail and records "
        "how many lines were dropped; Docker keeps at most "
        f"{PROXY_LOG_FILES} x {PROXY_LOG_FILE_SIZE} of it (lines rotated away are counted)",
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


def hardened_policy(policy: Policy) -> Policy:
    """The sandbox's policy as a sidecar applies it: the policy's kernel hardening (user,
    seccomp profile, AppArmor, runtime, IPC, init, limits, writable paths) on a floor no policy
    lowers: read-only root, every capability dropped, no-new-privileges, not privileged, a
    seccomp filter, private namespaces, and none of the sandbox's devices or host mounts."""
    proc, fs = policy.process, policy.filesystem
    process = proc.model_copy(
        update={
            "privileged": False,
            "capabilities": proc.capabilities.model_copy(update={"drop": ["ALL"], "add": []}),
            "no_new_privileges": True,
            "seccomp": "default" if proc.seccomp == "unconfined" else proc.seccomp,
            "namespaces": type(proc.namespaces)(),
            "devices": [],
        }
    )
    # a working directory no writable path covers would be created in the image's layer
    workdir = fs.workdir if any(_under(fs.workdir, w.path) for w in fs.writable) else "/"
    filesystem = fs.model_copy(update={"read_only_root": True, "mounts": [], "workdir": workdir})
    return policy.model_copy(update={"process": process, "filesystem": filesystem, "env": {}})


def service_policy(policy: Policy, spec: ServiceSpec) -> Policy:
    """What a hardened service sidecar runs under: `hardened_policy`, plus a tmpfs for each
    directory of the service's files that no writable path covers."""
    base = hardened_policy(policy)
    writable = list(base.filesystem.writable)
    from ._policy import WritablePath

    for path in spec.files:
        parent = path.rsplit("/", 1)[0] or "/"
        if not any(_under(parent, w.path) for w in writable):
            writable.append(WritablePath(path=parent, size=SERVICE_FILES_TMPFS))
    fs = base.filesystem.model_copy(update={"writable": writable})
    return base.model_copy(update={"filesystem": fs})


def proxy_policy(policy: Policy) -> Policy:
    """What the egress proxy runs under: `hardened_policy` as squid's own user, with only /tmp
    and a small /dev/shm (the IPC namespace is private and has none otherwise) writable, and
    the proxy's own limits."""
    from ._policy import WritablePath

    base = hardened_policy(policy)
    process = base.process.model_copy(update={"user": PROXY_USER, "init": True})
    fs = base.filesystem.model_copy(
        update={
            "writable": [
                WritablePath(path="/tmp", size=PROXY_TMP),
                WritablePath(path="/dev/shm", size=PROXY_SHM),  # squid's shared segments
            ],
            "workdir": "/tmp",
        }
    )
    limits = base.limits.model_copy(
        update={"memory": PROXY_MEMORY, "pids": PROXY_PIDS, "cpus": PROXY_CPUS}
    )
    return base.model_copy(update={"process": process, "filesystem": fs, "limits": limits})


def _under(path: str, base: str) -> bool:
    return path == base or path.startswith(base.rstrip("/") + "/")


_LIMIT_KEYS = ("mem_limit", "memswap_limit", "nano_cpus", "pids_limit")


def _sidecar_settings(
    client: docker.DockerClient,
    want: Policy,
    *,
    image: str,
    name: str,
    hostname: str,
    labels: dict[str, str],
    network: str,
    alias: str,
    command: list[str],
    env: dict[str, str],
    policy_dir: Path | None,
    harden: bool = True,
) -> dict[str, Any]:
    """`containers.create` arguments for a sidecar, from the sandbox's own translation
    (`_translate.container_settings`) of `want`, with the sidecar's name, network alias,
    command and environment. Unhardened: only the limits, and a /tmp."""
    from ._translate import container_settings

    settings = container_settings(
        want, image=image, labels=labels, name=name, network=network, policy_dir=policy_dir
    )
    if not harden:
        settings = {
            "image": image,
            "name": name,
            "labels": dict(labels),
            "init": True,
            "tmpfs": {"/tmp": "size=16m,mode=1777"},
            **{k: settings[k] for k in _LIMIT_KEYS},
        }
    settings.pop("network_mode", None)
    settings.pop("dns_opt", None)
    settings.update(
        command=command,
        hostname=hostname,
        environment=env,
        network=network,
        networking_config={network: client.api.create_endpoint_config(aliases=[alias])},
        detach=True,
    )
    return settings


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
    for i, (path, content) in enumerate(spec.files.items()):
        env[f"TIERLOCK_FILE_PATH_{i}"] = path
        env[f"TIERLOCK_FILE_DATA_{i}"] = base64.b64encode(content.encode()).decode()
    env["TIERLOCK_NFILES"] = str(len(spec.files))
    role = f"service:{name}"
    want = service_policy(policy, spec)
    kwargs = _sidecar_settings(
        client,
        want,
        image=image,
        name=f"tierlock-svc-{name}-{suffix}",
        hostname=name,
        labels={**labels, _ROLE_LABEL: role, HARDEN_LABEL: str(spec.harden).lower()},
        network=network,
        alias=name,
        command=["sh", "-c", _FILES_SCRIPT, "tierlock-service", *spec.command],
        env=env,
        policy_dir=state.policy_dir,
        harden=spec.harden,
    )
    return await _create_container(client, kwargs, role, state, want)


async def _create_container(
    client: docker.DockerClient, kwargs: dict[str, Any], role: str, state: _State, want: Policy
) -> Container:
    name = kwargs["name"]
    state.containers.append((name, role))  # by name until created: cleanup must find it
    container = await run_sync(create_container, client, kwargs)
    state.containers[-1] = (container.id, role)
    state.sidecars[container.id] = _Sidecar(
        want=want,
        env=dict(kwargs["environment"]),
        hostname=kwargs["hostname"],
        writable=sorted(kwargs.get("tmpfs") or {}),
    )
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
    state.log_mark = new_log_mark()
    want = proxy_policy(policy)
    kwargs = _sidecar_settings(
        client,
        want,
        image=image,
        name=f"tierlock-proxy-{suffix}",
        hostname="proxy",
        labels={**labels, _ROLE_LABEL: "proxy"},
        network=network,
        alias=PROXY_ALIAS,
        command=["sh", "-c", PROXY_START],
        env={
            "TIERLOCK_SQUID_CONF": squid_config(
                [
                    e
                    for _, e in effective_allow(
                        policy.network.allow, policy.network.allow_subdomains
                    )
                ],
                gateways,
                private_upstreams=private_upstreams,
                log_mark=state.log_mark,
            )
        },
        policy_dir=state.policy_dir,
    )
    kwargs["sysctls"] = {**(kwargs.get("sysctls") or {}), "net.ipv4.ip_forward": "0"}
    # the request log is read back with `docker logs`: never let a daemon default lose it
    kwargs["log_config"] = {"type": "json-file", "config": proxy_log_options()}
    container = await _create_container(client, kwargs, "proxy", state, want)
    state.proxy = container.id

    def attach() -> None:
        # one host-wide lock with `remove_unused_egress`: another process's cleanup cannot drop
        # the shared network between our look-up and our attaching to it
        with host_lock("egress"):
            try:
                client.api.connect_container_to_network(container.id, egress)
            except docker.errors.NotFound:  # removed since `_ensure_egress` (a cleanup)
                with _egress_lock:
                    _get_or_create_egress(client, egress)
                client.api.connect_container_to_network(container.id, egress)

    await run_sync(attach)
    return container


_egress_lock = threading.Lock()


async def _ensure_egress(client: docker.DockerClient, name: str) -> list[str]:
    """The egress network's gateway addresses (the host), creating the default network."""

    def get_or_create() -> list[str]:
        with _egress_lock:
            return _get_or_create_egress(client, name)

    return await run_sync(get_or_create)


def _get_or_create_egress(client: docker.DockerClient, name: str) -> list[str]:
    import docker.errors

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
    else:
        if hc.get("Memory") != PROXY_MEMORY or hc.get("PidsLimit") != PROXY_PIDS:
            bad.append("proxy memory/pids limits not applied")
        bad += check_proxy_log_config(hc)
    from ._conformance import check_config

    spec = state.sidecars.get(cid)
    if hardened and spec is not None:  # all the sandbox's own check compares, and the kernel
        image_env = (await run_sync(client.api.inspect_image, attrs["Image"]))["Config"].get("Env")
        mismatches = check_config(
            attrs,
            spec.want,
            image_env=image_env,
            extra_env=spec.env,
            network=network,
            policy_dir=state.policy_dir,
        )
        bad += [m for m in mismatches if not m.startswith("Config.Hostname ")]
        if attrs["Config"].get("Hostname") != spec.hostname:
            bad.append(f"hostname is {attrs['Config'].get('Hostname')!r}, want {spec.hostname!r}")
        bad += await run_sync(_kernel_check, client, cid, spec.want)
    elif hardened:
        bad.append("sidecar was not created by this sample network")
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


def _kernel_check(client: docker.DockerClient, cid: str, want: Policy) -> list[str]:
    """The sidecar's PID 1 as the kernel sees it (uid, capabilities, no_new_privs, seccomp,
    namespaces) against `want`: the host's /proc when visible, else read from inside. A sidecar
    that already exited has nothing left to check (its configuration was checked)."""
    from ._conformance import (
        EXEC_PROBE,
        check_kernel_exec_output,
        check_kernel_host,
        host_proc_visible,
    )
    from ._exec import PINNED_PATH, run_exec

    state = client.api.inspect_container(cid).get("State") or {}
    if not state.get("Running"):  # a one-shot service that is done: no process left to check
        return []
    pid = int(state.get("Pid") or 0)
    if host_proc_visible(pid, cid):
        with contextlib.suppress(OSError):
            return check_kernel_host(pid, want)
    out = run_exec(
        client.api, cid, EXEC_PROBE, env={"PATH": PINNED_PATH}, limit=1 << 16, deadline=30
    )
    if out.exit_code != 0:
        return [f"cannot read the sidecar's process status ({out.stderr.decode(errors='replace')})"]
    return check_kernel_exec_output(out.stdout.decode(errors="replace"), want)


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
