"""Squid configuration from the allow list, and the access-log parser (pure logic)."""

from __future__ import annotations

import pytest

from tierlock.sandbox._errors import SandboxError
from tierlock.sandbox._proxy import (
    AllowRule,
    allow_rules,
    describe_allow,
    parse_access_log,
    parse_allow,
    squid_config,
)


@pytest.mark.parametrize(
    ("entry", "rule"),
    [
        ("example.org", AllowRule("example.org", (80, 443))),
        ("Example.ORG", AllowRule("example.org", (80, 443))),
        ("*.example.org", AllowRule(".example.org", (80, 443))),
        ("api.example.org:8443", AllowRule("api.example.org", (8443,))),
        ("*.example.org:8080", AllowRule(".example.org", (8080,))),
        ("10.1.2.3", AllowRule("10.1.2.3", (80, 443))),
        ("10.1.2.3:81", AllowRule("10.1.2.3", (81,))),
        ("::1", AllowRule("::1", (80, 443))),
    ],
)
def test_parse_allow(entry: str, rule: AllowRule) -> None:
    assert parse_allow(entry) == rule


@pytest.mark.parametrize(
    "entry",
    [
        "",
        "*",
        "*.*.org",
        "exa mple.org",
        "example.org:0",
        "example.org:70000",
        "a*.org",
        "http://example.org",
        "*.10.0.0.1",
        "-bad.org",
    ],
)
def test_parse_allow_rejects(entry: str) -> None:
    with pytest.raises(SandboxError):
        parse_allow(entry)


def test_wildcard_covers_apex_and_subdomains_once() -> None:
    rules = allow_rules(["a.example.org", "*.example.org", "example.org", "other.test"])
    assert [r.domain for r in rules] == [".example.org", "other.test"]


def test_config_allows_only_listed_names_on_listed_ports() -> None:
    conf = squid_config(["allowed.test", "*.example.org", "alt.test:8080"], ["172.30.0.1"])
    private = squid_config(["allowed.test"], private_upstreams=True)
    assert "10.0.0.0/8" in conf and "10.0.0.0/8" not in private
    lines = conf.splitlines()
    assert "acl tl_names_0 dstdomain -n allowed.test .example.org" in lines
    assert "acl tl_ports_0 port 80 443" in lines
    assert "acl tl_names_1 dstdomain -n alt.test" in lines
    assert "acl tl_ports_1 port 8080" in lines
    access = [ln for ln in lines if ln.startswith("http_access")]
    # name and port first (no DNS for refused names), then the address check; deny at the end
    assert access == [
        "http_access deny manager",
        "http_access allow tl_names_0 tl_ports_0 !tl_blocked_dst",
        "http_access allow tl_names_1 tl_ports_1 !tl_blocked_dst",
        "http_access deny all",
    ]
    blocked = next(ln for ln in lines if ln.startswith("acl tl_blocked_dst"))
    for addr in ("169.254.0.0/16", "127.0.0.0/8", "172.16.0.0/12", "100.64.0.0/10"):
        assert addr in blocked.split()
    # squid ignores the larger of two overlapping entries: none may overlap
    assert "172.30.0.1/32" not in blocked and "100.100.100.200/32" not in blocked
    with_private = squid_config([], ["172.30.0.1"], private_upstreams=True)
    assert "172.30.0.1/32" in with_private
    assert "cache deny all" in lines
    assert not any(ln.startswith("cache_dir") for ln in lines)


def test_empty_allow_list_denies_everything() -> None:
    access = [ln for ln in squid_config([]).splitlines() if ln.startswith("http_access")]
    assert access == ["http_access deny manager", "http_access deny all"]


def test_ip_literal_allowed_only_when_listed() -> None:
    conf = squid_config(["10.1.2.3:8080"]).splitlines()
    assert "acl tl_addrs_0 dst 10.1.2.3" in conf
    assert "http_access allow tl_ip_urls_0 tl_addrs_0 tl_ports_0" in conf


MARK = "TIERLOCK-0123abcd"
LOG = """\
2026/11/30 05:40:00| Starting Squid Cache version 5.7
TIERLOCK-0123abcd 0 1796000000.123 GET allowed.test 80 TCP_MISS 200 120 345 - - - allowed.test curl/7.88 http://allowed.test/
TIERLOCK-0123abcd 1 1796000001.400 CONNECT allowed.test 443 NONE_NONE 200 116 0 - splice allowed.test allowed.test:443 - allowed.test:443
TIERLOCK-0123abcd 2 1796000001.500 CONNECT allowed.test 443 TCP_TUNNEL 500 300 4000 - splice allowed.test allowed.test:443 - allowed.test:443
TIERLOCK-0123abcd 3 1796000002.000 GET blocked.test 80 TCP_DENIED 403 90 3900 ERR_ACCESS_DENIED - - blocked.test - http://blocked.test/
TIERLOCK-0123abcd 4 1796000003.000 NONE - - NONE_NONE 400 0 3800 ERR_INVALID_URL - - - - -
TIERLOCK-0123abcd 5 1796000004.000 CONNECT allowed.test 443 NONE_NONE 200 116 0 - terminate blocked.test allowed.test:443 - allowed.test:443
TIERLOCK-0123abcd 6 1796000005.000 CONNECT allowed.test 443 NONE_NONE 200 116 0 ERR_PROTOCOL_UNKNOWN peek - allowed.test:443 - allowed.test:443
garbage line
"""


def test_parse_access_log() -> None:
    parsed = parse_access_log(LOG, MARK)
    reqs = parsed.requests
    assert [(r.method, r.host, r.port, r.allowed, r.status, r.bytes) for r in reqs] == [
        ("GET", "allowed.test", 80, True, 200, 345),
        ("CONNECT", "allowed.test", 443, True, 200, 4000),  # the peek-step line is dropped
        ("GET", "blocked.test", 80, False, 403, 3900),
        ("NONE", "", None, False, 400, 3800),
        ("CONNECT", "allowed.test", 443, False, 200, 0),  # SNI not allowed: cut
        ("CONNECT", "allowed.test", 443, False, 200, 0),  # not TLS: cut
    ]
    assert reqs[0].time == pytest.approx(1796000000.123)
    assert reqs[0].user_agent == "curl/7.88" and reqs[0].host_header == "allowed.test"
    assert reqs[2].url == "http://blocked.test/"
    assert reqs[1].url == "allowed.test:443"
    assert reqs[4].url == "allowed.test:443 sni=blocked.test" and reqs[4].sni == "blocked.test"
    assert [r.seq for r in reqs] == [0, 2, 3, 4, 5, 6]
    # squid's banner and the garbage are not in the format: rejected and counted, never read
    assert parsed.rejected == 2 and parsed.missing == 0
    assert parsed.rejected_lines == [
        "2026/11/30 05:40:00| Starting Squid Cache version 5.7",
        "garbage line",
    ]


def test_tls_tunnels_spliced_only_for_allowed_names() -> None:
    lines = squid_config(["allowed.test", "alt.test:8443"]).splitlines()
    assert lines[1].startswith("http_port 3128 ssl-bump ")
    bump = [ln for ln in lines if ln.startswith("ssl_bump")]
    assert bump == [
        "ssl_bump peek tl_step1",
        "ssl_bump splice tl_sni_0 tl_ports_0",
        "ssl_bump splice tl_sni_1 tl_ports_1",
        "ssl_bump terminate all",
    ]
    assert "acl tl_sni_1 ssl::server_name alt.test" in lines
    assert not any("ssl_bump bump" in ln for ln in lines)  # never decrypts


def test_describe_allow() -> None:
    assert describe_allow(["*.example.org", "api.test:8443"]) == [
        "allow *.example.org (and example.org) on ports 80, 443",
        "allow api.test on port 8443",
    ]


ENTRIES = [
    "example.org", "Example.ORG", "*.example.org", "api.example.org:8443", "*.example.org:8080",
    "10.1.2.3", "10.1.2.3:81", "::1", "[::1]:8080", "[::1]", "[10.1.2.3]:80", "", "*", "*.*.org",
    "exa mple.org", "example.org:0", "example.org:70000", "a*.org", "http://example.org",
    "*.10.0.0.1", "-bad.org", "a" * 250 + ".org", "x.test:", "under_score.test",
]  # fmt: skip


@pytest.mark.parametrize("entry", ENTRIES)
def test_policy_and_proxy_share_one_allow_parser(entry: str) -> None:
    """An entry the policy accepts is one the proxy turns into a rule, and vice versa."""
    from pydantic import ValidationError

    from tierlock.sandbox._policy import NetworkPolicy

    try:
        accepted = NetworkPolicy(mode="allowlist", allow=[entry]).allow == [entry.strip().lower()]
    except ValidationError:
        accepted = False
    try:
        parse_allow(entry)
        parsed = True
    except SandboxError as e:
        assert str(e).startswith("network.allow: ") and "is not a domain" in str(e)
        parsed = False
    assert accepted == parsed


def test_bracketed_ipv6_with_port() -> None:
    assert parse_allow("[::1]:8080") == AllowRule("::1", (8080,))


def test_bounded_log_keeps_head_and_tail_and_counts_the_rest() -> None:
    from tierlock.sandbox._proxylog import bounded_log

    lines = [f"line {i}\n".encode() for i in range(1000)]
    assert bounded_log(iter(lines[:5]), 1000) == ("".join(x.decode() for x in lines[:5]), 0)
    text, dropped = bounded_log(iter(lines), 200)
    kept = text.splitlines()
    assert len(text) <= 200 and kept[0] == "line 0" and kept[-1] == "line 999"
    assert len(kept) + dropped == 1000 and dropped > 900
    assert [int(k.split()[1]) for k in kept] == sorted(int(k.split()[1]) for k in kept)
    # chunks need not end at line ends; an over-long line is left out and counted
    chunks = [b"a\nb", b"b\n" + b"x" * 150, b"x" * 150, b"\nc\n"]
    assert bounded_log(iter(chunks), 200) == ("a\nbb\nc\n", 1)


def test_sidecar_policies_floor_the_hardening() -> None:
    """Sidecars take the policy's kernel settings but never fewer restrictions than the
    baseline; the proxy additionally runs as squid's user with its own limits."""
    from tierlock.sandbox._config import ServiceSpec
    from tierlock.sandbox._policy import Policy
    from tierlock.sandbox._sidecar_policy import (
        PROXY_MEMORY,
        PROXY_PIDS,
        PROXY_USER,
        hardened_policy,
        proxy_policy,
        service_policy,
    )
    from tierlock.sandbox._translate import container_settings

    loose = Policy.model_validate({
        "name": "loose", "tier": "networked",
        "network": {"mode": "internal", "services": ["api"]},
        "filesystem": {"read_only_root": False, "mounts": [{"source": "/srv", "target": "/srv"}]},
        "process": {"privileged": True, "no_new_privileges": False, "seccomp": "unconfined",
                    "capabilities": {"drop": [], "add": ["NET_ADMIN"]}, "runtime": "runsc",
                    "namespaces": {"pid": "host"}, "devices": ["/dev/fuse"], "user": "1234:5"},
        "limits": {"memory": "100m", "pids": 9}, "env": {"SECRET": "x"},
    })  # fmt: skip
    h = hardened_policy(loose)
    s = container_settings(h, image="i", labels={}, network="n")
    assert s["read_only"] and not s["privileged"] and s["cap_drop"] == ["ALL"] and not s["cap_add"]
    assert "no-new-privileges:true" in s["security_opt"]
    # an unconfined policy's sidecars get the default profile (tierlock's own, inline)
    assert h.process.seccomp == "default" and "seccomp=unconfined" not in s["security_opt"]
    assert any(o.startswith("seccomp={") for o in s["security_opt"])
    assert s["pid_mode"] is None and s["devices"] == [] and s["mounts"] == []
    assert s["environment"] == {}
    # what the policy sets and the floor does not override stays the policy's
    assert s["runtime"] == "runsc" and s["user"] == "1234:5" and s["ipc_mode"] == "none"
    assert s["pids_limit"] == 9 and s["mem_limit"] == 100 * 1024**2
    svc = service_policy(loose, ServiceSpec(command=["x"], files={"/srv/api/a": "1", "/tmp/b": ""}))
    assert [w.path for w in svc.filesystem.writable] == ["/workspace", "/tmp", "/srv/api"]
    p = container_settings(proxy_policy(loose), image="i", labels={}, network="n")
    assert p["user"] == PROXY_USER and p["read_only"] and p["cap_drop"] == ["ALL"]
    assert (p["mem_limit"], p["pids_limit"]) == (PROXY_MEMORY, PROXY_PIDS)
    assert sorted(p["tmpfs"]) == ["/dev/shm", "/tmp"] and p["runtime"] == "runsc"
