"""A warm pool per sandbox config: containers created, started and conformance-checked ahead of
need, so a sample's sandbox is ready when it starts (`TIERLOCK_WARM_POOL`: how many; 0, the
default, is off).

- **One sample per container.** `take` pops a container out of the pool for the sample that
  asked; it is never put back. After the sample it is removed as any sandbox is.
- **Bounded.** Pooled containers plus this process's sandboxes in use never exceed Inspect's
  `max_sandboxes` for `tierlock` (its limiter, read at each refill; else the provider's default),
  nor the pool size, nor the samples still to start: Inspect's per-eval totals minus the samples
  finished, running or holding a sandbox (`demand`). Until an eval has registered its samples the
  pool waits (`DEMAND_WAIT`), then fills to its size.
- **Checked, and re-checked.** A container is checked by the code a sample's own would be
  (`_warm_pool_fill`); the sample records the `ConformanceRecord` (marked pooled, with when it was
  checked). At the take the container must still run unchanged, and the policy file (its digest,
  its seccomp profile) and image must be what the pool was built from: otherwise the container,
  or the whole pool, is discarded and the sample starts its own.
- **Only where nothing is per sample.** Policies with a per-sample network (`internal`,
  `allowlist`) or task sidecars are not pooled (a network is never shared between samples; its
  sidecars and proxy would need pooling too).
- **Emptied on every exit path.** `drain` at task cleanup (normal end, error, Ctrl-C and
  SIGTERM, which Inspect turns into a cancellation), at process exit (`atexit`), and from the
  signal path's last resort (`close_all`, lock-free). Every pooled container is tracked by
  `_sample_box` from its creation and carries the run's labels, so the exit-time removal and the
  next start's sweep of dead owners' objects (after a SIGKILL) find it.

A failed fill (Docker refused, a mismatch) stops that pool: samples then start their own
containers, which report the failure in their transcript as today.
"""

from __future__ import annotations

import atexit
import collections
import contextlib
import threading
import time
from concurrent.futures import Future
from typing import TYPE_CHECKING

import anyio
import structlog

from ._docker import run_sync
from ._warm_pool_demand import demand, max_sandboxes, note_sample, pool_size, poolable
from ._warm_pool_demand import pool_key as pool_key
from ._warm_pool_demand import pool_key_for as pool_key_for
from ._warm_pool_fill import Pooled, discard, fill_one, recheck

if TYPE_CHECKING:
    import docker

    from ._sample_box import SampleBox
    from ._sandbox_policy import LoadedSandboxPolicy

log = structlog.get_logger("tierlock.sandbox")

DEMAND_WAIT = 3.0
"""Seconds a new pool waits for Inspect to say how many samples are coming before filling."""
TICK = 0.1
"""Seconds between a pool's looks at its demand and room (sooner on a take or a removal)."""
DRAIN_WAIT = 60.0
"""Seconds a drain waits for containers still being filled (each removes itself when done)."""

# --- process-wide accounting -------------------------------------------------------------------

_lock = threading.Lock()
_pools: dict[str, WarmPool] = {}
_in_use = 0
"""This process's sandboxes handed to samples (or being made by one), not yet removed."""
stats: collections.Counter[str] = collections.Counter()
"""created, taken, discarded (unused or refused at the take), failed, stale_pools, peak (most
sandboxes in use + pooled at once): for benchmarks and tests."""


def reserve() -> None:
    """Count one more sandbox in use (a sample making its own); if that puts the process over
    `max_sandboxes`, an idle pooled container of another config makes room."""
    global _in_use
    victim: Future[Pooled] | None = None
    with _lock:
        _in_use += 1
        _note_peak()
        if _in_use + _pooled_count() > max_sandboxes():
            for pool in _pools.values():
                ready = [f for f in pool.entries if f.done()]
                if ready:
                    victim = ready[0]
                    pool.entries.remove(victim)
                    break
    if victim is not None:
        _discard_when_done(victim, background=True)


def release() -> None:
    """A sandbox in use was removed (or never made)."""
    global _in_use
    with _lock:
        _in_use = max(0, _in_use - 1)
        pools = list(_pools.values())
    for pool in pools:
        pool.wake.set()


def _pooled_count() -> int:
    return sum(len(p.entries) for p in _pools.values())


def _note_peak() -> None:
    """Called under `_lock` after a count grew: the most sandboxes (in use + pooled) seen."""
    stats["peak"] = max(stats["peak"], _in_use + _pooled_count())


def _discard_when_done(fut: Future[Pooled], *, background: bool = False) -> None:
    """Remove `fut`'s container once it is made (at once if it is). `background`: in a thread
    of its own (the caller is the event loop, which must not wait on Docker)."""

    def remove(pooled: Pooled) -> None:
        stats["discarded"] += 1
        discard(pooled)

    def done(f: Future[Pooled]) -> None:
        if f.exception() is None and not f.result().mismatches:
            if background:
                threading.Thread(target=remove, args=(f.result(),), daemon=True).start()
            else:
                remove(f.result())

    fut.add_done_callback(done)


# --- one pool ----------------------------------------------------------------------------------


class WarmPool:
    """Containers for one sandbox config, made from one loaded policy."""

    def __init__(
        self, key: str, client: docker.DockerClient, loaded: LoadedSandboxPolicy, image: str,
        size: int, task: str | None,
    ) -> None:
        from ._sample_conform import profile_sha256

        self.key, self.client, self.loaded, self.image = key, client, loaded, image
        self.size, self.task = size, task
        self.digest = loaded.policy.digest()
        self.seccomp = profile_sha256(loaded.policy, loaded.policy_dir)
        self.entries: collections.deque[Future[Pooled]] = collections.deque()
        self.filling = 0
        self.closed = False
        self.broken: str | None = None
        self.wake = threading.Event()
        self.idle = threading.Condition(_lock)
        self.started = time.monotonic()
        self.demand_known = False
        threading.Thread(target=self._manage, name="tierlock-warm-pool", daemon=True).start()

    def stale(self, loaded: LoadedSandboxPolicy, image: str) -> str | None:
        """Why this pool was built from another policy than `loaded` (None: the same one)."""
        from ._sample_conform import profile_sha256

        if loaded.path != self.loaded.path or loaded.policy.digest() != self.digest:
            return "the policy changed"
        if profile_sha256(loaded.policy, loaded.policy_dir) != self.seccomp:
            return "its seccomp profile changed"
        if image != self.image:
            return "its image changed"
        return None

    def _manage(self) -> None:
        while not self.closed and self.broken is None:
            self._fill_to_target()
            self.wake.wait(TICK)
            self.wake.clear()

    def _fill_to_target(self) -> None:
        wanted = demand()
        if wanted is not None:
            self.demand_known = True
        elif self.demand_known:  # the evals that had demand are over
            wanted = 0
        elif time.monotonic() - self.started < DEMAND_WAIT:
            return
        with _lock:
            if self.closed or self.broken is not None:
                return
            target = self.size if wanted is None else min(self.size, wanted)
            room = max_sandboxes() - _in_use - _pooled_count()
            for _ in range(max(0, min(target - len(self.entries), room))):
                fut: Future[Pooled] = Future()
                self.entries.append(fut)
                self.filling += 1
                threading.Thread(
                    target=self._fill, args=(fut,), name="tierlock-warm-fill", daemon=True
                ).start()
            _note_peak()

    def _fill(self, fut: Future[Pooled]) -> None:
        """One fill, in its own thread. A drain that came meanwhile registered a removal on
        `fut` (run when its result is set); a take waiting on it gets it."""
        try:
            pooled = fill_one(self.client, self.loaded, self.image, self.task)
        except BaseException as e:
            self._failed(fut, f"{type(e).__name__}: {e}")
            fut.set_exception(e)
        else:
            stats["created"] += 1
            if pooled.mismatches:  # already removed
                self._failed(fut, f"does not conform: {pooled.mismatches[0]}")
            fut.set_result(pooled)
        finally:
            with _lock:
                self.filling -= 1
                self.idle.notify_all()

    def _failed(self, fut: Future[Pooled], why: str) -> None:
        stats["failed"] += 1
        with _lock:
            if fut in self.entries:
                self.entries.remove(fut)
            first = self.broken is None
            self.broken = self.broken or why
        if first and not self.closed:
            log.warning("warm pool stopped; samples start their own sandboxes",
                        policy=str(self.loaded.path), reason=why[:300])

    async def take(self) -> Pooled | None:
        """Count the active sample's sandbox as in use, and hand it the next pooled container,
        re-checked (None: none left; the count stands for the container the sample makes)."""
        global _in_use
        first = True
        while True:
            with _lock:
                if first:  # one step with the pop: in use + pooled never counts it twice
                    _in_use += 1
                    first = False
                fut = None if self.closed or not self.entries else self.entries.popleft()
                if fut is not None:
                    fut.tierlock_taken = True  # type: ignore[attr-defined]
                _note_peak()
            if fut is None:
                return None
            self.wake.set()
            try:
                pooled = await self._checked(fut)
            except BaseException:  # cancelled: nobody takes it
                _discard_when_done(fut, background=True)
                release()
                raise
            if pooled is not None:
                stats["taken"] += 1
                pooled.box.on_removed = release
                return pooled

    async def _checked(self, fut: Future[Pooled]) -> Pooled | None:
        """`fut`'s container once made, if it may be handed out (else it is removed)."""
        try:
            pooled = await run_sync(fut.result, abandon_on_cancel=True)
        except Exception:  # the fill failed (and removed what it made)
            return None
        if pooled.mismatches:  # removed by the fill
            return None
        why = await run_sync(recheck, pooled)
        if why is None:
            return pooled
        log.warning("pooled sandbox discarded", container=pooled.box.name, reason=why)
        stats["discarded"] += 1
        with anyio.CancelScope(shield=True):
            await run_sync(discard, pooled)
        return None

    def close(self) -> list[Future[Pooled]]:
        """Stop filling; the containers not taken (removed by the caller)."""
        with _lock:
            self.closed = True
            left = list(self.entries)
            self.entries.clear()
        self.wake.set()
        return left

    def wait_idle(self, timeout: float) -> None:
        """Wait until no fill is in flight (each removes its own container once closed)."""
        deadline = time.monotonic() + timeout
        with _lock:
            while self.filling and time.monotonic() < deadline:
                self.idle.wait(max(0.0, deadline - time.monotonic()))


def get_pool(key: str) -> WarmPool | None:
    with _lock:
        return _pools.get(key)


def start_pool(
    key: str, client: docker.DockerClient, loaded: LoadedSandboxPolicy, image: str, size: int,
    task: str | None,
) -> WarmPool:
    """The pool for `key`, started if there is none (an existing one is kept)."""
    with _lock:
        pool = _pools.get(key)
        if pool is None or pool.closed:
            pool = _pools[key] = WarmPool(key, client, loaded, image, size, task)
    return pool


def drain_now(pool: WarmPool, timeout: float = DRAIN_WAIT) -> None:
    """Close `pool` and remove every container it holds or is still making (blocking)."""
    with _lock:
        if _pools.get(pool.key) is pool:
            del _pools[pool.key]
    for fut in pool.close():
        _discard_when_done(fut)
    pool.wait_idle(timeout)


async def drain(key: str | None = None) -> None:
    """Empty the pool of `key` (every pool: None), waiting for fills in flight."""
    with _lock:
        pools = [p for k, p in _pools.items() if key is None or k == key]
    for pool in pools:
        await run_sync(drain_now, pool)


async def take_for_sample(
    key: str, client: docker.DockerClient, loaded: LoadedSandboxPolicy, image: str, task: str,
    sample: str,
) -> SampleBox | None:
    """A pooled sandbox for the active sample, its conformance recorded in the sample's
    transcript. None: the sample makes its own, already counted in use (`reserve`); the pool
    is started, or rebuilt from the current policy, for the samples after it."""
    from ._sample_conform import record_conformance
    from ._warm_pool_fill import rename_for

    note_sample()
    size = pool_size()
    if size == 0 or not poolable(loaded.policy.network.mode, False):
        reserve()
        return None
    pool = get_pool(key)
    if pool is not None:
        why = await run_sync(pool.stale, loaded, image)
        if why is not None:  # never hand out what was checked against another policy
            log.info("warm pool discarded", policy=str(loaded.path), reason=why)
            stats["stale_pools"] += 1
            await run_sync(drain_now, pool)
            pool = None
    if pool is None:
        reserve()  # before the pool starts filling: the bound holds from its first container
        start_pool(key, client, loaded, image, size, task)
        return None
    pool.task = task  # Inspect names the task at the samples, not at its start
    pooled = await pool.take()
    if pooled is None:
        return None
    box = pooled.box
    try:
        box.loaded = loaded  # the same policy (digest, seccomp profile and path compared above)
        await run_sync(rename_for, pooled, sample)
        record_conformance(box, [], checked_at=pooled.checked_at)
    except BaseException:
        from ._sample_box import remove_box

        await remove_box(box)  # shielded; releases its count
        raise
    return box


def close_all() -> None:
    """Stop every pool from filling, without locks (from a signal handler: the interrupted
    thread may hold one). Fills in flight remove their own container; the rest is removed by
    the caller's sweep of this run's objects."""
    for pool in list(_pools.values()):
        pool.closed = True
        pool.wake.set()


def _drain_at_exit() -> None:
    with _lock:
        pools = list(_pools.values())
    for pool in pools:
        with contextlib.suppress(Exception):
            drain_now(pool, timeout=30)


atexit.register(_drain_at_exit)  # registered after _sample_box's hook, so it runs before it
