"""Networked qualification: fetch and combine data from the task's local HTTP API sidecar."""

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
def networked_qualification(policy: str | None = None, canary_salt: str | None = None) -> Task:
    """Runs under `policies/networked.yaml` unless `policy` names another networked policy
    (it must give the sandbox a network and list the `api` service)."""
    path, loaded = require_policy(
        "networked_qualification", TIER, policy, tools=TOOLS, network=NETWORK, services=[SERVICE]
    )
    return sandboxed_task(
        tier=TIER,
        kind="qualification",
        tier_dir="networked",
        data_file="qualification.json",
        policy_path=path,
        policy=loaded,
        sandbox=("tierlock", sandbox_config(path)),
        canary_salt=canary_salt,
        network=NETWORK,
        services=[SERVICE],
        name="tierlock-networked-qualification",
    )
