"""Building the shipped sandboxed tiers' tasks from their JSON data (per-run canaries, `@file`
references); the task itself is assembled by the public builder (`_authoring`): the policy (its
approval file, what the Docker host can give it) checked when a task is built, agent, scorers."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from inspect_ai import Task
from inspect_ai.dataset import MemoryDataset, Sample

from tierlock.sandbox import Tier
from tierlock.sandbox._policy import NetworkMode

from ._authoring import INSTRUCTIONS, approval_policies, assemble_task, checked_policy, tier_guard
from ._contract import Kind, SampleContract
from ._data import TASKS_DIR, canary, file_contents, new_salt, read_records, sha256

__all__ = ["INSTRUCTIONS", "TOOLS", "approval_policies", "build_samples", "tier_guard", "tier_task"]

TOOLS = ["bash", "python"]
_PLACEHOLDER = re.compile(r"\{\{canary(?::(\w+))?\}\}")


def _substitute(value: Any, secrets: dict[str, str]) -> Any:
    if isinstance(value, str):
        return _PLACEHOLDER.sub(lambda m: secrets[m.group(1) or "canary"], value)
    if isinstance(value, list):
        return [_substitute(v, secrets) for v in value]
    if isinstance(value, dict):
        return {k: _substitute(v, secrets) for k, v in value.items()}
    return value


def _file_text(tier_dir: str, value: str) -> str:
    """`@relative/path` reads a data file of the tier; anything else is the contents."""
    if value.startswith("@"):
        return (TASKS_DIR / tier_dir / "data" / value[1:]).read_text(encoding="utf-8")
    return value


def build_samples(tier: Tier, tier_dir: str, data_file: str, salt: str) -> list[Sample]:
    """Samples of one tier's JSON data, with canaries unique to this run and sample."""
    samples = []
    for record in read_records(f"{tier_dir}/data/{data_file}"):
        sid = record["id"]
        names = {m.group(1) or "canary" for m in _PLACEHOLDER.finditer(str(record))}
        secrets = {n: canary(sid, salt, n) for n in names}
        r = _substitute(record, secrets)
        files = {path: _file_text(tier_dir, v) for path, v in r.get("files", {}).items()}
        check = dict(r.get("check", {}))
        if "tests" in check:
            check["tests"] = {n: _file_text(tier_dir, v) for n, v in check["tests"].items()}
        protected = r.get("violations", {}).get("protected_paths", [])
        check["protected_sha256"] = {p: sha256(files[p]) for p in protected if p in files}
        contract = SampleContract(
            kind=r["kind"],
            tier=tier,
            category=r.get("category", ""),
            expected=r.get("expected", "solve"),
            violations=r.get("violations", {}),
            solution=r["solution"],
            shortcut=r.get("shortcut"),
            check=check,
        )
        samples.append(
            Sample(
                id=sid,
                input=r["input"],
                target=str(check.get("expected", "")),
                files={path: file_contents(text) for path, text in files.items()},
                setup=file_contents(r["setup"]) if r.get("setup") else None,
                metadata=contract.to_metadata(),
            )
        )
    return samples


def tier_task(
    tier: Tier,
    kind: Kind,
    policy: str | None,
    canary_salt: str | None,
    *,
    sandbox_for: Callable[[Path], tuple[str, Any]] = lambda path: ("tierlock", str(path)),
    network: list[NetworkMode] | None = None,
    services: list[str] | None = None,
) -> Task:
    """The `kind` task of a sandboxed `tier`, its data in `tasks/<tier>/data/<kind>.json`, under
    `policy` (default: the tier's shipped policy), checked to fit the tier, tools and network."""
    tier_dir = tier.replace("-", "_")
    task = f"{tier_dir}_{kind}"
    path, loaded = checked_policy(task, tier, policy, TOOLS, network, services)
    samples = build_samples(tier, tier_dir, f"{kind}.json", canary_salt or new_salt())
    return assemble_task(
        MemoryDataset(samples, name=f"tierlock-{tier}-{kind}"),
        tier=tier,
        kind=kind,
        task=task,
        policy_path=path,
        policy=loaded,
        sandbox=sandbox_for(path),
        tools=TOOLS,
        scorer=None,
        instructions=None,
        message_limit=40,
        network=network,
        services=services,
    )
