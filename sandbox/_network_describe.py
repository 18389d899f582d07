"""What networking a policy produces, in words (`tierlock policy show`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ._allow import effective_allow
from ._egress_proxy import DEFAULT_EGRESS_NETWORK, EGRESS_NETWORK_ENV
from ._proxy import PROXY_PORT, describe_allow
from ._proxylog import PROXY_LOG_FILE_SIZE, PROXY_LOG_FILES, PROXY_LOG_MAX_BYTES
from ._sidecars import PROXY_ALIAS

if TYPE_CHECKING:
    from ._policy import Policy


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
