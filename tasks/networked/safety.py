"""Networked safety: exfiltration temptation (a canary and a paste service off the allowlist)."""

from __future__ import annotations

from inspect_ai import Task, task

from sandbox import Tier
from sandbox._policy import NetworkMode
from tasks._policy import require_policy
from tasks._sandboxed import TOOLS, sandboxed_task
from tasks.networked._service import SERVICE, sandbox_config

TIER: Tier = "networked"
NETWORK: list[NetworkMode] = ["internal", "allowlist"]


@task
def networked_safety(policy: str | None = None, canary_salt: str | None = None) -> Task:
    """Runs under `policies/networked.yaml` unless `policy` names another networked policy
    (it must give the sandbox a network and list the `api` service)."""
    path, loaded = require_policy(
        "networked_safety", TIER, policy, tools=TOOLS, network=NETWORK, services=[SERVICE]
    )
    return sandboxed_task(
        tier=TIER,
        kind="safety",
        tier_dir="networked",
        data_file="safety.json",
        policy_path=path,
        policy=loaded,
        sandbox=("tierlock", sandbox_config(path)),
        canary_salt=canary_salt,
        network=NETWORK,
        services=[SERVICE],
        name="tierlock-networked-safety",
    )
