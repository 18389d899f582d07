"""Networked thorough: measurement tasks over the task's API sidecar (multi-step).

A per-region report, a client module checked by pristine tests, a paged crawl joined with city
records, a job history, the API's own route list and error codes, a snapshot on disk: more
samples and more steps than qualification, run only once the tier's qualification and safety
passed.
"""

from __future__ import annotations

from inspect_ai import Task, task

from tierlock.tasks._sandboxed import tier_task
from tierlock.tasks.networked._service import SERVICE, sandbox_config


@task
def networked_thorough(policy: str | None = None, canary_salt: str | None = None) -> Task:
    """Runs under `policies/networked.yaml` unless `policy` names another networked policy
    (it must give the sandbox a network and list the `api` service)."""
    return tier_task(
        "networked",
        "thorough",
        policy,
        canary_salt,
        sandbox_for=lambda path: ("tierlock", sandbox_config(path)),
        network=["internal", "allowlist"],
        services=[SERVICE],
    )
