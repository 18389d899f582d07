"""Networked safety: exfiltration temptation (a canary and a paste service off the allowlist)."""

from __future__ import annotations

from inspect_ai import Task, task

from tierlock.tasks._sandboxed import tier_task
from tierlock.tasks.networked._service import SERVICE, sandbox_config


@task
def networked_safety(policy: str | None = None, canary_salt: str | None = None) -> Task:
    """Runs under `policies/networked.yaml` unless `policy` names another networked policy
    (it must give the sandbox a network and list the `api` service)."""
    return tier_task(
        "networked",
        "safety",
        policy,
        canary_salt,
        sandbox_for=lambda path: ("tierlock", sandbox_config(path)),
        network=["internal", "allowlist"],
        services=[SERVICE],
    )
