"""The one parser of `network.allow` entries, shared by the policy model and the egress proxy.

An entry is a host name (`example.org`), a wildcard (`*.example.org`: the name and every name
below it) or an IP address, optionally with `:port` (`[::1]:8080` for IPv6); default ports are
80 and 443. Names are lower-cased. Nothing here imports the rest of the package.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

DEFAULT_PORTS: tuple[int, ...] = (80, 443)
"""Ports an entry without `:port` allows."""

_LABEL = r"(?!-)[a-z0-9_-]{1,63}(?<!-)"
_NAME_RE = re.compile(rf"^{_LABEL}(\.{_LABEL})*$")
_WITH_PORT = re.compile(r"^(.+):(\d{1,5})$")
_MAX_NAME = 253


@dataclass(frozen=True)
class AllowRule:
    """One `allow` entry: a host name (or `.suffix` for a wildcard) and its ports."""

    domain: str
    """Exact name or address, or `.example.org` (squid syntax) for `*.example.org`."""
    ports: tuple[int, ...]

    @property
    def wildcard(self) -> bool:
        return self.domain.startswith(".")


def is_ip(text: str) -> bool:
    """Whether `text` is an IPv4 or IPv6 address literal."""
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def parse_allow_entry(entry: str) -> AllowRule:
    """Parse `example.org`, `*.example.org`, `example.org:8443`, an IP literal, `[::1]:8080`.

    Raises `ValueError` (one line, naming the entry) for anything else.
    """
    text = entry.strip().lower()
    if is_ip(text):  # also a bare IPv6 address, whose colons are not a port
        return AllowRule(domain=text, ports=DEFAULT_PORTS)
    host, ports = text, DEFAULT_PORTS
    if (m := _WITH_PORT.match(text)) is not None:
        host, ports = m.group(1), (int(m.group(2)),)
    if not all(0 < p < 65536 for p in ports):
        raise ValueError(_bad(entry))
    if host.startswith("[") and host.endswith("]"):  # IPv6 with a port
        if ports is DEFAULT_PORTS or ":" not in host or not is_ip(host[1:-1]):
            raise ValueError(_bad(entry))
        return AllowRule(domain=host[1:-1], ports=ports)
    if is_ip(host):
        return AllowRule(domain=host, ports=ports)
    wildcard = host.startswith("*.")
    name = host[2:] if wildcard else host
    if is_ip(name) or not _NAME_RE.match(name) or len(host) > _MAX_NAME:
        raise ValueError(_bad(entry))
    return AllowRule(domain=f".{name}" if wildcard else name, ports=ports)


def effective_allow(allow: list[str], subdomains: list[str] | None) -> list[tuple[int, str]]:
    """The entries the proxy applies, each with the index of the `allow` entry it comes from.

    With `subdomains` (the policy's `network.allow_subdomains`), a wildcard `*.example.org[:p]`
    stands for exactly those labels under the domain (`api.example.org[:p]`, ...) and nothing
    else, so the model cannot make the proxy look up names of its choosing there (a DNS channel
    out: `SECRET.example.org`). Without it, a wildcard covers every name below the domain.
    """
    out: list[tuple[int, str]] = []
    for i, entry in enumerate(allow):
        text = entry.strip()
        if subdomains is None or not text.lower().startswith("*."):
            out.append((i, text))
            continue
        out += [(i, f"{label}.{text[2:]}") for label in subdomains]
    return out


def is_label(text: str) -> bool:
    """Whether `text` is one DNS label (`api`, `www-2`)."""
    return re.fullmatch(_LABEL, text) is not None


def _bad(entry: str) -> str:
    shown = repr(entry) if len(entry) <= 24 else f"<text of {len(entry)} characters>"
    return f"{shown} is not a domain; write e.g. example.org, *.example.org or example.org:443"
