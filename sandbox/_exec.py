"""`docker exec` on the low-level API: stdin through the hijacked socket, bounded output, kill.

`run_exec` is blocking (the provider runs it in a worker thread). It streams stdin from a helper
thread while reading the multiplexed stdout/stderr frames, stops reading once a stream passes its
limit, and kills the exec'd process group when the output limit or the host-side deadline is hit.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import struct
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ._conformance import host_proc_visible

if TYPE_CHECKING:
    from docker import APIClient

PINNED_PATH = "/usr/sbin:/usr/bin:/sbin:/bin"
"""PATH for tierlock's own helper commands (never the image's, which a user may control)."""

_CHUNK = 1 << 16


@dataclass
class ExecOutcome:
    """What one exec produced."""

    exit_code: int | None
    stdout: bytes
    stderr: bytes
    overflow: bool = False
    host_timeout: bool = False
    elapsed: float = 0.0


class ContainerGone(Exception):
    """The container is not running (or no longer exists)."""


def kill_exec(api: APIClient, exec_id: str, container_id: str) -> None:
    """SIGKILL the exec's process group (the `timeout` wrapper and its command) when the host
    sees the container's processes; otherwise the in-container `timeout` ends it."""
    with contextlib.suppress(Exception):
        pid = int(api.exec_inspect(exec_id).get("Pid") or 0)
        if pid > 0 and host_proc_visible(pid, container_id):
            os.killpg(pid, signal.SIGKILL)


def _raw_socket(sock: Any) -> socket.socket:
    return getattr(sock, "_sock", sock)


def _recv_exact(raw: socket.socket, n: int, buf: bytearray) -> bytes | None:
    while len(buf) < n:
        data = raw.recv(_CHUNK)
        if not data:
            return None
        buf += data
    out = bytes(buf[:n])
    del buf[:n]
    return out


def run_exec(
    api: APIClient,
    container_id: str,
    argv: list[str],
    *,
    stdin: bytes | None = None,
    workdir: str | None = None,
    env: dict[str, str] | None = None,
    user: str | None = None,
    limit: int,
    deadline: float | None,
    started: Callable[[str], None] | None = None,
) -> ExecOutcome:
    """Run `argv` in the container; output per stream is capped at `limit` bytes.

    `deadline` (seconds) bounds the wait on the host side; the caller wraps `argv` in the
    in-container `timeout`, which normally fires first. `started` receives the exec id (so a
    cancelled caller can `kill_exec` it).
    """
    import docker.errors

    start = time.monotonic()
    try:
        ex = api.exec_create(
            container_id, argv, stdin=stdin is not None, stdout=True, stderr=True,
            user=user or "", workdir=workdir, environment=env or None,
        )
    except docker.errors.NotFound as e:
        raise ContainerGone(str(e)) from None
    except docker.errors.APIError as e:
        if e.status_code == 409:
            raise ContainerGone(str(e)) from None
        raise
    exec_id = ex["Id"]
    if started is not None:
        started(exec_id)
    sock = api.exec_start(exec_id, socket=True)
    raw = _raw_socket(sock)
    raw.settimeout(deadline)

    writer: threading.Thread | None = None
    if stdin is not None:
        def feed() -> None:
            with contextlib.suppress(OSError):
                view = memoryview(stdin)
                for i in range(0, len(view), _CHUNK):
                    raw.sendall(view[i : i + _CHUNK])
            with contextlib.suppress(OSError):
                raw.shutdown(socket.SHUT_WR)

        writer = threading.Thread(target=feed, daemon=True, name="tierlock-exec-stdin")
        writer.start()

    out = [bytearray(), bytearray(), bytearray()]
    overflow = host_timeout = False
    buf = bytearray()
    try:
        while True:
            header = _recv_exact(raw, 8, buf)
            if header is None:
                break
            stream, size = struct.unpack(">BxxxL", header)
            payload = _recv_exact(raw, size, buf)
            if payload is None:
                break
            target = out[stream if stream in (1, 2) else 1]
            room = limit - len(target)
            target += payload[: max(room, 0)]
            if len(payload) > room:
                overflow = True
                break
    except TimeoutError:
        host_timeout = True
    except OSError:
        pass
    finally:
        if overflow or host_timeout:
            kill_exec(api, exec_id, container_id)
        with contextlib.suppress(OSError):
            raw.close()
        with contextlib.suppress(Exception):
            sock.close()
        if writer is not None:
            writer.join(timeout=5)

    exit_code: int | None = None
    for _ in range(200):
        try:
            info = api.exec_inspect(exec_id)
        except docker.errors.APIError:
            break
        if not info.get("Running"):
            exit_code = info.get("ExitCode")
            break
        if overflow or host_timeout:
            break
        time.sleep(0.005)
    return ExecOutcome(exit_code, bytes(out[1]), bytes(out[2]), overflow, host_timeout,
                       time.monotonic() - start)
