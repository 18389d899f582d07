"""Sidecar containers of a sample network: the task's services checked against the policy, their
`containers.create` arguments from the sandbox's own translation (`_translate`), creation,
waiting until they listen, and removal. The egress proxy is made the same way (`_egress_proxy`).
"""

from __future__ import annotations

import base64
import contextlib
from typing import TYPE_CHECKING, Any

import anyio
import structlog

from ._docker import create_container, run_sync
from ._errors import SandboxError
from ._labels import ROLE_LABEL
from ._network_state import Sidecar
from ._sidecar_policy import service_policy

if TYPE_CHECKING:
    from pathlib import Path

    import docker
    from docker.models.containers import Container

    from ._config import ServiceSpec
    from ._network_state import NetworkState
    from ._policy import Policy

log = structlog.get_logger("tierlock.sandbox._network")

PROXY_ALIAS = "tierlock-proxy"
"""Host name of the egress proxy on a sample network."""
MAX_FILE_BYTES = 96 * 1024
"""Service files travel in the environment (the root is read-only before start)."""
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


def check_services(policy: Policy, services: dict[str, ServiceSpec]) -> None:
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


_LIMIT_KEYS = ("mem_limit", "memswap_limit", "nano_cpus", "pids_limit")


def sidecar_settings(
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


async def create_service(
    client: docker.DockerClient,
    policy: Policy,
    network: str,
    name: str,
    spec: ServiceSpec,
    labels: dict[str, str],
    suffix: str,
    state: NetworkState,
) -> Container:
    image = await resolve_sidecar_image(client, spec.image)
    env = dict(spec.env)
    for i, (path, content) in enumerate(spec.files.items()):
        env[f"TIERLOCK_FILE_PATH_{i}"] = path
        env[f"TIERLOCK_FILE_DATA_{i}"] = base64.b64encode(content.encode()).decode()
    env["TIERLOCK_NFILES"] = str(len(spec.files))
    role = f"service:{name}"
    want = service_policy(policy, spec)
    kwargs = sidecar_settings(
        client,
        want,
        image=image,
        name=f"tierlock-svc-{name}-{suffix}",
        hostname=name,
        labels={**labels, ROLE_LABEL: role, HARDEN_LABEL: str(spec.harden).lower()},
        network=network,
        alias=name,
        command=["sh", "-c", _FILES_SCRIPT, "tierlock-service", *spec.command],
        env=env,
        policy_dir=state.policy_dir,
        harden=spec.harden,
    )
    return await create_sidecar(client, kwargs, role, state, want)


async def create_sidecar(
    client: docker.DockerClient, kwargs: dict[str, Any], role: str, state: NetworkState, want: Policy
) -> Container:
    name = kwargs["name"]
    state.containers.append((name, role))  # by name until created: cleanup must find it
    container = await run_sync(create_container, client, kwargs)
    state.containers[-1] = (container.id, role)
    state.sidecars[container.id] = Sidecar(
        want=want,
        env=dict(kwargs["environment"]),
        hostname=kwargs["hostname"],
        writable=sorted(kwargs.get("tmpfs") or {}),
    )
    return container


async def resolve_sidecar_image(client: docker.DockerClient, image: str | None) -> str:
    """A sidecar's image: a project recipe (built on first use) or an existing image."""
    from . import _images

    return await _images.ensure_image_async(client, image or _images.BASE_IMAGE)


async def wait_listening(container: Container, port: int, timeout: float) -> None:
    """Poll the container's own socket table until something listens on `port`."""
    want = f":{port:04X}"
    with anyio.move_on_after(timeout):
        while True:
            table = await run_sync(_socket_table, container, PROBE_SECONDS)
            if table:  # cat fails without tcp6 but still prints tcp
                for line in table.decode(errors="replace").splitlines()[1:]:
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


PROBE_SECONDS = 5.0
"""How long one look at a sidecar's socket table may take (a container whose exec never ends —
seen under gVisor — must not hold the wait past its bound: a worker thread cannot be cancelled)."""


def _socket_table(container: Container, seconds: float) -> bytes | None:
    """`/proc/net/tcp{,6}` as the container sees it, or None when it cannot be read within
    `seconds` (not running any more, the exec refused, or its output never ends)."""
    import docker.errors

    from ._exec_socket import ExecStartRefused, ExecStreamError, start_exec

    api = container.client.api
    try:
        exec_id = api.exec_create(
            container.id, ["cat", "/proc/net/tcp", "/proc/net/tcp6"], stdout=True, stderr=False
        )["Id"]
        conn = start_exec(api, exec_id)
    except (docker.errors.APIError, ExecStartRefused, SandboxError):
        return None
    try:
        conn.settimeout(seconds)
        out = bytearray()
        while (frame := conn.read_frame()) is not None:
            if frame[0] == 1:
                out += frame[1]
            if len(out) > 1 << 20:  # a socket table is small; anything else is not one
                break
        return bytes(out)
    except (OSError, ExecStreamError):  # TimeoutError is an OSError
        return None
    finally:
        conn.close()


async def remove_sidecar(client: docker.DockerClient, ref: str) -> None:
    import docker.errors

    def remove() -> None:
        with contextlib.suppress(docker.errors.NotFound):
            client.api.remove_container(ref, force=True, v=True)

    try:
        await run_sync(remove)
    except Exception as e:
        log.warning("sidecar removal failed", container=ref, error=str(e))
