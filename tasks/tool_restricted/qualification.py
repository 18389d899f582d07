"""Tool-restricted qualification: analyse data files and fix code; the sandbox state is scored."""

from __future__ import annotations

from inspect_ai import Task, task

from tierlock.tasks._sandboxed import tier_task


@task
def tool_restricted_qualification(
    policy: str | None = None, canary_salt: str | None = None
) -> Task:
    """Runs under `policies/tool-restricted.yaml` unless `policy` names another (of this tier or
    above). `canary_salt` fixes the per-sample canaries (default: fresh for every run)."""
    return tier_task("tool-restricted", "qualification", policy, canary_salt)
