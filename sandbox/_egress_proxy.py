"""The `allowlist` mode's way out: the squid sidecar (`create_proxy`) on the sample network and on
the shared egress network (created on first use, re-created if a cleanup removed it), and the
proxy variables the sandbox gets (`proxy_env`)."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

from ._allow import effective_allow
from ._docker import run_sync
from ._errors import SandboxError
from ._hostlock import host_lock
from ._labels import PROJECT, PROJECT_LABEL, ROLE_LABEL
from ._proxy import PROXY_PORT, PROXY_RECIPE, PROXY_START, squid_config
from ._proxylog import new_log_mark, proxy_log_options
from ._sidecar_policy import proxy_policy
from ._sidecars import PROXY_ALIAS, create_sidecar, resolve_sidecar_image, sidecar_settings

if TYPE_CHECKING:
    import docker
    from docker.models.containers import Container

    from ._network_state import NetworkState
    from ._policy import Policy

EGRESS_NETWORK_ENV = "TIERLOCK_EGRESS_NETWORK"
"""Environment variable naming the network the proxy uses to reach the outside."""
DEFAULT_EGRESS_NETWORK = "tierlock-egress"
"""Created on first use: an ordinary bridge with inter-container traffic disabled."""
PRIVATE_UPSTREAMS_ENV = "TIERLOCK_PROXY_PRIVATE_UPSTREAMS"
"""Set to 1 to let the proxy connect to private addresses (e.g. a lab-internal mirror)."""

_PROJECT_LABEL = {PROJECT_LABEL: PROJECT}


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


async def create_proxy(
    client: docker.DockerClient,
    policy: Policy,
    network: str,
    egress: str,
    labels: dict[str, str],
    suffix: str,
    state: NetworkState,
    private_upstreams: bool,
) -> Container:
    import docker.errors

    gateways = await _ensure_egress(client, egress)
    image = await resolve_sidecar_image(client, PROXY_RECIPE.repository)
    state.log_mark = new_log_mark()
    want = proxy_policy(policy)
    kwargs = sidecar_settings(
        client,
        want,
        image=image,
        name=f"tierlock-proxy-{suffix}",
        hostname="proxy",
        labels={**labels, ROLE_LABEL: "proxy"},
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
    container = await create_sidecar(client, kwargs, "proxy", state, want)
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
            labels={**_PROJECT_LABEL, ROLE_LABEL: "egress"},
            options={"com.docker.network.bridge.enable_icc": "false"},
        )
        net.reload()
    if net.attrs.get("Internal"):
        raise SandboxError(f"egress network {name!r} is internal: it has no way out")
    configs = (net.attrs.get("IPAM") or {}).get("Config") or []
    return [c["Gateway"] for c in configs if c.get("Gateway")]
