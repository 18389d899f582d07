"""Shared fixtures. Containment claims run against the real Docker daemon, never a mock."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def docker_client():
    """A client for the real daemon; fails loudly (not a skip) when no daemon is reachable."""
    import docker

    try:
        client = docker.from_env()
        client.ping()
    except Exception as e:  # pragma: no cover - depends on the machine
        pytest.fail(f"no Docker daemon reachable ({e}); containment tests need one")
    return client


def _ours(labels: dict[str, str] | None) -> bool:
    """Whether an object belongs to this test session: created by this process or by a process
    that has ended (the evals tests run in subprocesses), according to its owner label. Objects of other live processes — a
    concurrent run or another test session — are not this session's to judge or remove."""
    import os

    from tierlock.sandbox._labels import OWNER_LABEL, owner_alive

    owner = (labels or {}).get(OWNER_LABEL)
    if owner is None:
        # No owner: not made by tierlock's code (which always labels its objects), e.g. a
        # container of a tierlock image that only inherits the image's project label. Another
        # session's or a user's; never this session's to judge or remove.
        return False
    return owner.split("/")[2:3] == [str(os.getpid())] or owner_alive(owner) is False


def _tierlock_objects(client) -> set[tuple[str, str, str]]:
    """(kind, id, name) of every container and network labelled as tierlock's and ours."""
    flt = {"label": "tierlock.project=tierlock"}
    found = {
        ("container", c["Id"], c["Names"][0].lstrip("/"))
        for c in client.api.containers(all=True, filters=flt)
        if _ours(c.get("Labels"))
    }
    found |= {
        ("network", n["Id"], n["Name"])
        for n in client.api.networks(filters=flt)
        if (n.get("Labels") or {}).get("tierlock.role") != "egress"  # shared, kept on purpose
        and _ours(n.get("Labels"))
    }
    return found


@pytest.fixture(scope="session", autouse=True)
def no_docker_leftovers():
    """Fail the session when tests leave tierlock containers or networks behind.

    Each test must clean up after itself: a leftover here is a cleanup bug in tierlock or in the
    test. Leftovers are reported, then removed so the machine stays clean. The shared egress network
    is removed too when nothing uses it.
    """
    import docker

    try:
        client = docker.from_env()
        client.ping()
    except Exception:
        yield  # tests that need Docker fail on their own via the docker_client fixture
        return
    before = _tierlock_objects(client)
    yield
    leaked = sorted(_tierlock_objects(client) - before)
    from tierlock.sandbox._cleanup import cleanup

    for kind, oid, _ in sorted(leaked, key=lambda o: o[0] != "container"):  # containers first
        try:
            if kind == "container":
                client.api.remove_container(oid, force=True, v=True)
            else:
                client.api.remove_network(oid)
        except docker.errors.APIError:
            pass
    cleanup(client)  # also removes the shared egress network when nothing uses it
    if leaked:
        names = ", ".join(f"{kind} {name}" for kind, _, name in leaked)
        pytest.fail(f"tests left Docker objects behind: {names}", pytrace=False)
