"""Lint rules about what a tier can reach: its network mode, the egress allow-list, and tools.

An allow-list entry must name public hosts only. Refused: IP literals that are not globally
routable (loopback, private, link-local, the cloud metadata address 169.254.169.254, unspecified,
multicast, reserved; `ipaddress`'s `is_global`), IPv4 addresses in other spellings that resolvers
still accept (`2130706433`, `0x7f.1`, `0177.0.0.1`, `127.1`: whatever `inet_aton` reads), names
that resolve to the local machine or the cloud platform (`localhost`, `*.internal`, `*.local`,
`metadata.google.internal`, `host.docker.internal`), names that spell a private address
(`10.0.0.1.nip.io`), and wildcards over a public suffix (`*.org`, `*.co.uk`, `*.github.io`): a
wildcard may cover one registrable domain only. Public suffixes come from the Public Suffix List
bundled with the `publicsuffixlist` package (no network access, ICANN and private sections).
"""

from __future__ import annotations

import functools
import ipaddress
import re
import socket
from collections.abc import Iterator

from publicsuffixlist import PublicSuffixList

from ._allow import is_ip, parse_allow_entry
from ._lint_rule import Finding, LintContext
from ._policy import Policy

LOCAL_SUFFIXES = ("localhost", "local", "internal", "localdomain", "home.arpa", "lan")
"""Names under these resolve to this machine, the local network or the cloud platform."""
LOCAL_NAMES = frozenset({"metadata", "instance-data", "wpad"})
"""Single names that resolve to the cloud metadata service or a local helper."""
_METADATA = frozenset(
    {ipaddress.ip_address("169.254.169.254"), ipaddress.ip_address("fd00:ec2::254")}
)
_DASHED_V4 = re.compile(r"^(\d{1,3})-(\d{1,3})-(\d{1,3})-(\d{1,3})$")


@functools.cache
def _psl() -> PublicSuffixList:
    return PublicSuffixList()


def _kind(addr: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str:
    mapped = getattr(addr, "ipv4_mapped", None)
    if mapped is not None:
        return _kind(mapped)
    if addr in _METADATA:
        return "the cloud metadata address"
    for attr, word in (
        ("is_unspecified", "an unspecified"),
        ("is_loopback", "a loopback"),
        ("is_link_local", "a link-local"),
        ("is_multicast", "a multicast"),
        ("is_private", "a private"),
        ("is_reserved", "a reserved"),
    ):
        if getattr(addr, attr):
            return f"{word} address"
    return "a non-public address"


def _public(addr: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    mapped = getattr(addr, "ipv4_mapped", None)
    if mapped is not None:
        return _public(mapped)
    return addr.is_global and not addr.is_multicast and addr not in _METADATA


def inet_aton(name: str) -> ipaddress.IPv4Address | None:
    """The IPv4 address a resolver reads from `name` without DNS (`127.1`, `2130706433`,
    `0x7f.1`, `0177.0.0.1`), or None."""
    if not name or not all(c in "0123456789abcdefx." for c in name):
        return None
    try:
        return ipaddress.IPv4Address(socket.inet_aton(name))
    except (OSError, ValueError):
        return None


def _embedded_v4(name: str) -> ipaddress.IPv4Address | None:
    """A non-public IPv4 address spelled inside a name (`10.0.0.1.nip.io`, `10-0-0-1.sslip.io`)."""
    labels = name.split(".")
    found: list[str] = []
    for i in range(len(labels) - 3):
        found.append(".".join(labels[i : i + 4]))
    found += [".".join(m.groups()) for lab in labels if (m := _DASHED_V4.match(lab))]
    for text in found:
        try:
            addr = ipaddress.IPv4Address(text)
        except ValueError:
            continue
        if not _public(addr):
            return addr
    return None


def allow_entry_problem(entry: str) -> str | None:
    """Why an `allow` entry reaches something that is not a public host, or None."""
    try:
        rule = parse_allow_entry(entry)
    except ValueError:
        return None  # the policy model reports it
    name = rule.domain.lstrip(".")
    shown = repr(entry)
    if is_ip(name):
        addr = ipaddress.ip_address(name)
        if not _public(addr):
            return f"{shown} is {_kind(addr)}; the egress proxy reaches public hosts only"
        return None
    aton = inet_aton(name)
    if aton is not None:
        why = "" if _public(aton) else f", {_kind(aton)}"
        return (
            f"{shown} is the IPv4 address {aton} in another spelling{why}; write public "
            "addresses as a.b.c.d"
        )
    if name in LOCAL_NAMES or any(name == s or name.endswith("." + s) for s in LOCAL_SUFFIXES):
        return (
            f"{shown} names this machine, the local network or the cloud platform, not a "
            "public host"
        )
    embedded = _embedded_v4(name)
    if embedded is not None:
        return (
            f"{shown} spells {_kind(embedded)} ({embedded}) in its name; such names resolve to it"
        )
    if rule.wildcard and (_psl().is_public(name) or _psl().privatesuffix(name) is None):
        return (
            f"{shown} covers every domain under the public suffix {name}; a wildcard may "
            f"cover one registrable domain, e.g. *.example.{name}"
        )
    return None


def _allow_public(p: Policy, _: LintContext) -> Iterator[Finding]:
    for i, entry in enumerate(p.network.allow):
        why = allow_entry_problem(entry)
        if why is not None:
            yield Finding(("network", "allow", i), why)


def _wildcard_subdomains(p: Policy, _: LintContext) -> Iterator[Finding]:
    if p.network.mode != "allowlist" or p.network.allow_subdomains is not None:
        return
    for i, entry in enumerate(p.network.allow):
        if entry.strip().startswith("*."):
            yield Finding(
                ("network", "allow", i),
                f"{entry} lets the model make the proxy look up any name under {entry[2:]} "
                "(data can leave in the names: SECRET." + entry[2:] + "); list the labels it "
                "needs in network.allow_subdomains",
            )


def _network_tier(p: Policy, _: LintContext) -> Iterator[Finding]:
    if p.tier != "networked" and p.network.mode != "none":
        yield Finding(
            ("network", "mode"),
            f"tier {p.tier} allows no network, but mode is {p.network.mode}; "
            "use mode: none, or tier: networked",
        )


def _network_open(p: Policy, _: LintContext) -> Iterator[Finding]:
    if p.tier == "networked" and p.network.mode == "open":
        yield Finding(
            ("network", "mode"),
            "open network: unaudited access to anything the host can reach; prefer allowlist",
        )


def _allowlist_empty(p: Policy, _: LintContext) -> Iterator[Finding]:
    if p.network.mode == "allowlist" and not p.network.allow:
        yield Finding(
            ("network", "allow"),
            "mode allowlist with an empty allow list reaches no domain; "
            "use mode: internal or list domains",
        )


def _network_unused(p: Policy, _: LintContext) -> Iterator[Finding]:
    if p.network.allow and p.network.mode in ("none", "internal"):
        yield Finding(
            ("network", "allow"),
            f"allow entries are ignored with mode {p.network.mode} (only allowlist uses them)",
        )
    if p.network.services and p.network.mode == "none":
        yield Finding(("network", "services"), "services are unreachable with mode none")


def _text_only_tools(p: Policy, _: LintContext) -> Iterator[Finding]:
    if p.tier == "text-only" and p.tools.allow:
        yield Finding(
            ("tools", "allow"),
            f"text-only exposes no tools, but allow lists {', '.join(p.tools.allow)}",
        )
