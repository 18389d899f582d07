"""A Unix-socket proxy in front of the Docker daemon that delays, holds or drops chosen calls.

Test-only. Point a client at it with `DOCKER_HOST=unix://<proxy.path>`; every connection is
forwarded to the real socket, request by request, and each request line ("POST /v1.41/containers/
…/start") is matched against the proxy's rules, in order:

- `hold`: never forwarded, never answered; the connection stays open until the client gives up
  (the daemon never hears of the call: a hung daemon as the client sees it);
- `close`: the connection is closed without an answer (a daemon that drops the call);
- `delay`: forwarded after `seconds` (a slow daemon).

A rule applies to every match, or only to the `nth` matches (1-based, counted per rule). An
upgraded connection (an exec start) is piped both ways once its request is through. Every
request seen is logged in `seen` as (method, path, action).
"""

from __future__ import annotations

import contextlib
import os
import re
import select
import shutil
import socket
import tempfile
import threading
import time
from dataclasses import dataclass, field
from typing import Literal

UPSTREAM = "/var/run/docker.sock"
_MAX_HEAD = 1 << 16


@dataclass
class Rule:
    """`pattern` is searched in "METHOD /path?query"."""

    pattern: str
    action: Literal["hold", "close", "delay"]
    seconds: float = 0.0
    nth: frozenset[int] | None = None
    matched: int = field(default=0, init=False)

    def applies(self, line: str) -> bool:
        if not re.search(self.pattern, line):
            return False
        self.matched += 1
        return self.nth is None or self.matched in self.nth


class DockerProxy:
    """`with DockerProxy([Rule(...)]) as proxy:` → `proxy.url` for `DOCKER_HOST`."""

    def __init__(self, rules: list[Rule], upstream: str = UPSTREAM) -> None:
        self.rules = rules
        self.upstream = upstream
        self._dir = tempfile.mkdtemp(prefix="tl-dproxy-", dir="/tmp")
        self.path = os.path.join(self._dir, "docker.sock")
        self.seen: list[tuple[str, str, str]] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._socks: set[socket.socket] = set()
        self._listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)

    @property
    def url(self) -> str:
        return f"unix://{self.path}"

    def actions(self, action: str) -> int:
        with self._lock:
            return sum(1 for _, _, a in self.seen if a == action)

    def __enter__(self) -> DockerProxy:
        self._listener.bind(self.path)
        self._listener.listen(128)
        threading.Thread(target=self._accept, daemon=True, name="docker-proxy").start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        with contextlib.suppress(OSError):
            self._listener.close()
        with self._lock:
            socks = list(self._socks)
        for s in socks:
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
            with contextlib.suppress(OSError):
                s.close()
        shutil.rmtree(self._dir, ignore_errors=True)

    # --- connections ---------------------------------------------------------------------

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _track(self, *socks: socket.socket) -> None:
        with self._lock:
            self._socks.update(socks)

    def _serve(self, client: socket.socket) -> None:
        upstream = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._track(client, upstream)
        try:
            upstream.connect(self.upstream)
            threading.Thread(target=_pipe, args=(upstream, client), daemon=True).start()
            buf = b""
            while not self._stop.is_set():
                head, buf = _read_head(client, buf)
                if head is None:
                    return
                line = head.split(b"\r\n", 1)[0].decode("latin-1")
                method, _, rest = line.partition(" ")
                target = rest.rsplit(" ", 1)[0]
                action = self._decide(f"{method} {target}")
                with self._lock:
                    self.seen.append((method, target, action))
                if action == "close":
                    return
                if action == "hold":
                    _wait_for_close(client, self._stop)
                    return
                if action.startswith("delay:"):
                    time.sleep(float(action.split(":", 1)[1]))
                headers = head.lower()
                length = _content_length(headers)
                if length is None and b"transfer-encoding: chunked" in headers:
                    upstream.sendall(head + buf)  # a streamed body: pipe the rest as it comes
                    _pipe(client, upstream)
                    return
                body_needed = length or 0
                while len(buf) < body_needed:
                    data = client.recv(1 << 16)
                    if not data:
                        return
                    buf += data
                upstream.sendall(head + buf[:body_needed])
                buf = buf[body_needed:]
                if b"upgrade:" in headers:  # exec start: the connection is a raw stream now
                    if buf:
                        upstream.sendall(buf)
                    _pipe(client, upstream)
                    return
        except OSError:
            return
        finally:
            for s in (client, upstream):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)
                with contextlib.suppress(OSError):
                    s.close()

    def _decide(self, line: str) -> str:
        with self._lock:
            for rule in self.rules:
                if rule.applies(line):
                    return f"delay:{rule.seconds}" if rule.action == "delay" else rule.action
        return "forward"


def _read_head(sock: socket.socket, buf: bytes) -> tuple[bytes | None, bytes]:
    """The next request's head (through the blank line) and what follows it."""
    while b"\r\n\r\n" not in buf:
        if len(buf) > _MAX_HEAD:
            return None, b""
        data = sock.recv(1 << 16)
        if not data:
            return None, b""
        buf += data
    head, _, rest = buf.partition(b"\r\n\r\n")
    return head + b"\r\n\r\n", rest


def _content_length(headers: bytes) -> int | None:
    m = re.search(rb"\r\ncontent-length:\s*(\d+)", headers)
    return int(m.group(1)) if m else None


def _wait_for_close(sock: socket.socket, stop: threading.Event) -> None:
    """Hold the connection: return once the client closes it (or the proxy stops)."""
    while not stop.is_set():
        ready, _, _ = select.select([sock], [], [], 0.2)
        if ready:
            try:
                if not sock.recv(1 << 16):
                    return
            except OSError:
                return


def _pipe(src: socket.socket, dst: socket.socket) -> None:
    """Copy `src` to `dst` until `src` ends; then end `dst`'s writing side."""
    try:
        while data := src.recv(1 << 16):
            dst.sendall(data)
    except OSError:
        pass
    with contextlib.suppress(OSError):
        dst.shutdown(socket.SHUT_WR)
