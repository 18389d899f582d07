"""The line a person reads for each structured event (`tierlock run`'s plain output, warnings).

Events are structlog event dicts (`event` names what happened; the other keys are its fields).
`event_text` gives one printable line, or None for events only a machine wants (per-sample
progress, which the live view counts instead). Every value may carry text the model or a
container controls (a reason quoting a finding, a host name, a Docker error), so the whole line
is passed through `printable`: control characters, escape sequences and bidi overrides are
shown as `\\xNN` / `\\uNNNN`, never sent to the terminal.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from tierlock.sandbox._escape import printable

Event = Mapping[str, Any]

_META = ("event", "level", "timestamp")
"""Keys every event has; the rest are its fields."""
WARNING_LEVELS = frozenset({"warning", "error", "critical", "exception"})


def is_problem(event: Event) -> bool:
    """A warning or worse: said on stderr."""
    return str(event.get("level", "info")) in WARNING_LEVELS


def event_text(event: Event) -> str | None:
    """One printable line for `event`, or None when people need not read it."""
    kind = str(event.get("event", ""))
    render = _TEXT.get(kind, _generic)
    text = render(event)
    return None if text is None else printable(text)


def clean(value: object) -> str:
    """Any value as one printable line (for the live view's cells)."""
    return printable(str(value))


def _tier(e: Event) -> str:
    return f"tier {e.get('tier')}"


def _gate(e: Event) -> str:
    outcome = str(e.get("outcome"))
    reasons = [str(r) for r in e.get("reasons") or []]
    if outcome in ("awaiting_approval", "awaiting-approval") and reasons:
        return reasons[0]
    first = f" ({reasons[0]})" if outcome == "clean" and reasons else ""
    return f"{_tier(e)}: {outcome}{first}"


def _tier_started(e: Event) -> str:
    tasks = e.get("tasks")
    count = f"{len(tasks)} " if isinstance(tasks, list | tuple) else ""
    return f"{_tier(e)}: running {count}{e.get('phase')} task(s) (attempt {e.get('attempt')})"


def _task_finished(e: Event) -> str:
    errors = int(e.get("errors") or 0)
    tail = f", {errors} sample error(s)" if errors else ""
    return (
        f"task {e.get('task')}: {e.get('done')}/{e.get('total')} samples done "
        f"({e.get('status')}{tail})"
    )


def _audit(e: Event) -> str:
    findings = int(e.get("findings") or 0)
    return f"{_tier(e)}: audited {e.get('logs')} log(s): {findings} finding(s)"


def _generic(e: Event) -> str:
    fields = ", ".join(f"{k}={v}" for k, v in e.items() if k not in _META)
    return f"{e.get('event')}" + (f" ({fields})" if fields else "")


_TEXT: dict[str, Callable[[Event], str | None]] = {
    "run_started": lambda e: f"started run {e.get('run_id')}",
    "run_resumed": lambda e: f"resuming run {e.get('run_id')}",
    "run_finished": lambda e: None,  # the verdict line says it
    "tier_passed": lambda e: f"{_tier(e)}: {e.get('outcome')} (recorded earlier)",
    "tier_started": _tier_started,
    "task_started": lambda e: None,
    "sample_finished": lambda e: None,
    "task_finished": _task_finished,
    "audit_result": _audit,
    "screening_clean": lambda e: f"{_tier(e)}: qualification and safety clean; measuring",
    "gate_decision": _gate,
    "harness_error": lambda e: f"{_tier(e)}: harness error: {e.get('error')}",
    "audit_incomplete": lambda e: (
        f"{_tier(e)}: audit incomplete: " + "; ".join(str(p) for p in e.get("problems") or [])
    ),
    "image_build": lambda e: str(e.get("step")),
    "endpoint_failing": lambda e: str(e.get("message")),
    "approval": lambda e: f"approved: run {e.get('run_id')} may enter {e.get('tier')}",
}
