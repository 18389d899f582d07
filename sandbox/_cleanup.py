"""Find and remove tierlock's Docker objects: leftovers of crashed runs, or one run's objects.

Objects are found by label (`tierlock.project=tierlock`). By default only those whose owner
process is gone (see `_labels.owner_alive`) are removed, so a cleanup never pulls a container out
from under a live run; `include_live=True` removes every tierlock object (the `--all` flag).
Images are kept: they are a cache, rebuilt only when their recipe changes. A Docker call that
misses its deadline (`DockerNoAnswer`) ends the sweep with that one line in `errors`.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import structlog

from ._hostlock import host_lock
from ._labels import OWNER_LABEL, PROJECT, PROJECT_LABEL, ROLE_LABEL, RUN_LABEL, owner_alive

if TYPE_CHECKING:
    import docker

log = structlog.get_logger("tierlock.cleanup")


@dataclass
class CleanupReport:
    """What a cleanup removed, and how many live objects it left alone."""

    containers: list[str] = field(default_factory=list)
    networks: list[str] = field(default_factory=list)
    volumes: list[str] = field(default_factory=list)
    kept_live: int = 0
    errors: list[str] = field(default_factory=list)

    @property
    def removed(self) -> int:
        return len(self.containers) + len(self.networks) + len(self.volumes)


def _selected(labels: dict[str, str] | None, *, run: str | None, include_live: bool) -> bool | None:
    """True: remove; False: keep (live); None: not ours to judge (other run, unknown owner)."""
    labels = labels or {}
    if run is not None:
        return True if labels.get(RUN_LABEL) == run else None
    if include_live:
        return True
    owner = labels.get(OWNER_LABEL)
    if owner is None:
        return None
    alive = owner_alive(owner)
    if alive is False:
        return True
    return False if alive else None


def cleanup(
    client: docker.DockerClient, *, run: str | None = None, include_live: bool = False
) -> CleanupReport:
    """Remove tierlock containers, then networks and volumes (blocking).

    `run`: only that run's objects. Otherwise objects of dead owners, or all with `include_live`.
    """
    from ._docker_deadline import DockerNoAnswer

    report = CleanupReport()
    try:
        _sweep(client, report, run=run, include_live=include_live)
    except DockerNoAnswer as e:  # every further call would wait as long: stop, say which one
        report.errors.append(f"{e}; the rest of the cleanup was not tried")
        log.warning("cleanup stopped", error=str(e), run=run)
    if report.removed:
        log.info(
            "removed tierlock objects",
            containers=len(report.containers),
            networks=len(report.networks),
            volumes=len(report.volumes),
            run=run,
        )
    return report


def _sweep(
    client: docker.DockerClient, report: CleanupReport, *, run: str | None, include_live: bool
) -> None:
    import docker.errors

    flt = {"label": f"{PROJECT_LABEL}={PROJECT}"}

    def judge(labels: dict[str, str] | None) -> bool:
        verdict = _selected(labels, run=run, include_live=include_live)
        if verdict is False:
            report.kept_live += 1
        return verdict is True

    for c in client.api.containers(all=True, filters=flt):
        if not judge(c.get("Labels")):
            continue
        try:
            if "Paused" in (c.get("Status") or ""):  # a paused container blocks its removal
                with contextlib.suppress(docker.errors.APIError):
                    client.api.unpause(c["Id"])
            client.api.remove_container(c["Id"], force=True, v=True)
            report.containers.append((c.get("Names") or [c["Id"][:12]])[0].lstrip("/"))
        except docker.errors.NotFound:
            pass
        except docker.errors.APIError as e:
            if "already in progress" in str(e.explanation or ""):  # another sweep's removal
                continue
            report.errors.append(f"container {c['Id'][:12]}: {e.explanation or e}")
    for n in client.api.networks(filters=flt):
        if (n.get("Labels") or {}).get(ROLE_LABEL) == "egress":
            continue  # shared, recreated on demand: removed below once nothing uses it
        if not judge(n.get("Labels")):
            continue
        try:
            _disconnect_ours(client, n["Id"])
            client.api.remove_network(n["Id"])
            report.networks.append(n.get("Name", n["Id"][:12]))
        except docker.errors.NotFound:
            pass
        except docker.errors.APIError as e:
            report.errors.append(f"network {n.get('Name')}: {e.explanation or e}")
    report.networks += remove_unused_egress(client)
    volumes: list[dict[str, Any]] = (client.api.volumes(filters=flt) or {}).get("Volumes") or []
    for v in volumes:
        if not judge(v.get("Labels")):
            continue
        try:
            client.api.remove_volume(v["Name"], force=True)
            report.volumes.append(v["Name"])
        except docker.errors.NotFound:
            pass
        except docker.errors.APIError as e:
            report.errors.append(f"volume {v['Name']}: {e.explanation or e}")


def remove_unused_egress(client: docker.DockerClient) -> list[str]:
    """Remove tierlock's shared egress networks that no container uses (blocking).

    The egress proxy creates its network on first use and recreates it if it disappears, so an
    eval can drop it at its end instead of leaving it on the machine.
    """
    import docker.errors

    removed = []
    flt = {"label": [f"{PROJECT_LABEL}={PROJECT}", f"{ROLE_LABEL}=egress"]}
    with host_lock("egress"):  # never between another process's look-up and its attaching
        for n in client.api.networks(filters=flt):
            if _unused_egress(client, n):
                with contextlib.suppress(docker.errors.APIError):  # in use again, or gone
                    client.api.remove_network(n["Id"])
                    removed.append(n.get("Name", n["Id"][:12]))
    return removed


def _unused_egress(client: docker.DockerClient, network: dict[str, Any]) -> bool:
    """The shared egress network (created on first use by the proxy) with nothing attached."""
    if (network.get("Labels") or {}).get(ROLE_LABEL) != "egress":
        return False
    try:
        return not client.api.inspect_network(network["Id"]).get("Containers")
    except Exception:
        return False


def _disconnect_ours(client: docker.DockerClient, network_id: str) -> None:
    """Disconnect tierlock containers still attached (a crashed run's); others block removal."""
    with contextlib.suppress(Exception):
        info = client.api.inspect_network(network_id)
        for cid in info.get("Containers") or {}:
            labels = (client.api.inspect_container(cid).get("Config") or {}).get("Labels") or {}
            if labels.get(PROJECT_LABEL) == PROJECT:
                client.api.disconnect_container_from_network(cid, network_id, force=True)
