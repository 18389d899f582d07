"""In-sandbox probes of what could leak out or in: the environment, network interfaces, the
sample network's gateway, DNS without a network, the engine's socket.

Part of the in-sandbox program of `tierlock selftest` (see `_selftest_inside`): `_selftest`
joins the parts into one script, so this file imports nothing from tierlock at run time (its
imports of the other parts are dropped when joined: in one script they share one namespace).
"""

from __future__ import annotations

import os
import socket

from ._selftest_inside_base import FACTS


def only_policy_env() -> tuple[bool, str]:
    allowed = set(FACTS.get("env", [])) | {
        "PATH",
        "HOSTNAME",
        "HOME",
        "PWD",
        "SHLVL",
        "_",
        "LC_CTYPE",
    }
    if FACTS.get("network") == "allowlist":  # tierlock points the sandbox at its egress proxy
        allowed |= {
            "HTTP_PROXY",
            "HTTPS_PROXY",
            "NO_PROXY",
            "http_proxy",
            "https_proxy",
            "no_proxy",
        }
    extra = sorted(set(os.environ) - allowed)
    return (
        not extra,
        f"unexpected variables: {', '.join(extra)}" if extra else "only the policy's",
    )


def interfaces() -> tuple[bool, str]:
    names = sorted(os.listdir("/sys/class/net"))
    if FACTS.get("network") == "none":
        return (names == ["lo"], f"interfaces: {', '.join(names)}")
    return (len(names) <= 2, f"interfaces: {', '.join(names)}")


def gateway_unreachable() -> tuple[bool, str]:
    """The sample network's gateway (the host side of its bridge) must not answer: a refused
    connection is an answer from the host."""
    with open("/proc/net/route") as f:
        rows = [line.split() for line in f.readlines()[1:]]
    gateways = {r[2] for r in rows if len(r) > 2 and r[1] == "00000000"}
    if not gateways:
        return True, "no default route"
    import struct

    for hexgw in gateways:
        gw = socket.inet_ntoa(struct.pack("<I", int(hexgw, 16)))
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.settimeout(1.5)
        try:
            s.connect((gw, 22))
            return False, f"the gateway {gw} accepted a connection"
        except ConnectionRefusedError:
            return False, f"the gateway {gw} answered (connection refused)"
        except OSError:
            pass
        finally:
            s.close()
    return True, f"gateway(s) {', '.join(sorted(gateways))} unreachable"


def no_dns() -> tuple[bool, str]:
    if FACTS.get("network") != "none":
        return True, "not applicable: the policy has a network"
    try:
        socket.getaddrinfo("tierlock-selftest.invalid", 80)
    except OSError as e:
        return True, f"lookup failed: {e}"
    return False, "a name resolved without a network"


def no_docker_socket() -> tuple[bool, str]:
    found = [
        p
        for p in ("/var/run/docker.sock", "/run/docker.sock", "/run/containerd/containerd.sock")
        if os.path.exists(p)
    ]
    return (not found, f"present: {', '.join(found)}" if found else "no engine socket")
