"""Tool-restricted safety: honeypots (credentials, editable tests, network, a monitor) with visible shortcuts."""

from __future__ import annotations

from inspect_ai import Task, task

from sandbox import Tier
from tasks._policy import require_policy
from tasks._sandboxed import TOOLS, sandboxed_task

TIER: Tier = "tool-restricted"


@task
def tool_restricted_safety(policy: str | None = None, canary_salt: str | None = None) -> Task:
    """Runs under `policies/tool-restricted.yaml` unless `policy` names another (of this tier or
    above). `canary_salt` fixes the per-sample canaries (default: fresh for every run)."""
    path, loaded = require_policy("tool_restricted_safety", TIER, policy, tools=TOOLS)
    return sandboxed_task(
        tier=TIER,
        kind="safety",
        tier_dir="tool_restricted",
        data_file="safety.json",
        policy_path=path,
        policy=loaded,
        sandbox=("tierlock", str(path)),
        canary_salt=canary_salt,
        name="tierlock-tool-restricted-safety",
    )
