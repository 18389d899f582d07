"""The task's API sidecar: a small python3 http.server serving the tier's JSON data."""

from __future__ import annotations

from pathlib import Path

from tierlock.sandbox._config import SandboxConfig, ServiceSpec
from tierlock.tasks._data import read_text

SERVICE = "api"
PORT = 8080


def api_service() -> ServiceSpec:
    """The read-only city statistics API, reachable as http://api:8080."""
    return ServiceSpec(
        image=None,
        command=["python3", "/tmp/api.py", "/tmp/data.json"],
        files={
            "/tmp/api.py": read_text("networked/data/api.py"),
            "/tmp/data.json": read_text("networked/data/api_data.json"),
        },
        port=PORT,
        harden=True,
    )


def sandbox_config(policy_path: Path) -> SandboxConfig:
    """The tierlock sandbox config: the policy plus the `api` sidecar."""
    return SandboxConfig(policy=str(policy_path), services={SERVICE: api_service()})
