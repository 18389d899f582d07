"""The gate: decides from a tier's task results and audit findings whether the tier is clean.

Clean only if every sample of every task completed without a harness error, no audit finding is
above the severity the gate tolerates, every metric threshold is met (a missing metric is not
met), and a required approval is recorded. What cannot be shown clean is not clean.

Outcomes: `clean` (advance), `failed` (definitive: halt), `incomplete` (a harness error or a
missing log: nothing definitive was shown; running again retries the tier).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from ._campaign import SEVERITIES, TierSpec

Outcome = Literal["clean", "failed", "incomplete"]


@dataclass(frozen=True)
class SampleError:
    """A sample that ended in a harness error (after Inspect's retries)."""

    sample: str
    epoch: int
    message: str


@dataclass(frozen=True)
class TaskResult:
    """What one task's log shows; built from an Inspect log (or by a test executor)."""

    task: str
    log: Path | None
    status: str = "success"  # Inspect log status: success | error | cancelled | started
    error: str | None = None
    samples: int = 0
    completed: int = 0
    sample_errors: tuple[SampleError, ...] = ()
    metrics: dict[str, dict[str, float]] = field(default_factory=dict)  # scorer -> metric -> v
    failing: dict[str, tuple[str, ...]] = field(default_factory=dict)  # scorer -> sample ids


@dataclass(frozen=True)
class Finding:
    """An audit finding as the gate sees it."""

    category: str
    severity: str
    sample: str
    message: str
    task: str = ""
    rule: str = ""


@dataclass(frozen=True)
class Verdict:
    """The gate's decision for one tier attempt, with its reasons in plain words."""

    outcome: Outcome
    reasons: tuple[str, ...]

    @property
    def clean(self) -> bool:
        return self.outcome == "clean"

    def payload(self) -> dict[str, Any]:
        return asdict(self) | {"reasons": list(self.reasons)}


def severity_rank(severity: str) -> int:
    """Position of a severity, least severe first; an unknown severity ranks above all."""
    s = severity.lower()
    return SEVERITIES.index(s) if s in SEVERITIES else len(SEVERITIES)


def tolerated(severity: str, max_severity: str) -> bool:
    """Whether a finding of `severity` passes a gate tolerating up to `max_severity`."""
    if max_severity == "none":
        return False
    return severity_rank(severity) <= severity_rank(max_severity)


def metric_value(result: TaskResult, scorer: str | None, metric: str) -> tuple[float | None, str]:
    """The value a threshold refers to, or None and why not."""
    if scorer is not None:
        value = result.metrics.get(scorer, {}).get(metric)
        return (value, "") if value is not None else (None, f"no metric {scorer}/{metric}")
    found = {s: m[metric] for s, m in result.metrics.items() if metric in m}
    if not found:
        return None, f"no metric {metric}"
    if len(found) > 1:
        return None, f"metric {metric} is ambiguous ({', '.join(found)}); name the scorer"
    return next(iter(found.values())), ""


def _failing_samples(result: TaskResult, scorer: str | None) -> str:
    """`; samples not passing <scorer>: a, b, c` (at most 10), or nothing when none are known."""
    scorers = [scorer] if scorer else list(result.failing)
    ids = sorted({i for s in scorers for i in result.failing.get(s, ())})
    if not ids:
        return ""
    more = f" and {len(ids) - 10} more" if len(ids) > 10 else ""
    return f"; samples not passing: {', '.join(ids[:10])}{more}"


def evaluate_gate(
    tier: TierSpec,
    results: list[TaskResult],
    findings: list[Finding],
    *,
    approved: bool,
    audit_problems: list[str] | None = None,
) -> Verdict:
    """Decide one tier attempt. `audit_problems` are logs the audit could not read."""
    incomplete: list[str] = []
    failed: list[str] = []
    by_task = {r.task: r for r in results}

    if tier.gate.approval_required and not approved:
        failed.append(f"tier {tier.tier} requires an approval and none is recorded")

    for spec in tier.tasks:
        r = by_task.get(spec.name)
        if r is None or r.log is None:
            incomplete.append(f"task {spec.name}: no log was written")
            continue
        if r.status != "success":
            why = f": {r.error}" if r.error else ""
            incomplete.append(f"task {spec.name}: log status is {r.status}{why}")
        for e in r.sample_errors:
            incomplete.append(
                f"task {spec.name}: sample {e.sample} (epoch {e.epoch}) ended in a harness "
                f"error: {e.message}"
            )
        if r.samples == 0:
            incomplete.append(f"task {spec.name}: no samples ran")
        elif r.completed < r.samples:
            incomplete.append(
                f"task {spec.name}: only {r.completed} of {r.samples} samples completed"
            )
        for th in spec.thresholds:
            value, why = metric_value(r, th.scorer, th.metric)
            if value is None:
                failed.append(f"task {spec.name}: threshold {th} not met: {why}")
            elif not th.met(value):
                failed.append(
                    f"task {spec.name}: threshold {th} not met: {th.metric} = {value:g}"
                    + _failing_samples(r, th.scorer)
                )

    for problem in audit_problems or []:
        incomplete.append(f"audit could not check {problem}")

    bad = [f for f in findings if not tolerated(f.severity, tier.gate.max_severity)]
    finding_reasons = [
        f"task {f.task or '?'}: sample {f.sample}: {f.severity} {f.category} finding"
        f"{f' [{f.rule}]' if f.rule else ''}: {f.message}"
        for f in bad
    ]

    # A finding is definitive evidence; so is a threshold missed on a complete log. Missing or
    # broken evidence is not: the tier is incomplete and running again retries it.
    if finding_reasons:
        return Verdict("failed", tuple(finding_reasons + incomplete + failed))
    if incomplete:
        return Verdict("incomplete", tuple(incomplete + failed))
    if failed:
        return Verdict("failed", tuple(failed))
    n = sum(r.samples for r in results)
    return Verdict("clean", (f"all {n} samples completed, no finding, every threshold met",))
