"""What one sample's sandbox owns (`SampleBox`): its container, uid lease, network, counters and
tripwire; and how it is removed: at sample end, retried at task end, at process exit.
(A warm pool's containers are tracked here too from their creation: `_warm_pool`.)

The ids of this process's live containers are kept here so that an interrupted run can still
remove them (`_signals` reads `_live` without its lock).
"""

from __future__ import annotations

import atexit
import contextlib
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import anyio
import structlog

from . import _labels
from ._cleanup import cleanup as cleanup_objects
from ._docker import get_client, run_sync
from ._errors import SandboxError
from ._translate import user_ids
from ._uids import UidLease, lease_uid

if TYPE_CHECKING:
    import docker

    from ._network import SampleNetwork
    from ._policy import Policy
    from ._reaper import ProcKey
    from ._sandbox_policy import LoadedSandboxPolicy
    from ._tripwire import Tripwire

log = structlog.get_logger("tierlock.sandbox")


@dataclass
class Counters:
    timeouts: int = 0
    output_limit_hits: int = 0
    survivors_killed: int = 0


@dataclass
class SampleBox:
    """Everything a sample's sandbox owns."""

    client: docker.DockerClient
    container_id: str
    name: str
    loaded: LoadedSandboxPolicy
    policy: Policy
    """The policy as this sandbox runs it: `loaded.policy` with the leased uid/gid as its user."""
    lease: UidLease
    network: SampleNetwork | None = None
    counters: Counters = field(default_factory=Counters)
    removed: bool = False
    running: int = 0
    """Commands in flight; when the last returns, the model's leftover processes are killed."""
    init_pid: int = 0
    """Host pid of the container's PID 1 (0 when unknown)."""
    model_acted: bool = False
    """Whether the model has generated yet; processes left by commands before that (the
    sample's setup) are the operator's and are kept (`operator`)."""
    operator: frozenset[ProcKey] = frozenset()
    tripwire: Tripwire | None = None
    """The sample's tripwires (`_tripwire`), checked after each command."""
    on_removed: Callable[[], None] | None = None
    """Called once when the box is removed (the warm pool's count of sandboxes in use)."""


def lease_for(policy: Policy) -> UidLease:
    """This sandbox's uid slot, counted from the policy's user (see `_uids`)."""
    ids = user_ids(policy.process.user)
    if ids is None:
        raise SandboxError(f"process.user {policy.process.user!r} is not a known user or uid")
    return lease_uid(*ids)


def as_user(policy: Policy, lease: UidLease) -> Policy:
    """`policy` running as the leased uid/gid (everything else unchanged)."""
    if lease.user == policy.process.user:
        return policy
    process = policy.process.model_copy(update={"user": lease.user})
    return policy.model_copy(update={"process": process})


# --- objects to remove at exit -----------------------------------------------------------------

_live: set[str] = set()
_retry: set[str] = set()
_live_lock = threading.Lock()


def track(container_id: str, alive: bool) -> None:
    """Note a container as live (removed at exit if still there) or as gone."""
    with _live_lock:
        (_live.add if alive else _live.discard)(container_id)


@atexit.register
def _remove_live_at_exit() -> None:
    """Last resort (e.g. an interrupted run): remove this process's remaining sandboxes."""
    with _live_lock:
        ids = list(_live)
        _live.clear()
    if not ids:
        return
    with contextlib.suppress(Exception):
        client = get_client()
        for cid in ids:
            with contextlib.suppress(Exception):
                client.api.remove_container(cid, force=True, v=True)
        cleanup_objects(client, run=_labels.run_id())


async def retry_removals(client: docker.DockerClient) -> None:
    """Remove again the containers whose removal failed at sample end."""
    for cid in list(_retry):
        with contextlib.suppress(Exception):
            await run_sync(client.api.remove_container, cid, force=True, v=True)
            _retry.discard(cid)
            track(cid, False)


async def remove_box(box: SampleBox) -> None:
    """Remove the container and the sample network (idempotent, never raises)."""
    if box.removed:
        return
    box.removed = True
    with anyio.CancelScope(shield=True):
        try:
            await run_sync(box.client.api.remove_container, box.container_id, force=True, v=True)
            track(box.container_id, False)
        except Exception as e:
            import docker.errors

            if isinstance(e, docker.errors.NotFound):
                track(box.container_id, False)
            else:
                _retry.add(box.container_id)
                log.warning("could not remove sandbox", container=box.name, error=str(e))
        if box.container_id not in _retry:
            box.lease.release()
        if box.network is not None:
            try:
                await box.network.teardown()
            except Exception as e:
                log.warning("could not remove sample network", container=box.name, error=str(e))
        if box.on_removed is not None:
            box.on_removed()
