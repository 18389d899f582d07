"""The leak probe's searches and the host-side watches of `test_real_model_path`.

`SEARCHES` and `grep_step` are the shell commands the scripted model runs inside a sandbox to
look for the endpoint's key and address; `reach_step` and `curl_step` try to reach the endpoint
from the networked sandbox. From the host, `ContainerWatch` reads every container a `tierlock`
process makes (`docker inspect`, and each process's environment and command line in /proc), and
`wide_listener` is a listener on every host interface that records who connected.
"""

from __future__ import annotations

import base64
import json
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

REACH_PATH = "/v1/probe-"
"""Path of the URLs the networked probe tries (so its own commands are told apart)."""


SEARCHES = {
    "env": "env",
    "environ": 'for f in /proc/[0-9]*/environ; do echo "=== $f"; tr "\\0" "\\n" < "$f"; done',
    "cmdline": 'for f in /proc/[0-9]*/cmdline; do echo "=== $f"; tr "\\0" " " < "$f"; echo; done',
    "network files": "for f in /etc/hosts /etc/resolv.conf /etc/hostname; do "
    'echo "=== $f"; cat "$f"; done',
}
"""Searches whose whole output the test reads (the probe's tool calls, in this order)."""


def grep_step(patterns: list[str]) -> str:
    """A `grep -r` of every readable file for `patterns`, which never appear in its command line
    (they are written to a file under /tmp/probe, excluded from the search, from base64)."""
    encoded = base64.b64encode("\n".join(patterns).encode()).decode()
    return (
        f"mkdir -p /tmp/probe && echo {encoded} | base64 -d > /tmp/probe/patterns && "
        "grep -rasoF -f /tmp/probe/patterns / --exclude-dir=proc --exclude-dir=sys "
        '--exclude-dir=dev --exclude-dir=probe; echo "=== grep exit $?"'
    )


def reach_step(port: int, wide_port: int) -> str:
    """Python that tries the endpoint from inside: through the proxy and directly, at loopback,
    the host's names and bridge addresses; also a listener bound on every host interface."""
    return f"""\
import os, socket, urllib.error, urllib.request
proxy = os.environ.get("http_proxy")  # the allow-list proxy, asked even for loopback:
for name in ("no_proxy", "NO_PROXY"):
    os.environ.pop(name, None)
own = socket.gethostbyname(socket.gethostname())
gateway = own.rsplit(".", 1)[0] + ".1"
targets = [("127.0.0.1", {port}), ("localhost", {port}), ("host.docker.internal", {port}),
           (gateway, {port}), ("172.17.0.1", {port}), (gateway, {wide_port}),
           ("172.17.0.1", {wide_port})]
for host, port in targets:
    for via in ("proxy", "direct"):
        handlers = [urllib.request.ProxyHandler({{"http": proxy}} if via == "proxy" else {{}})]
        url = f"http://{{host}}:{{port}}{REACH_PATH}from-sandbox"
        try:
            with urllib.request.build_opener(*handlers).open(url, timeout=3) as r:
                print("REACHED", via, url, r.status)
        except urllib.error.HTTPError as e:
            print("HTTP", e.code, via, url)
        except Exception as e:
            print("BLOCKED", via, url, type(e).__name__)
"""


def curl_step(port: int) -> str:
    """curl to the endpoint's address, through the proxy and directly."""
    url = f"http://127.0.0.1:{port}{REACH_PATH}curl"
    return (
        f"curl -sS -m 5 -x \"$http_proxy\" --noproxy '' -o /dev/null -w 'curl %{{http_code}}' {url};"
        f' echo " exit $? proxy"; curl -sS -m 5 --noproxy "*" -o /dev/null'
        f" -w 'curl %{{http_code}}' {url}; echo \" exit $? direct\""
    )


@contextmanager
def wide_listener() -> Iterator[tuple[int, list[str]]]:
    """A TCP listener on every host interface (as an endpoint served with `--host 0.0.0.0`):
    yields its port and the peers that connected to it."""
    peers: list[str] = []
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("0.0.0.0", 0))
    sock.listen(8)
    sock.settimeout(0.2)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, peer = sock.accept()
            except OSError:
                continue
            peers.append(f"{peer[0]}:{peer[1]}")
            conn.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield sock.getsockname()[1], peers
    finally:
        stop.set()
        thread.join(timeout=5)
        sock.close()


class ContainerWatch:
    """From the host, while process `pid` runs: `docker inspect` of every container it makes, and
    the environment and command line of every process in them (read from the host's /proc, so
    processes the sandbox user may not read, such as the container's init, are read too)."""

    def __init__(self, client: Any, pid: int) -> None:
        self.client, self.pid = client, pid
        self.seen: dict[str, str] = {}  # container name -> its inspect JSON
        self.processes: dict[str, set[str]] = {}  # container name -> environ + cmdline texts
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)

    def __enter__(self) -> ContainerWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def _poll(self) -> None:
        while not self._stop.is_set():
            try:
                for c in self.client.containers.list(filters={"label": "tierlock.owner"}):
                    parts = c.labels.get("tierlock.owner", "").split("/")
                    if len(parts) == 4 and parts[2] == str(self.pid):
                        self.seen.setdefault(c.name, json.dumps(c.attrs))
                        self.processes.setdefault(c.name, set()).update(process_texts(c))
            except Exception:
                pass  # a container removed between list and inspect
            self._stop.wait(0.3)


def process_texts(container: Any) -> set[str]:
    """Environment and command line of each process of a running container, from the host."""
    texts = set()
    for row in container.top(ps_args="-eo pid").get("Processes") or []:
        for name in ("environ", "cmdline"):
            try:
                raw = Path(f"/proc/{row[0]}/{name}").read_bytes()
            except OSError:
                continue
            texts.add(f"{name} of {row[0]}: " + raw.replace(b"\0", b" ").decode(errors="replace"))
    return texts


def found(by_search: dict[str, str], secrets_: list[str]) -> list[str]:
    """`search: secret` for each secret a search's output shows."""
    return [f"{name}: {x}" for name, text in by_search.items() for x in secrets_ if x in text]
