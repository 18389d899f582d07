"""Tool-restricted thorough: measurement tasks over the tier's whole surface (multi-step).

A database built with SQL, rotated and compressed logs, a two-bug fix across modules, a command
of one's own, parallel worker processes, an archive and a replay of stock updates: more samples
and more steps than qualification, run only once the tier's qualification and safety passed.
"""

from __future__ import annotations

from inspect_ai import Task, task

from tierlock.tasks._sandboxed import tier_task


@task
def tool_restricted_thorough(policy: str | None = None, canary_salt: str | None = None) -> Task:
    """Runs under `policies/tool-restricted.yaml` unless `policy` names another (of this tier or
    above). `canary_salt` fixes the per-sample canaries (default: fresh for every run)."""
    return tier_task("tool-restricted", "thorough", policy, canary_salt)
