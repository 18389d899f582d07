"""SIGTERM and SIGHUP end a run the way Ctrl-C does, and leave no Docker object behind.

Inspect handles Ctrl-C: its control server (uvicorn) stops, asyncio's runner (or Inspect's trio
wrapper) cancels the eval, every sample's sandbox cleanup runs (the provider removes containers,
sidecars and networks) and the logs are written as cancelled. SIGTERM and SIGHUP have no handler
of their own: the default action kills the process on the spot, leaving its sandboxes until the
next start. With `install_termination_handler()`:

1. The first SIGTERM/SIGHUP calls the process's current SIGINT handler, exactly as a Ctrl-C
   would (Inspect's control server, asyncio's runner, or Python's `KeyboardInterrupt`), and
   starts a watchdog: a process still alive `TIERLOCK_TERM_GRACE` seconds later (default 30)
   removes its own objects and exits.
2. A second signal removes this process's objects synchronously (the containers the provider
   tracks, then everything labelled with this process's run id: sidecars, networks, volumes)
   and exits at once.
3. At exit after a signal, the same removal runs, then the process exits with 128+signal
   (unless the caller reports and exits itself: `tierlock run`).

Handlers are installed only from the main thread and only over the default disposition: a
handler someone else installed, or an ignored signal (`nohup`), is left alone. The one exception
is Inspect's control server, which captures SIGINT/SIGTERM while it serves and restores what it
found when it stops: ours replaces its SIGTERM capture and routes through its SIGINT capture, so
the server still shuts down first; once it has restored the default, ours is put back.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from types import FrameType
from typing import Any, NoReturn

from . import _labels
from ._cleanup import cleanup
from ._docker import connect

TERMINATION_SIGNALS = (signal.SIGTERM, signal.SIGHUP)
GRACE_ENV = "TIERLOCK_TERM_GRACE"
DEFAULT_GRACE = 30.0
"""Seconds a process may take to shut down after a signal before the watchdog ends it."""
REMOVAL_TIMEOUT = 60
"""Seconds the last-resort removal may take (a hung daemon must not hang the exit)."""
REARM_INTERVAL = 0.1


@dataclass
class _State:
    installed: set[int] = field(default_factory=set)
    received: int | None = None
    count: int = 0
    caller_exits: bool = False
    via_server: bool = False


_state = _State()


def install_termination_handler(*, caller_exits: bool = False) -> bool:
    """Make SIGTERM/SIGHUP behave like Ctrl-C (see the module docstring); idempotent.

    `caller_exits`: the caller reports the interruption and picks the exit code (it catches
    `KeyboardInterrupt`); otherwise a line goes to stderr at the signal and the process exits
    with 128+signal. Once set by any caller it stays set. Returns whether a handler is in place
    (False outside the main thread, or when every signal already has someone else's handler).
    """
    if threading.current_thread() is not threading.main_thread():
        return False
    _state.caller_exits = _state.caller_exits or caller_exits
    for sig in TERMINATION_SIGNALS:
        current = signal.getsignal(sig)
        if current is _on_signal:
            continue
        if current is signal.SIG_DFL or _is_control_server(current):
            signal.signal(sig, _on_signal)
            _state.installed.add(sig)
    return any(signal.getsignal(s) is _on_signal for s in TERMINATION_SIGNALS)


def received_signal() -> int | None:
    """The termination signal this process received (through this module), if any."""
    return _state.received


def raise_if_terminated() -> None:
    """Raise `KeyboardInterrupt` when a termination signal was received: nothing more may be
    recorded as if the work had finished."""
    if _state.received is not None:
        raise KeyboardInterrupt


def signal_name(signum: int) -> str:
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"


def remove_own_objects(timeout: float = REMOVAL_TIMEOUT) -> bool:
    """Remove this process's sandboxes now, blocking for at most `timeout` seconds; returns
    whether the removal finished. Runs in its own thread with its own Docker client, so it is
    safe from a signal handler (no lock the interrupted code may hold is taken)."""

    pools = sys.modules.get("tierlock.sandbox._warm_pool")
    if pools is not None:  # warm pools stop filling (their containers are tracked and labelled)
        with contextlib.suppress(Exception):
            pools.close_all()

    def work() -> None:
        with contextlib.suppress(Exception):
            client = connect(timeout=int(timeout))
            for cid in _tracked_containers():
                with contextlib.suppress(Exception):
                    client.api.remove_container(cid, force=True, v=True)
            cleanup(client, run=_labels.run_id())

    worker = threading.Thread(target=work, name="tierlock-last-resort-cleanup", daemon=True)
    worker.start()
    worker.join(timeout)
    return not worker.is_alive()


def _tracked_containers() -> list[str]:
    """The provider's live containers (read without its lock: the interrupted main thread may
    hold it)."""
    boxes = sys.modules.get("tierlock.sandbox._sample_box")
    live: set[str] = getattr(boxes, "_live", set())
    for _ in range(10):
        with contextlib.suppress(RuntimeError):  # changed size during the copy
            return list(live)
    return []


# --- the handler -----------------------------------------------------------------------------


def _on_signal(signum: int, frame: FrameType | None) -> None:
    _state.count += 1
    name = signal_name(signum)
    if _state.count > 1:
        _say(f"tierlock: {name} again: removing this run's sandboxes and exiting now")
        remove_own_objects()
        _exit_now(128 + signum)
    _state.received = signum
    if not _state.caller_exits:
        _say(
            f"tierlock: {name} received: interrupting as for Ctrl-C (sandboxes are removed; "
            "send it again to exit at once)"
        )
    _start_watchdog(signum)
    _watch_restores()
    _interrupt(frame)


def _interrupt(frame: FrameType | None) -> None:
    """What Ctrl-C would do: call the SIGINT handler, or raise `KeyboardInterrupt` when there
    is none (SIGINT ignored, as for a background job of a non-interactive shell)."""
    handler = signal.getsignal(signal.SIGINT)
    if callable(handler):
        _state.via_server = _is_control_server(handler)
        handler(signal.SIGINT, frame)
    else:
        raise KeyboardInterrupt


def _is_control_server(handler: Any) -> bool:
    """Whether a handler is Inspect's control server capturing signals (uvicorn's
    `Server.handle_exit`, bound to the running server)."""
    uvicorn = sys.modules.get("uvicorn.server")
    server_class = getattr(uvicorn, "Server", None)
    return server_class is not None and isinstance(getattr(handler, "__self__", None), server_class)


def _watch_restores() -> None:
    """On the running asyncio loop (the main thread), put our handler back once the control
    server restored the default, so a second signal still removes everything; and when the
    server re-raised SIGINT into nothing (ignored), interrupt as Ctrl-C would have."""
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        return

    def check() -> None:
        for sig in _state.installed:
            if signal.getsignal(sig) is signal.SIG_DFL:
                signal.signal(sig, _on_signal)
        if _state.via_server and not _is_control_server(signal.getsignal(signal.SIGINT)):
            _state.via_server = False
            if not callable(signal.getsignal(signal.SIGINT)):
                raise KeyboardInterrupt
        if not loop.is_closed():
            loop.call_later(REARM_INTERVAL, check)

    loop.call_soon_threadsafe(check)


def _grace() -> float:
    try:
        return max(0.0, float(os.environ.get(GRACE_ENV, DEFAULT_GRACE)))
    except ValueError:
        return DEFAULT_GRACE


def _start_watchdog(signum: int) -> None:
    grace = _grace()

    def wait() -> None:
        time.sleep(grace)
        _say(
            f"tierlock: still running {grace:g}s after {signal_name(signum)}: removing this "
            "run's sandboxes and exiting"
        )
        remove_own_objects()
        _exit_now(128 + signum)

    threading.Thread(target=wait, name="tierlock-termination-watchdog", daemon=True).start()


def _say(line: str) -> None:
    """One line on stderr, written without Python's buffered streams (safe in a handler)."""
    with contextlib.suppress(OSError):
        os.write(2, (line + "\n").encode())


def _exit_now(code: int, flush: Callable[[], None] | None = None) -> NoReturn:
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    if flush is not None:
        with contextlib.suppress(Exception):
            flush()
    os._exit(code)


@atexit.register
def _at_exit() -> None:
    """After a signal: remove what is left of this process's objects, then exit 128+signal.

    Registered at import, before the provider's own exit hook, so it runs after it (and after
    every exit hook registered later)."""
    if _state.received is None:
        return
    remove_own_objects()
    if not _state.caller_exits:
        _exit_now(128 + _state.received, flush=logging.shutdown)
