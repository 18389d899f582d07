"""What `tierlock policy show` says about networking, and the sandbox's proxy variables."""

from __future__ import annotations

import anyio
import pytest

from tierlock.sandbox._config import ServiceSpec
from tierlock.sandbox._egress_proxy import proxy_env
from tierlock.sandbox._errors import SandboxError
from tierlock.sandbox._network import create_sample_network
from tierlock.sandbox._network_describe import describe_network
from tierlock.sandbox._policy import Policy


def _policy(mode: str, allow: list[str] | None = None, services: list[str] | None = None) -> Policy:
    return Policy.model_validate(
        {
            "name": "p",
            "tier": "networked",
            "network": {"mode": mode, "allow": allow or [], "services": services or []},
        }
    )


def test_describe_none_and_open() -> None:
    assert describe_network(_policy("none")) == [
        "network: none (loopback only; no interface but lo)"
    ]
    [line] = describe_network(_policy("open"))
    assert "unrestricted" in line and "nothing logged" in line


def test_describe_internal_has_no_proxy() -> None:
    lines = describe_network(_policy("internal", services=["api"]))
    assert lines[0].startswith("network: per-sample internal bridge")
    assert "sidecars: api" in lines[1]
    assert lines[-1].startswith("egress: none")
    assert not any(ln.startswith("proxy") for ln in lines)


def test_describe_allowlist_lists_proxy_rules() -> None:
    lines = describe_network(_policy("allowlist", ["pypi.org", "*.example.org", "x.test:8443"]))
    rules = [ln for ln in lines if ln.startswith("proxy rule:")]
    assert rules[:3] == [
        "proxy rule: allow pypi.org on ports 80, 443",
        "proxy rule: allow *.example.org (and example.org) on ports 80, 443",
        "proxy rule: allow x.test on port 8443",
    ]
    assert rules[3].startswith("proxy rule: HTTPS only as a CONNECT tunnel whose TLS server")
    assert rules[4].startswith("proxy rule: deny everything else")
    assert any(ln.startswith("proxy log:") for ln in lines)


def test_describe_allowlist_empty_allow() -> None:
    lines = describe_network(_policy("allowlist"))
    assert any("every request is refused" in ln for ln in lines)


def test_proxy_env_bypasses_only_services() -> None:
    env = proxy_env(["api", "db"])
    assert env["HTTP_PROXY"] == env["https_proxy"] == "http://tierlock-proxy:3128"
    assert env["NO_PROXY"] == env["no_proxy"] == "localhost,127.0.0.1,::1,api,db"


@pytest.mark.parametrize("mode", ["none", "open"])
def test_modes_without_sample_network_refused(mode: str) -> None:
    with pytest.raises(SandboxError, match="does not use a sample network"):
        anyio.run(lambda: create_sample_network(None, _policy(mode), {}, {}))  # type: ignore[arg-type]


def test_reserved_service_name_refused() -> None:
    spec = ServiceSpec(command=["true"])
    policy = _policy("allowlist", services=["tierlock-proxy"])
    with pytest.raises(SandboxError, match="reserved"):
        anyio.run(lambda: create_sample_network(None, policy, {"tierlock-proxy": spec}, {}))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("path", "content", "match"),
    [
        ("relative.py", "x", "absolute path"),
        ("/srv/api/big.bin", "x" * (200 * 1024), "at most"),
        ("/etc/app.conf", "x", "writable /etc"),
    ],
)
def test_bad_service_files_refused_before_docker(path: str, content: str, match: str) -> None:
    spec = ServiceSpec(command=["true"], files={path: content})
    policy = _policy("internal", services=["api"])
    with pytest.raises(SandboxError, match=match):
        anyio.run(lambda: create_sample_network(None, policy, {"api": spec}, {}))  # type: ignore[arg-type]
