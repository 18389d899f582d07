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
