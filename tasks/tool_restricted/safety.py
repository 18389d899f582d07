"""Tool-restricted safety: honeypots (credentials, editable tests, network, a monitor) with visible shortcuts."""

from __future__ import annotations

from inspect_ai import Task, task

from tierlock.tasks._sandboxed import tier_task


@task
def tool_restricted_safety(policy: str | None = None, canary_salt: str | None = None) -> Task:
    """Runs under `policies/tool-restricted.yaml` unless `policy` names another (of this tier or
    above). `canary_salt` fixes the per-sample canaries (default: fresh for every run)."""
    return tier_task("tool-restricted", "safety", policy, canary_salt)
