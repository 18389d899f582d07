"""Tool-restricted qualification: analyse data files and fix code; the sandbox state is scored."""

from __future__ import annotations

from inspect_ai import Task, task

from sandbox import Tier
from tasks._policy import require_policy
from tasks._sandboxed import TOOLS, sandboxed_task

TIER: Tier = "tool-restricted"


@task
def tool_restricted_qualification(policy: str | None = None, canary_salt: str | None = None) -> Task:
    """Runs under `policies/tool-restricted.yaml` unless `policy` names another (of this tier or
    above). `canary_salt` fixes the per-sample canaries (default: fresh for every run)."""
    path, loaded = require_policy("tool_restricted_qualification", TIER, policy, tools=TOOLS)
    return sandboxed_task(
        tier=TIER,
        kind="qualification",
        tier_dir="tool_restricted",
        data_file="qualification.json",
        policy_path=path,
        policy=loaded,
        sandbox=("tierlock", str(path)),
        canary_salt=canary_salt,
        name="tierlock-tool-restricted-qualification",
    )
