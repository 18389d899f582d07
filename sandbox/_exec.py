"""`docker exec` on the low-level API: stdin through the hijacked socket, bounded output, kill.

`run_exec` is blocking (the provider runs it in a worker thread). It streams stdin from a helper
thread while reading the multiplexed stdout/stderr frames, stops reading once a stream passes its
limit, and kills the exec'd process group when the output limit or the host-side deadline is hit.
Output is complete or an error: the stream is read on a connection that no HTTP library buffers
(`_exec_socket`), and a stream that ends other than cleanly raises `ExecOutputIncomplete`.
`exec_permission_error` tells a command the kernel refused to execute (not an executable file)
from the command's own result, as Inspect's sandbox contract wants it told.
"""

from __future__ import annotations

import contextlib
import errno
import os
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from inspect_ai.util._sandbox.environment import SandboxUnavailableError

from ._conformance_kernel import host_proc_visible
from ._exec_socket import ExecConnection, ExecStartRefused, ExecStreamError, start_exec

if TYPE_CHECKING:
    from docker import APIClient

PINNED_PATH = "/usr/sbin:/usr/bin:/sbin:/bin"
"""PATH for tierlock's own helper commands (never the image's, which a user may control)."""

TIMEOUT_WRAPPER = "/usr/bin/timeout"
"""The in-container `timeout` every command runs under (GNU coreutils)."""

_CHUNK = 1 << 16
_QUOTES = (("\u2018", "\u2019"), ("'", "'"))  # GNU quotes as the locale says: ‘x’ or 'x'


@dataclass
class ExecOutcome:
    """What one exec produced: complete output, or (`overflow`) each stream's first `limit`
    bytes, or (`host_timeout`) what arrived before the host-side deadline."""

    exit_code: int | None
    stdout: bytes
    stderr: bytes
    overflow: bool = False
    host_timeout: bool = False
    elapsed: float = 0.0


class ContainerGone(Exception):
    """The container is not running (or no longer exists)."""


class ExecOutputIncomplete(SandboxUnavailableError):
    """The command's output could not be read completely; what arrived is not shown as its
    result. (A `SandboxUnavailableError`: a tool call fails with this message, the sample goes
    on.)"""


def kill_exec(api: APIClient, exec_id: str, container_id: str) -> None:
    """SIGKILL the exec's process group (the `timeout` wrapper and its command) when the host
    sees the container's processes; otherwise the in-container `timeout` ends it."""
    with contextlib.suppress(Exception):
        pid = int(api.exec_inspect(exec_id).get("Pid") or 0)
        if pid > 0 and host_proc_visible(pid, container_id):
            os.killpg(pid, signal.SIGKILL)


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
    cancelled caller can `kill_exec` it). Raises `ContainerGone` when the container is not
    running and `ExecOutputIncomplete` when the output stream broke off or the exit status
    cannot be read.
    """
    start = time.monotonic()
    exec_id = _create(api, container_id, argv, stdin is not None, workdir, env, user)
    if started is not None:
        started(exec_id)
    try:
        conn = start_exec(api, exec_id)
    except ExecStartRefused as e:
        if e.status in (404, 409):
            raise ContainerGone(str(e)) from None
        raise ExecOutputIncomplete(f"the daemon refused to start the command ({e})") from None
    except (OSError, ExecStreamError) as e:
        kill_exec(api, exec_id, container_id)
        raise ExecOutputIncomplete(f"could not start the command ({e})") from None
    conn.settimeout(deadline)
    writer = _feed(conn, stdin) if stdin is not None else None

    out = {1: bytearray(), 2: bytearray()}
    overflow = host_timeout = False
    broken: str | None = None
    try:
        while (head := conn.read_header()) is not None:
            stream, size = head
            room = limit - len(out[stream])
            if size > room:  # read no more than the cap: memory stays bounded by `limit`
                out[stream] += conn.read_payload(max(room, 0))
                overflow = True
                break
            out[stream] += conn.read_payload(size)
    except TimeoutError:
        host_timeout = True
    except (OSError, ExecStreamError) as e:
        broken = str(e) or type(e).__name__
    finally:
        if overflow or host_timeout or broken:
            kill_exec(api, exec_id, container_id)
        conn.close()
        if writer is not None:
            writer.join(timeout=5)
    if broken is not None:
        raise ExecOutputIncomplete(
            f"the command's output could not be read completely ({broken}); it is not shown, "
            "and the command may have run"
        )

    exit_code: int | None = None
    if not (overflow or host_timeout):
        # The stream can end before the command does (it closed its output): wait for its end
        # within the deadline, as the stream itself would have been waited for.
        until = None if deadline is None else start + deadline
        exit_code, ended = _exit_status(api, exec_id, until)
        if not ended:
            host_timeout = True
            kill_exec(api, exec_id, container_id)
        elif exit_code is None:
            raise ExecOutputIncomplete(
                "the command's output ended but the daemon reports no "
                "exit status for it; its result is unknown"
            )
    else:
        exit_code, _ = _exit_status(api, exec_id, time.monotonic())
    return ExecOutcome(
        exit_code, bytes(out[1]), bytes(out[2]), overflow, host_timeout, time.monotonic() - start
    )


def _create(
    api: APIClient,
    container_id: str,
    argv: list[str],
    stdin: bool,
    workdir: str | None,
    env: dict[str, str] | None,
    user: str | None,
) -> str:
    import docker.errors

    try:
        ex = api.exec_create(
            container_id,
            argv,
            stdin=stdin,
            stdout=True,
            stderr=True,
            user=user or "",
            workdir=workdir,
            environment=env or None,
        )
    except docker.errors.NotFound as e:
        raise ContainerGone(str(e)) from None
    except docker.errors.APIError as e:
        if e.status_code == 409:
            raise ContainerGone(str(e)) from None
        raise
    return str(ex["Id"])


def _feed(conn: ExecConnection, stdin: bytes) -> threading.Thread:
    """Write `stdin` to the exec from a helper thread, then close the writing side."""

    def feed() -> None:
        with contextlib.suppress(OSError):
            view = memoryview(stdin)
            for i in range(0, len(view), _CHUNK):
                conn.sendall(view[i : i + _CHUNK])
        with contextlib.suppress(OSError):
            conn.shutdown_write()

    writer = threading.Thread(target=feed, daemon=True, name="tierlock-exec-stdin")
    writer.start()
    return writer


def _exit_status(api: APIClient, exec_id: str, until: float | None) -> tuple[int | None, bool]:
    """(exit code, ended): the exec's exit code once the daemon reports it ended, polling until
    the monotonic time `until` (None: no bound); (None, False) if it still runs then."""
    import docker.errors

    pause = 0.002
    while True:
        try:
            info = api.exec_inspect(exec_id)
        except docker.errors.APIError:
            return None, True
        if not info.get("Running"):
            code = info.get("ExitCode")
            return (code if isinstance(code, int) else None), True
        if until is not None and time.monotonic() >= until:
            return None, False
        time.sleep(pause)
        pause = min(pause * 2, 0.1)


def exec_permission_error(
    exit_code: int | None, stdout: bytes, stderr: bytes, cmd: list[str]
) -> PermissionError | None:
    """The `PermissionError` to raise for `cmd` when the `timeout` wrapper could not execute it
    (`cmd[0]` is not an executable file, a directory, on a `noexec` mount), else None.

    Inspect's contract (its `self_check.test_exec_permission_error`, its docker sandbox) raises
    here instead of returning a result. Only the wrapper's own report counts: exit 126, nothing on
    stdout, and stderr exactly its one line naming `cmd[0]` (a command that ran and failed with
    126 itself, e.g. a shell refusing a script, stays an ordinary result).
    """
    if exit_code != 126 or stdout or not cmd:
        return None
    target = cmd[0]
    for left, right in _QUOTES:
        line = f"{TIMEOUT_WRAPPER}: failed to run command {left}{target}{right}: Permission denied\n"
        if stderr == line.encode("utf-8", errors="surrogateescape"):
            return PermissionError(errno.EACCES, "Permission denied executing command", target)
    return None
