"""The Docker client, and running its blocking calls off the event loop.

One client per process (docker-py clients are thread safe), with a connection pool large enough for
many samples in parallel. Every blocking call goes through `run_sync`, which runs it in a worker
thread, so the event loop never waits on the daemon, and every call has a deadline
(`_docker_deadline`: a call that misses it raises `DockerNoAnswer` naming the call and container).
"""

from __future__ import annotations

import asyncio
import functools
import os
import threading
import weakref
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

import anyio
import anyio.to_thread

from ._errors import SandboxError

if TYPE_CHECKING:
    import docker

T = TypeVar("T")

MIN_API_VERSION = "1.41"
"""Docker Engine 20.10."""

_POOL_SIZE = 64
_THREADS = 128
_client: docker.DockerClient | None = None
_client_pid: int | None = None
_client_lock = threading.Lock()
_limiters: weakref.WeakKeyDictionary[Any, anyio.CapacityLimiter] = weakref.WeakKeyDictionary()


def connect(*, timeout: float | None = None) -> docker.DockerClient:
    """A new client for the daemon named by the environment (`DOCKER_HOST`...), each of whose
    calls waits at most `timeout` seconds (default: `TIERLOCK_DOCKER_TIMEOUT`, else 120).

    Raises `SandboxError` with one line when no daemon is reachable.
    """
    from ._docker_deadline import DeadlineDockerClient, docker_timeout

    seconds = docker_timeout() if timeout is None else timeout
    try:
        client = DeadlineDockerClient.from_env(timeout=seconds, max_pool_size=_POOL_SIZE)
        client.ping()
    except Exception as e:
        where = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
        reason = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise SandboxError(
            f"Docker is not reachable at {where} ({reason}); start the Docker daemon "
            "or set DOCKER_HOST"
        ) from None
    return client


def get_client() -> docker.DockerClient:
    """The process's shared client (created on first use, again after a fork)."""
    global _client, _client_pid
    with _client_lock:
        if _client is None or _client_pid != os.getpid():
            _client = connect()
            _client_pid = os.getpid()
        return _client


def _get_limiter() -> anyio.CapacityLimiter:
    """A thread limiter per event loop (each `eval()` runs its own loop)."""
    try:
        key: Any = asyncio.get_running_loop()
    except RuntimeError:  # another async backend (trio): its default limiter
        return anyio.to_thread.current_default_thread_limiter()
    limiter = _limiters.get(key)
    if limiter is None:
        limiter = _limiters[key] = anyio.CapacityLimiter(_THREADS)
    return limiter


async def run_sync(fn: Callable[..., T], *args: Any, abandon_on_cancel: bool = False,
                   **kwargs: Any) -> T:
    """Run a blocking call in a worker thread; the event loop keeps running meanwhile.

    `abandon_on_cancel`: on cancellation return at once and leave the thread to finish (for
    calls that wait on a command; the caller then ends that command)."""
    call = functools.partial(fn, *args, **kwargs) if kwargs else functools.partial(fn, *args)
    return await anyio.to_thread.run_sync(call, limiter=_get_limiter(),
                                          abandon_on_cancel=abandon_on_cancel)


async def get_client_async() -> docker.DockerClient:
    """`get_client` off the event loop (the first call pings the daemon)."""
    return await run_sync(get_client)


def create_container(client: docker.DockerClient, settings: dict[str, Any]) -> Any:
    """`client.containers.create(**settings)`, plus what docker-py cannot say: `masked_paths`
    becomes `HostConfig.MaskedPaths` (which replaces the daemon's defaults)."""
    from docker.models.containers import _create_container_args

    kwargs = dict(settings)
    masked = kwargs.pop("masked_paths", None)
    if masked is None:
        return client.containers.create(**kwargs)
    kwargs["version"] = client.api._version
    args = _create_container_args(kwargs)
    args["host_config"]["MaskedPaths"] = list(masked)
    created = client.api.create_container(**args)
    return client.containers.get(created["Id"])
