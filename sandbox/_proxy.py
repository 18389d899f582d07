"""The egress proxy: squid configuration generated from a policy's `allow` list, and its log.

The sandbox's only way out in `allowlist` mode is a squid sidecar. Its configuration allows
exactly the listed names on the listed ports (plain HTTP and CONNECT alike) and refuses
everything else *before* resolving the name, so a refused name never reaches a DNS server.
CONNECT tunnels must carry TLS whose client hello names (SNI) an allowed server: squid peeks at
it and splices the tunnel through untouched, or cuts it. Allowed tunnels are never decrypted; a
refused CONNECT gets squid's error page over the proxy's throwaway self-signed certificate.
Every request, allowed or refused, is logged to the proxy's stdout in a fixed format that
`parse_access_log` turns into `ProxyRequest`s for the transcript.
"""

from __future__ import annotations

import ipaddress
from collections import deque
from collections.abc import Iterable

from ._allow import DEFAULT_PORTS as DEFAULT_PORTS
from ._allow import AllowRule, is_ip, parse_allow_entry
from ._errors import SandboxError
from ._evidence import ProxyRequest
from ._images import ImageRecipe, register_recipe

PROXY_PORT = 3128
LOG_MARK = "TIERLOCK"
"""First field of every access-log line (other output on stdout is ignored)."""

TLS_CERT = "/tmp/tierlock-proxy.pem"
"""Self-signed key and certificate made at proxy start (see `PROXY_START`)."""
PROXY_START = (
    "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 "
    f"-subj /CN=tierlock-proxy -keyout {TLS_CERT} -out /tmp/cert.pem 2>/dev/null && "
    f"cat /tmp/cert.pem >> {TLS_CERT} && "
    'printf "%s" "$TIERLOCK_SQUID_CONF" > /tmp/squid.conf && unset TIERLOCK_SQUID_CONF && '
    "exec squid -N -f /tmp/squid.conf"
)
"""The proxy container's shell command: certificate, configuration (from the env), squid."""

# time method host port result status request-bytes reply-bytes error bump-mode sni url
_LOGFORMAT = (
    f"{LOG_MARK} %ts.%03tu %rm %>rd %>rP %Ss %>Hs %>st %<st %err_code %ssl::bump_mode "
    "%ssl::>sni %ru"
)

BLOCKED_DESTINATIONS: tuple[str, ...] = (
    "0.0.0.0/8",
    "127.0.0.0/8",
    "169.254.0.0/16",  # link-local, cloud metadata (169.254.169.254)
    "100.100.100.200/32",  # Alibaba Cloud metadata
    "::1",
    "fe80::/10",
    "fd00:ec2::254",  # AWS IPv6 metadata
)
"""Addresses the proxy never connects to, whatever an allowed name resolves to."""

PRIVATE_DESTINATIONS: tuple[str, ...] = (
    "10.0.0.0/8",
    "172.16.0.0/12",
    "192.168.0.0/16",
    "100.64.0.0/10",
    "fc00::/7",
)
"""Private addresses, refused too unless the upstreams are known to be local (e.g. tests)."""

PROXY_RECIPE = register_recipe(
    ImageRecipe(
        name="proxy",
        suite="bookworm",
        # squid 5.7 built with OpenSSL (peeks at the TLS SNI of CONNECT tunnels), and openssl to
        # make the throwaway certificate an SslBump port needs even when it never bumps
        packages=("squid-openssl", "openssl"),
        customize=('test -x "$1/usr/sbin/squid"',),
        user="proxy",
        cmd=("squid", "-N", "-f", "/etc/squid/squid.conf"),
    )
)
"""The egress proxy image `tierlock-proxy`: Debian's squid, built like the base image."""


def parse_allow(entry: str) -> AllowRule:
    """Parse one `allow` entry with the policy's own parser (`_allow.parse_allow_entry`)."""
    try:
        return parse_allow_entry(entry)
    except ValueError as e:
        raise SandboxError(f"network.allow: {e}") from None


def allow_rules(allow: list[str]) -> list[AllowRule]:
    """The allow list as rules grouped by port set, with names a wildcard covers removed."""
    by_ports: dict[tuple[int, ...], list[str]] = {}
    for entry in allow:
        rule = parse_allow(entry)
        ports = tuple(sorted(set(rule.ports)))
        names = by_ports.setdefault(ports, [])
        if rule.domain not in names:
            names.append(rule.domain)
    rules: list[AllowRule] = []
    for ports, names in by_ports.items():
        wild = [n for n in names if n.startswith(".")]
        for name in names:
            # squid refuses a name that a `.suffix` in the same ACL already covers
            covered = any(name != w and (name == w[1:] or name.endswith(w)) for w in wild)
            if not covered:
                rules.append(AllowRule(domain=name, ports=ports))
    return rules


def squid_config(
    allow: list[str],
    deny_destinations: list[str] | None = None,
    *,
    private_upstreams: bool = False,
) -> str:
    """A complete squid.conf for a per-sample egress proxy (no cache, foreground, stdout log).

    `deny_destinations` adds addresses (e.g. the egress network's gateway, i.e. the host) to
    `BLOCKED_DESTINATIONS`; private ranges are refused too unless `private_upstreams`.
    """
    blocked = [*BLOCKED_DESTINATIONS, *(deny_destinations or [])]
    if not private_upstreams:
        blocked += PRIVATE_DESTINATIONS
    rules = allow_rules(allow)
    lines = [
        "# Generated by tierlock from the policy's network.allow list. Do not edit.",
        # ssl-bump only to *peek* at the TLS client hello of CONNECT tunnels: an allowed tunnel
        # is spliced (never decrypted); the certificate only carries refusals' error pages
        f"http_port {PROXY_PORT} ssl-bump tls-cert={TLS_CERT} generate-host-certificates=off",
        "pid_filename none",
        "coredump_dir /tmp",
        "cache deny all",
        "cache_mem 0 MB",
        "max_filedescriptors 1024",
        "shutdown_lifetime 0 seconds",
        "forwarded_for delete",
        "via off",
        "httpd_suppress_version_string on",
        "visible_hostname proxy",
        "client_db off",
        "pinger_enable off",
        "icp_port 0",
        "htcp_port 0",
        "digest_generation off",
        "logfile_rotate 0",
        "cache_log /dev/stderr",
        f"logformat tierlock {_LOGFORMAT}",
        "access_log stdio:/dev/stdout logformat=tierlock",
        # keep query strings in the log: the audit looks for canaries in every URL sent out
        "strip_query_terms off",
        "",
        "acl CONNECT method CONNECT",
        "acl tl_step1 at_step SslBump1",
        "acl tl_blocked_dst dst " + " ".join(_collapse(blocked)),
    ]
    access: list[str] = ["http_access deny manager"]
    # TLS in CONNECT tunnels: splice (pass through untouched) only when the client hello's SNI
    # (or, without SNI, the CONNECT host) is an allowed name on an allowed port; anything else,
    # including a tunnel that does not speak TLS, is cut
    bump: list[str] = ["ssl_bump peek tl_step1"]
    groups: dict[tuple[int, ...], list[str]] = {}
    for rule in rules:
        groups.setdefault(rule.ports, []).append(rule.domain)
    for i, (ports, names) in enumerate(groups.items()):
        names_ip = [n for n in names if is_ip(n)]
        names_dns = [n for n in names if not is_ip(n)]
        port_acl = f"tl_ports_{i}"
        lines.append(f"acl {port_acl} port {' '.join(str(p) for p in ports)}")
        lines.append(f"acl tl_sni_{i} ssl::server_name {' '.join(names)}")
        bump.append(f"ssl_bump splice tl_sni_{i} {port_acl}")
        if names_dns:
            # -n: match the requested name only, never a reverse lookup of an address
            lines.append(f"acl tl_names_{i} dstdomain -n {' '.join(names_dns)}")
            access.append(f"http_access allow tl_names_{i} {port_acl} !tl_blocked_dst")
        if names_ip:
            lines.append(f"acl tl_addrs_{i} dst {' '.join(names_ip)}")
            lines.append(f"acl tl_ip_urls_{i} dstdomain -n {' '.join(names_ip)}")
            access.append(f"http_access allow tl_ip_urls_{i} tl_addrs_{i} {port_acl}")
    access.append("http_access deny all")
    bump.append("ssl_bump terminate all")
    return "\n".join([*lines, "", *access, "", *bump, ""])


def _collapse(addresses: list[str]) -> list[str]:
    """Non-overlapping networks covering `addresses`.

    squid keeps `dst` entries in a splay tree and *ignores the larger* of two overlapping
    entries, so e.g. a gateway inside 172.16.0.0/12 would silently unblock the whole range.
    """
    nets = [ipaddress.ip_network(a, strict=False) for a in addresses]
    out: list[str] = []
    for version in (4, 6):
        same = [n for n in nets if n.version == version]
        out += [str(n) for n in ipaddress.collapse_addresses(same)]  # type: ignore[type-var]
    return out


def parse_access_log(text: str) -> list[ProxyRequest]:
    """The requests in squid's output (lines written with the `tierlock` logformat).

    A CONNECT tunnel whose TLS SNI differs from the CONNECT host is recorded with
    `url` = `host:port sni=<name>`, so a refused SNI is on the record too.
    """
    out: list[ProxyRequest] = []
    for line in text.splitlines():
        fields = line.strip().split(" ", 12)
        if len(fields) < 12 or fields[0] != LOG_MARK:
            continue
        _, ts, method, host, port, result, status, _req, reply, err, bump, sni = fields[:12]
        url = fields[12] if len(fields) > 12 else ""
        try:
            time = float(ts)
        except ValueError:
            continue
        tag = result.split("/")[0]
        if tag == "NONE_NONE" and bump == "splice" and err == "-":
            continue  # squid's record of the peek step; the TCP_TUNNEL line follows
        url = "" if url == "-" else url
        if sni not in ("-", "") and sni != host:
            url = f"{url} sni={sni}".strip()
        code = _int(status)
        if tag == "TCP_TUNNEL":
            code = 200  # squid 5 logs a spliced tunnel's status as 500; it was established
        refused = "DENIED" in tag or bump == "terminate" or err.startswith(_REFUSED_ERRORS)
        out.append(
            ProxyRequest(
                time=time,
                method=method,
                host="" if host == "-" else host,
                port=_int(port),
                allowed=not refused,
                status=code or None,
                bytes=_int(reply) or 0,
                url=url,
            )
        )
    return out


def bounded_log(chunks: Iterable[bytes], max_bytes: int) -> tuple[str, int]:
    """At most `max_bytes` of a log: the whole lines of its first half and of its last half,
    and how many lines were left out between them (0: the log is complete). Memory stays
    bounded however long the log is; a single line longer than half the cap is left out too."""
    head_cap = max_bytes // 2
    tail_cap = max_bytes - head_cap
    head: list[bytes] = []
    tail: deque[bytes] = deque()
    head_size = tail_size = dropped = 0
    head_full = skipping = False
    pending = b""

    def add(line: bytes) -> None:
        nonlocal head_size, tail_size, dropped, head_full
        if not head_full:
            if head_size + len(line) <= head_cap:
                head.append(line)
                head_size += len(line)
                return
            head_full = True
        tail.append(line)
        tail_size += len(line)
        while tail_size > tail_cap:
            tail_size -= len(tail.popleft())
            dropped += 1

    for chunk in chunks:
        *lines, rest = (pending + chunk).split(b"\n")
        for i, line in enumerate(lines):
            if skipping and i == 0:  # the end of an over-long line
                skipping = False
                continue
            add(line + b"\n")
        pending = rest
        if skipping and not lines:
            pending = b""
        elif len(pending) > tail_cap:
            pending, skipping = b"", True
            dropped += 1
    if pending and not skipping:
        add(pending)
    return b"".join([*head, *tail]).decode(errors="replace"), dropped


_REFUSED_ERRORS = ("ERR_ACCESS_DENIED", "ERR_INVALID", "ERR_UNSUP", "ERR_PROTOCOL")
"""Squid errors for requests that never went out (refused or unparseable)."""


def _int(text: str) -> int | None:
    try:
        return int(text)
    except ValueError:
        return None


def describe_allow(allow: list[str]) -> list[str]:
    """Human-readable proxy rules, one line each."""
    lines = []
    for rule in allow_rules(allow):
        name = f"*{rule.domain} (and {rule.domain[1:]})" if rule.wildcard else rule.domain
        ports = ", ".join(str(p) for p in rule.ports)
        lines.append(f"allow {name} on port{'s' if len(rule.ports) > 1 else ''} {ports}")
    return lines
