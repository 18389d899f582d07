"""The gate: decides from a tier's task results and audit findings what the tier showed.

Outcomes, in the order they win when a tier shows several:
- `unsafe`: an audit finding above the gate's severity on any sample (whatever the task's kind),
  or a safety threshold (or a threshold the campaign set on a thorough task) missed on a task
  whose log is complete: definitive, the ladder halts.
- `incomplete`: a harness error, a missing log or an unreadable audit: nothing definitive was
  shown; running again retries.
- `awaiting-approval`: the gate asks for a named human's approval and none is recorded.
- `not-qualified`: complete, safe, but a qualification threshold is not met (or its metric is
  missing): the model is below this tier's bar; its thorough tasks and higher tiers are skipped.
- `clean`: every sample completed, no finding, every threshold met: advance.

What cannot be shown clean is not clean. Ledgers written before these outcomes say `failed` for
any definitive miss; `read_outcome` reads that as `unsafe` (the rows themselves never change).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from ._campaign import SEVERITIES, TaskSpec, TierSpec

Outcome = Literal["clean", "not-qualified", "unsafe", "incomplete", "awaiting-approval"]
OUTCOMES: tuple[Outcome, ...] = (
    "clean",
    "not-qualified",
    "unsafe",
    "incomplete",
    "awaiting-approval",
)
DEFINITIVE: tuple[Outcome, ...] = ("clean", "not-qualified", "unsafe")
"""Outcomes that decide a tier (the others leave it to be run or approved again)."""
LEGACY_OUTCOMES: dict[str, Outcome] = {"failed": "unsafe"}
"""Outcomes older ledgers recorded, and how they read now."""


def read_outcome(value: object) -> Outcome:
    """A recorded outcome as this version reads it: `failed` (older ledgers) is `unsafe`, and
    anything unknown is `unsafe` too (what cannot be shown clean is not clean)."""
    if isinstance(value, str):
        if value in OUTCOMES:
            return value
        if value in LEGACY_OUTCOMES:
            return LEGACY_OUTCOMES[value]
    return "unsafe"


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
    tokens: int = 0  # model tokens the task's samples used
    seconds: float = 0.0  # wall time of the task's eval


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

    @property
    def definitive(self) -> bool:
        """Whether the outcome decides the tier (clean, not-qualified, unsafe)."""
        return self.outcome in DEFINITIVE

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


def _incomplete(spec: TaskSpec, r: TaskResult | None) -> list[str]:
    """Why a task's log does not show every sample completed (empty when it does)."""
    if r is None or r.log is None:
        return [f"task {spec.name}: no log was written"]
    out: list[str] = []
    if r.status != "success":
        out.append(f"task {spec.name}: log status is {r.status}{f': {r.error}' if r.error else ''}")
    out += [
        f"task {spec.name}: sample {e.sample} (epoch {e.epoch}) ended in a harness error: "
        f"{e.message}"
        for e in r.sample_errors
    ]
    if r.samples == 0:
        out.append(f"task {spec.name}: no samples ran")
    elif r.completed < r.samples:
        out.append(f"task {spec.name}: only {r.completed} of {r.samples} samples completed")
    return out


def _missed(spec: TaskSpec, r: TaskResult) -> list[str]:
    """The task's thresholds its metrics do not meet (a missing metric is not met)."""
    out: list[str] = []
    for th in spec.thresholds:
        value, why = metric_value(r, th.scorer, th.metric)
        if value is None:
            out.append(f"{spec.kind} task {spec.name}: threshold {th} not met: {why}")
        elif not th.met(value):
            out.append(
                f"{spec.kind} task {spec.name}: threshold {th} not met: {th.metric} = {value:g}"
                + _failing_samples(r, th.scorer)
            )
    return out


def evaluate_gate(
    tier: TierSpec,
    results: list[TaskResult],
    findings: list[Finding],
    *,
    approved: bool,
    audit_problems: list[str] | None = None,
    tasks: Sequence[TaskSpec] | None = None,
) -> Verdict:
    """Decide one tier attempt from `tasks` (default: all the tier's tasks; the runner passes
    one phase: the screening tasks, then the thorough ones). `audit_problems` are logs the
    audit could not read."""
    specs = list(tier.tasks if tasks is None else tasks)
    by_task = {r.task: r for r in results}
    incomplete: list[str] = []
    unsafe: list[str] = []  # definitive misses of safety (and campaign-set thorough) thresholds
    unqualified: list[str] = []  # definitive misses of qualification thresholds
    pending: list[str] = []  # misses on incomplete logs: reported, not definitive

    for spec in specs:
        r = by_task.get(spec.name)
        missing = _incomplete(spec, r)
        incomplete += missing
        if r is None or r.log is None:
            continue
        missed = _missed(spec, r)
        if missing:
            pending += missed
        elif spec.kind == "qualification":
            unqualified += missed
        else:
            unsafe += missed

    incomplete += [f"audit could not check {problem}" for problem in audit_problems or []]
    bad = [f for f in findings if not tolerated(f.severity, tier.gate.max_severity)]
    unsafe = [
        f"task {f.task or '?'}: sample {f.sample}: {f.severity} {f.category} finding"
        f"{f' [{f.rule}]' if f.rule else ''}: {f.message}"
        for f in bad
    ] + unsafe
    unapproved = (
        [f"tier {tier.tier} requires an approval and none is recorded"]
        if tier.gate.approval_required and not approved
        else []
    )

    # A finding is definitive evidence; so is a threshold missed on a complete log. Missing or
    # broken evidence is not: the tier is incomplete and running again retries it.
    if unsafe:
        return Verdict("unsafe", tuple(unsafe + incomplete + pending + unqualified))
    if incomplete:
        return Verdict("incomplete", tuple(incomplete + pending + unqualified + unapproved))
    if unapproved:
        return Verdict("awaiting-approval", tuple(unapproved + unqualified))
    if unqualified:
        return Verdict("not-qualified", tuple(unqualified))
    names = {s.name for s in specs}
    n = sum(r.samples for r in results if r.task in names)
    return Verdict("clean", (f"all {n} samples completed, no finding, every threshold met",))
