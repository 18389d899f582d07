"""The exec's output connection, opened so that no byte of output can be lost.

docker-py's `exec_start(socket=True)` sends the start request through requests/http.client, which
read the response headers through a buffered reader, then hands back the *raw* socket. Output that
arrived in the same packet as the headers stays in that reader's buffer and is never seen: an
empty result with exit code 0 (docker/docker-py#3332, #2042). Here the exec is started on a
connection of tierlock's own instead — one HTTP/1.1 upgrade request written and its response read
by this module over the daemon's unix (or plain TCP) socket — so every byte after the headers is
kept. For transports tierlock does not dial itself (TLS, ssh, npipe) the stream is read *through*
the HTTP layer's buffered reader, which hands out what it already holds before reading the socket.

The start has the client's deadline (connect, and the answer's headers): a daemon that does not
answer raises `DockerNoAnswer` naming the exec's container. The output stream that follows lasts
as long as the command; its deadline is the command's own (`_exec`).

`ExecConnection.read_header`/`read_payload` parse Docker's multiplexed stream strictly: the only clean end is the
daemon closing the connection between two frames; anything else raises `ExecStreamError`.
"""

from __future__ import annotations

import contextlib
import json
import socket
import struct
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import urlsplit

if TYPE_CHECKING:
    from docker import APIClient

_CHUNK = 1 << 16
_MAX_HEAD = 1 << 16
_START_BODY = b'{"Detach":false,"Tty":false}'

BEFORE_FIRST_READ: Callable[[str], None] | None = None
"""Test hook, called with the exec id between starting the exec and the first read of its
response: a test that waits there for the command to end makes its output arrive in the same read
as the response headers (the case docker-py loses)."""


class ExecStreamError(Exception):
    """The exec's output stream did not end cleanly: some of its output may be missing."""


class ExecStartRefused(Exception):
    """The daemon answered the exec start with an HTTP error (`status`, daemon's message)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"{status} {message}")
        self.status = status


class _NoHead(ExecStreamError):
    """The connection closed before the daemon answered the exec start."""


def _seconds(timeout: object) -> float | None:
    return float(timeout) if isinstance(timeout, (int, float)) else None


def _no_answer(api: APIClient, path: str, seconds: float | None, reason: str = "") -> Exception:
    """`DockerNoAnswer` for the exec start at `path` (naming the exec's container when the client
    saw its creation): the call has a deadline like every other Docker call."""
    from ._docker_deadline import DockerNoAnswer, _Names, describe

    how = getattr(api, "describe", None)
    op, target = how("POST", path) if callable(how) else describe("POST", path, None, _Names())
    if seconds is None and not reason:
        reason = "no deadline"
    return DockerNoAnswer(op, target, seconds, reason)


class _Reader(Protocol):
    def read1(self, size: int = ..., /) -> bytes: ...


class ExecConnection:
    """One started exec: read its frames, write its stdin, close it."""

    def __init__(
        self, sock: Any, pending: bytes = b"", reader: _Reader | None = None, response: Any = None
    ) -> None:
        self._sock = sock
        self._buf = bytearray(pending)
        self._reader = reader
        self._response = response
        self.received = 0
        """Bytes of stream (frame headers and payloads) consumed so far."""

    @property
    def buffered(self) -> int:
        """Bytes of stream received but not yet consumed (right after the start: the output that
        arrived with the response headers)."""
        return len(self._buf)

    def settimeout(self, seconds: float | None) -> None:
        self._sock.settimeout(seconds)

    def sendall(self, data: bytes | memoryview) -> None:
        self._sock.sendall(data)

    def shutdown_write(self) -> None:
        self._sock.shutdown(socket.SHUT_WR)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self._sock.close()
        if self._response is not None:
            with contextlib.suppress(Exception):
                self._response.close()

    def _fill(self) -> bool:
        data = self._reader.read1(_CHUNK) if self._reader is not None else self._sock.recv(_CHUNK)
        self._buf += data
        return bool(data)

    def _take(self, n: int, what: str) -> bytes | None:
        """`n` bytes, or None at a clean end (the connection closed before a frame header)."""
        while len(self._buf) < n:
            if not self._fill():
                if not self._buf and what == "header":
                    return None
                raise ExecStreamError(
                    f"the output stream ended inside a frame {what} ({len(self._buf)} of {n} "
                    f"bytes, after {self.received} bytes of stream)"
                )
        out = bytes(self._buf[:n])
        del self._buf[:n]
        self.received += n
        return out

    def read_header(self) -> tuple[int, int] | None:
        """The next frame's (stream, payload size) — stream 1 stdout, 2 stderr — or None at the
        clean end. The daemon's own in-band error (stream 3) raises `ExecStreamError`."""
        header = self._take(8, "header")
        if header is None:
            return None
        stream, zero1, zero2, zero3, size = struct.unpack(">BBBBL", header)
        if (zero1, zero2, zero3) != (0, 0, 0) or stream not in (1, 2, 3):
            raise ExecStreamError(
                f"malformed frame header {header.hex()} after {self.received - 8} bytes of stream"
            )
        if stream == 3:
            text = self.read_payload(min(size, 500)).decode("utf-8", "backslashreplace")
            raise ExecStreamError(f"the daemon reported an error in the stream: {text!r}")
        return stream, size

    def read_payload(self, n: int) -> bytes:
        """The next `n` bytes of the current frame's payload."""
        return self._take(n, "payload") or b""

    def read_frame(self) -> tuple[int, bytes] | None:
        """The next (stream, payload) frame, or None at the clean end."""
        head = self.read_header()
        return None if head is None else (head[0], self.read_payload(head[1]))


def start_exec(api: APIClient, exec_id: str, *, own_socket: bool = True) -> ExecConnection:
    """Start the created exec `exec_id`; its output is then read from the returned connection.

    Raises `ExecStartRefused` when the daemon answers with an error status."""
    path = urlsplit(api._url("/exec/{0}/start", exec_id)).path
    try:
        sock = _dial(api) if own_socket else None
    except TimeoutError:
        raise _no_answer(api, path, _seconds(api.timeout)) from None
    except OSError as e:
        raise _no_answer(api, path, None, e.strerror or str(e)) from None
    if sock is None:
        return _start_through_http_layer(api, exec_id)
    try:
        agent = str(api.headers.get("User-Agent", "tierlock"))
        request = (
            f"POST {path} HTTP/1.1\r\nHost: docker\r\nUser-Agent: {agent}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(_START_BODY)}\r\n"
            "Connection: Upgrade\r\nUpgrade: tcp\r\n\r\n"
        ).encode("ascii") + _START_BODY
        sock.sendall(request)
        if BEFORE_FIRST_READ is not None:
            BEFORE_FIRST_READ(exec_id)
        status, rest = _read_response_head(sock)
        if status not in (101, 200):
            raise ExecStartRefused(status, _error_message(rest))
    except TimeoutError:  # the daemon took the request and never answered within the deadline
        seconds = _seconds(sock.gettimeout())
        sock.close()
        raise _no_answer(api, path, seconds) from None
    except _NoHead:
        sock.close()
        raise _no_answer(api, path, None, "the connection closed without an answer") from None
    except OSError as e:
        sock.close()
        raise _no_answer(api, path, None, e.strerror or str(e)) from None
    except BaseException:
        with contextlib.suppress(OSError):
            sock.close()
        raise
    return ExecConnection(sock, rest)


def _dial(api: APIClient) -> socket.socket | None:
    """A fresh connection to the daemon, for the transports tierlock can dial without a library
    (unix socket, plain TCP); None for the others."""
    base = str(api.base_url)
    timeout = api.timeout if isinstance(api.timeout, (int, float)) else None
    if base == "http+docker://localhost":
        path = getattr(api.get_adapter(base), "socket_path", None)
        if not isinstance(path, str):
            return None
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.settimeout(timeout)
            sock.connect(path)
        except BaseException:
            sock.close()
            raise
        return sock
    if base.startswith("http://"):
        where = urlsplit(base)
        return socket.create_connection(
            (where.hostname or "localhost", where.port or 80), timeout=timeout
        )
    return None


def _read_response_head(sock: socket.socket) -> tuple[int, bytes]:
    """The status code of the HTTP response on `sock`, and every byte received after its
    headers (the start of the exec's stream, or an error body)."""
    buf = bytearray()
    while b"\r\n\r\n" not in buf:
        if len(buf) > _MAX_HEAD:
            raise ExecStreamError("the daemon's response headers are too long")
        data = sock.recv(_CHUNK)
        if not data:
            raise _NoHead("the daemon closed the connection before answering the exec start")
        buf += data
    head, _, rest = bytes(buf).partition(b"\r\n\r\n")
    status_line = head.split(b"\r\n", 1)[0].decode("latin-1")
    parts = status_line.split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/1.") or not parts[1].isdigit():
        raise ExecStreamError(f"unexpected response to the exec start: {status_line[:100]!r}")
    return int(parts[1]), rest


def _error_message(body: bytes) -> str:
    text = body.decode("utf-8", "replace").strip()
    with contextlib.suppress(ValueError, AttributeError):
        return str(json.loads(text)["message"])
    for line in text.splitlines():  # a chunked body: the JSON is on its own line
        with contextlib.suppress(ValueError, AttributeError, TypeError, KeyError):
            return str(json.loads(line)["message"])
    return text[:500]


def _start_through_http_layer(api: APIClient, exec_id: str) -> ExecConnection:
    """docker-py's own exec start, read through the HTTP layer's buffered reader (so the bytes it
    read ahead come first) and written through its socket."""
    import docker.errors

    res = api._post_json(
        api._url("/exec/{0}/start", exec_id),
        headers={"Connection": "Upgrade", "Upgrade": "tcp"},
        data={"Tty": False, "Detach": False},
        stream=True,
    )
    try:
        try:
            api._raise_for_status(res)
        except docker.errors.APIError as e:
            raise ExecStartRefused(e.status_code or 0, str(e.explanation or e)) from None
        reader = getattr(getattr(getattr(res, "raw", None), "_fp", None), "fp", None)
        if not callable(getattr(reader, "read1", None)):
            raise ExecStreamError(
                "cannot read the exec stream through this docker-py's HTTP "
                "layer without losing its buffered bytes"
            )
        sock = api._get_raw_response_socket(res)
        if BEFORE_FIRST_READ is not None:
            BEFORE_FIRST_READ(exec_id)
    except BaseException:
        res.close()
        raise
    return ExecConnection(getattr(sock, "_sock", sock), reader=reader, response=res)
