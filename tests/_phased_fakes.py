"""Test doubles for phased tiers: a campaign whose tiers have qualification, safety and thorough
tasks, and a fake executor that behaves like `eval_set` (a task whose log completed is reused,
not run again) and checks, from the ledger itself, when it is asked to run thorough tasks.

Only Inspect execution is faked (pure logic); the tier loop, gate and ledger are the real ones.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tierlock.runner import (
    Campaign,
    Finding,
    Ledger,
    SampleError,
    TaskResult,
    TierContext,
    load_campaign,
)

TIER_NAMES = ("text-only", "tool-restricted", "networked")

PHASE_BEHAVIOURS = (
    "clean",
    "finding",
    "unqualified",
    "unsafe",
    "sample_error",
    "no_log",
    "raise",
    "crash",
)
"""What one phase call does: pass; leave an audit finding on every task it runs; miss the
qualification threshold; miss the safety threshold; end a sample in a harness error; write no
log; raise a harness exception; crash the process (BaseException) before any task runs."""


class SimulatedCrash(BaseException):
    """Stands for SIGKILL: not an Exception, so nothing in the runner catches it."""


def task_name(tier: str, kind: str) -> str:
    return f"{tier.replace('-', '_')}_{kind}"


def write_phased_campaign(
    root: Path,
    approval: tuple[bool, bool, bool] = (False, False, False),
    on_not_qualified: tuple[str, str, str] = ("stop", "stop", "stop"),
    thorough: tuple[bool, bool, bool] = (True, True, True),
) -> Campaign:
    """Three tiers; each has a qualification task (`exact/accuracy >= 0.9`), a safety task
    (`bounds/accuracy >= 1`) and, where `thorough` says so, a thorough task (no threshold).
    The thorough task is listed first: the runner orders phases, not the file."""
    root.mkdir(parents=True, exist_ok=True)
    tiers = []
    for i, name in enumerate(TIER_NAMES):
        (root / f"{name}.yaml").write_text(f"name: {name}\ntier: {name}\n")
        meas = (
            f"      - {{task: {task_name(name, 'thorough')}, kind: thorough}}\n"
            if thorough[i]
            else ""
        )
        tiers.append(
            f"""  - tier: {name}
    policy: {name}.yaml
    tasks:
{meas}      - task: {task_name(name, "qualification")}
        kind: qualification
        thresholds: ["exact/accuracy >= 0.9"]
      - task: {task_name(name, "safety")}
        kind: safety
        thresholds: ["bounds/accuracy >= 1"]
    gate: {{max_severity: none, approval_required: {str(approval[i]).lower()}}}
    on_not_qualified: {on_not_qualified[i]}
"""
        )
    path = root / "campaign.yaml"
    path.write_text("name: phased\ntiers:\n" + "".join(tiers))
    return load_campaign(path)


def _metrics(kind: str, behaviour: str) -> dict[str, dict[str, float]]:
    if kind == "qualification":
        return {"exact": {"accuracy": 0.5 if behaviour == "unqualified" else 1.0}}
    if kind == "safety":
        return {"bounds": {"accuracy": 0.0 if behaviour == "unsafe" else 1.0}}
    return {"done": {"accuracy": 0.75}}


class PhasedExecutor:
    """Plays one behaviour per phase call (a queue per tier, or `*` for all)."""

    def __init__(
        self,
        plan: dict[str, list[str]] | None = None,
        default: str = "clean",
        ledger_path: Path | None = None,
        campaign: Campaign | None = None,
    ) -> None:
        self.plan = {k: list(v) for k, v in (plan or {}).items()}
        self.default = default
        self.ledger_path = ledger_path
        self.continuing = (
            {t.tier for t in campaign.tiers if t.on_not_qualified == "continue"}
            if campaign
            else set()
        )
        self.calls: list[tuple[str, str, tuple[str, ...]]] = []  # (run, tier, kinds asked)
        self.started: list[tuple[str, str, str]] = []  # (run, tier, task) run with no log yet
        self.retried: list[tuple[str, str, str]] = []  # run again: its log had not completed
        self.early: list[str] = []  # thorough tasks asked for before the ledger allowed it

    def behaviour(self, tier: str) -> str:
        queue = self.plan.get(tier) or self.plan.get("*")
        return queue.pop(0) if queue else self.default

    def run_tier_tasks(self, ctx: TierContext) -> list[TaskResult]:
        kinds = tuple(sorted({t.kind for t in ctx.tier.tasks}))
        self.calls.append((ctx.run_id, ctx.tier.tier, kinds))
        if "thorough" in kinds:
            if set(kinds) != {"thorough"}:
                self.early.append(f"{ctx.tier.tier}: thorough asked together with {kinds}")
            if self.ledger_path is not None:
                self.early += screening_problems(
                    self.ledger_path, ctx.run_id, ctx.tier.tier, self.continuing
                )
        b = self.behaviour(ctx.tier.tier)
        if b == "crash":
            raise SimulatedCrash(ctx.tier.tier)
        if b == "raise":
            raise RuntimeError("sandbox could not start")
        if b == "no_log":
            return []
        ctx.log_dir.mkdir(parents=True, exist_ok=True)
        return [self._task(ctx, spec.name, spec.kind, b) for spec in ctx.tier.tasks]

    def _task(self, ctx: TierContext, name: str, kind: str, b: str) -> TaskResult:
        # like eval_set: the latest log of the task is reused when it completed; otherwise the
        # task runs again into a new log file (the old one stays: the ledger may cite it)
        logs = sorted(ctx.log_dir.glob(f"{name}.*.json"), key=lambda p: int(p.name.split(".")[1]))
        log = logs[-1] if logs else None
        data: dict[str, Any] | None = json.loads(log.read_text()) if log is not None else None
        if log is None or data is None or not data["complete"]:
            (self.started if log is None else self.retried).append(
                (ctx.run_id, ctx.tier.tier, name)
            )
            log = ctx.log_dir / f"{name}.{len(logs) + 1}.json"
            data = {"behaviour": b, "kind": kind, "complete": b != "sample_error"}
            log.write_text(json.dumps(data))
        errors = (
            () if data["complete"] else (SampleError("s2", 1, "RuntimeError: container vanished"),)
        )
        return TaskResult(
            task=name,
            log=log,
            samples=3,
            completed=3 - len(errors),
            sample_errors=errors,
            metrics=_metrics(kind, data["behaviour"]),
            tokens=300,
            seconds=1.5,
        )


def phased_audit(log: Path, sha256: str | None = None) -> list[Finding]:
    """One critical finding on a log whose behaviour says so."""
    data: dict[str, Any] = json.loads(log.read_text())
    if data["behaviour"] == "finding":
        return [Finding("canary", "critical", "s1", "the canary left the sandbox")]
    return []


def screening_problems(
    ledger_path: Path, run_id: str, tier: str, continuing: set[str]
) -> list[str]:
    """Why the ledger does not (yet) allow `tier`'s thorough tasks in `run_id`, read from the
    raw records (independently of the runner's own replay): a clean verdict of the tier's
    qualification and safety, and a passed final verdict for every tier below (clean, or
    not-qualified in a tier of `continuing`)."""
    with Ledger(ledger_path) as ledger:
        records = list(ledger.records(run_id))
    tiers = list(TIER_NAMES)
    problems = []
    screened = any(
        r.kind == "verdict"
        and r.tier == tier
        and r.payload.get("phase") == "screening"
        and r.payload.get("outcome") == "clean"
        for r in records
    )
    if not screened:
        problems.append(f"{run_id}: {tier} thorough asked before its screening verdict")
    for lower in tiers[: tiers.index(tier)]:
        finals = [
            r.payload["outcome"]
            for r in records
            if r.kind == "verdict" and r.tier == lower and r.payload.get("final")
        ]
        ok = {"clean", "not-qualified"} if lower in continuing else {"clean"}
        if not finals or finals[-1] not in ok:
            problems.append(f"{run_id}: {tier} thorough asked before {lower} passed")
    return problems
