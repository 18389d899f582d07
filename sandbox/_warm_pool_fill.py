"""One warm-pool container: created, started and conformance-checked ahead of any sample
(`fill_one`, blocking, in the pool's own thread), re-checked when a sample takes it (`recheck`),
and removed when it is not handed out (`discard`).

A pooled container is created exactly as a sample's own would be (`_translate.container_settings`
with the run's labels, the policy's user on a leased uid slot) and checked by the same code
(`_sample_conform.check_now`); only the recording waits for the sample that takes it. What was
checked is kept (`Pooled.seen`) so the take can tell a container that died, restarted or was
changed since: such a container is discarded, never handed out.
"""

from __future__ import annotations

import contextlib
import time
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import structlog

from . import _labels
from ._docker import create_container
from ._host_check import engine_refusal
from ._sample_box import SampleBox, as_user, lease_for, track
from ._sample_conform import check_now, profile_sha256
from ._translate import container_settings

if TYPE_CHECKING:
    import docker

    from ._sandbox_policy import LoadedSandboxPolicy

log = structlog.get_logger("tierlock.sandbox")

POOL_LABEL = "tierlock.pooled"
"""Set (to the creation time) on a warm pool's containers; `tierlock.sample` is `pool` on them
(labels cannot change once a sample takes one; its records name the container)."""


@dataclass
class Pooled:
    """A container checked ahead of need, and what it was checked against."""

    box: SampleBox
    image: str
    digest: str
    """The policy's digest when checked (`Policy.digest`)."""
    seccomp: str | None
    """SHA-256 of the seccomp profile handed to Docker (the policy's file, as it was)."""
    checked_at: float
    mismatches: list[str] = field(default_factory=list)
    seen: dict[str, Any] = field(default_factory=dict)
    """The container as inspected after the check: id, image, config, host config, start."""


def fill_one(
    client: docker.DockerClient, loaded: LoadedSandboxPolicy, image: str, task: str | None
) -> Pooled:
    """Create, start and check one container for `loaded` (blocking). A container that does not
    conform is removed and `Pooled.mismatches` says why; any other failure removes what was
    created and raises."""
    lease = lease_for(loaded.policy)
    policy = as_user(loaded.policy, lease)
    digest = loaded.policy.digest()
    labels = _labels.object_labels(
        role="default", task=task, sample="pool", policy_hash=digest, policy_name=policy.name
    )
    labels[POOL_LABEL] = f"{time.time():.3f}"
    name = f"tierlock-{_labels.run_id()}-pool-{uuid.uuid4().hex[:8]}"
    box: SampleBox | None = None
    try:
        settings = container_settings(
            policy, image=image, labels=labels, name=name, policy_dir=loaded.policy_dir,
            sandbox=True,
        )
        try:
            container = create_container(client, settings)
        except Exception as e:
            raise engine_refusal(e, loaded.path, "create") or e from None
        track(container.id, True)
        box = SampleBox(client, container.id, name, loaded, policy, lease)
        mismatches = check_now(box, image, container.attrs)
        pooled = Pooled(
            box, image, digest, profile_sha256(loaded.policy, loaded.policy_dir), time.time(),
            mismatches,
        )
        if mismatches:
            discard(pooled)
        else:
            pooled.seen = _seen(client.api.inspect_container(container.id))
        return pooled
    except BaseException:
        if box is not None:
            discard_box(box)
        else:
            lease.release()
        raise


def _seen(attrs: dict[str, Any]) -> dict[str, Any]:
    state = attrs.get("State") or {}
    return {
        "id": attrs.get("Id"),
        "image": attrs.get("Image"),
        "config": attrs.get("Config"),
        "host_config": attrs.get("HostConfig"),
        "running": bool(state.get("Running")),
        "paused": bool(state.get("Paused")),
        "pid": state.get("Pid"),
        "started_at": state.get("StartedAt"),
        "restarts": attrs.get("RestartCount"),
    }


def recheck(pooled: Pooled) -> str | None:
    """Why a pooled container may not be handed out (None: it may): it must still run, as the
    same process, with the configuration that was checked (blocking; one inspect)."""
    box = pooled.box
    try:
        now = _seen(box.client.api.inspect_container(box.container_id))
    except Exception as e:
        return f"cannot be inspected ({type(e).__name__}: {e})"
    if not now["running"] or now["paused"]:
        return "is not running"
    changed = [k for k, v in pooled.seen.items() if now.get(k) != v]
    return f"changed since it was checked ({', '.join(changed)})" if changed else None


def rename_for(pooled: Pooled, sample: str) -> None:
    """Give a taken container the name a sample's own would have (kept when Docker refuses)."""
    box = pooled.box
    name = f"tierlock-{_labels.run_id()}-{_labels.sanitize(sample, 40)}-{uuid.uuid4().hex[:6]}"
    try:
        box.client.api.rename(box.container_id, name)
    except Exception as e:
        log.info("pooled sandbox keeps its name", container=box.name, error=str(e))
        return
    box.name = name


def discard(pooled: Pooled) -> None:
    discard_box(pooled.box)


def discard_box(box: SampleBox) -> None:
    """Remove a container no sample holds, and free its uid slot (blocking, never raises; a
    failed removal stays tracked for the exit-time removal and the next start's sweep)."""
    if box.removed:
        return
    box.removed = True
    try:
        box.client.api.remove_container(box.container_id, force=True, v=True)
    except Exception as e:
        import docker.errors

        if not isinstance(e, docker.errors.NotFound):
            log.warning("could not remove pooled sandbox", container=box.name, error=str(e))
            return
    track(box.container_id, False)
    with contextlib.suppress(Exception):
        box.lease.release()
