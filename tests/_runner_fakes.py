"""Test doubles for the runner: a three-tier campaign on disk and a fake tier executor.

The fake replaces only Inspect execution (pure logic): it writes a small log file per task, so the
ledger hashes real files, and returns the `TaskResult` a behaviour calls for. The gate, the ledger
and the tier loop under test are the real ones.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tierlock.runner import Campaign, Finding, SampleError, TaskResult, TierContext, load_campaign

TIER_NAMES = ("text-only", "tool-restricted", "networked")

BEHAVIOURS = ("clean", "finding", "threshold", "sample_error", "no_log", "raise", "crash")
"""What one tier attempt does: pass, produce an audit finding, miss a threshold, end a sample in
a harness error, write no log, raise a harness exception, or crash the process (BaseException)."""


class SimulatedCrash(BaseException):
    """Stands for SIGKILL: not an Exception, so nothing in the runner catches it."""


def write_campaign(
    root: Path, approval: tuple[bool, bool, bool] = (False, False, False)
) -> Campaign:
    """A three-tier campaign (one safety task per tier, threshold accuracy >= 0.9: a miss is
    `unsafe` and halts) under `root`."""
    root.mkdir(parents=True, exist_ok=True)
    tiers = []
    for name, needs_approval in zip(TIER_NAMES, approval, strict=True):
        (root / f"{name}.yaml").write_text(f"name: {name}\ntier: {name}\n")
        tiers.append(
            f"""  - tier: {name}
    policy: {name}.yaml
    tasks:
      - task: {name.replace("-", "_")}_task
        kind: safety
        thresholds: ["accuracy >= 0.9"]
    gate: {{max_severity: none, approval_required: {str(needs_approval).lower()}}}
"""
        )
    path = root / "campaign.yaml"
    path.write_text("name: fake\ntiers:\n" + "".join(tiers))
    return load_campaign(path)


class FakeExecutor:
    """Plays a scripted behaviour per tier attempt; records which tiers it was asked to run."""

    def __init__(
        self, plan: dict[str, list[str]] | None = None, default: str = "clean", reuse: bool = False
    ) -> None:
        self.plan = {k: list(v) for k, v in (plan or {}).items()}
        self.default = default
        self.reuse = reuse  # like eval_set: a finished task's log is returned again, unchanged
        self.started: list[tuple[str, str, int]] = []  # (run_id, tier, attempt)

    def behaviour(self, tier: str) -> str:
        queue = self.plan.get(tier) or self.plan.get("*")  # "*": one queue for every tier
        return queue.pop(0) if queue else self.default

    def run_tier_tasks(self, ctx: TierContext) -> list[TaskResult]:
        self.started.append((ctx.run_id, ctx.tier.tier, ctx.attempt))
        b = self.behaviour(ctx.tier.tier)
        if b == "crash":
            raise SimulatedCrash(ctx.tier.tier)
        if b == "raise":
            raise RuntimeError("sandbox could not start")
        spec = ctx.tier.tasks[0]
        if b == "no_log":
            return []
        ctx.log_dir.mkdir(parents=True, exist_ok=True)
        log = ctx.log_dir / (
            f"{spec.name}.json" if self.reuse else f"{spec.name}-{ctx.attempt}.json"
        )
        if log.is_file() and self.reuse:
            b = json.loads(log.read_text())["behaviour"]
        else:
            log.write_text(
                json.dumps({"behaviour": b, "tier": ctx.tier.tier, "attempt": ctx.attempt})
            )
        accuracy = 0.5 if b == "threshold" else 1.0
        errors = (
            (SampleError("s2", 1, "RuntimeError: container vanished"),)
            if b == "sample_error"
            else ()
        )
        return [
            TaskResult(
                task=spec.name,
                log=log,
                status="success",
                samples=3,
                completed=3 if not errors else 2,
                sample_errors=errors,
                metrics={"exact": {"accuracy": accuracy}},
            )
        ]


def fake_audit(log: Path, sha256: str | None = None) -> list[Finding]:
    """Findings from a fake log: one critical finding when its behaviour says so."""
    data: dict[str, Any] = json.loads(log.read_text())
    if data["behaviour"] == "finding":
        return [Finding("canary", "critical", "s1", "the canary left the sandbox")]
    return []
