"""Where a run stands: the run loop's types (contexts, outcomes, exit codes) and the replay of
one run's ledger records into a `RunState`, which the loop trusts instead of its own memory.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

import structlog

from tierlock.sandbox import TierlockError

from ._campaign import Campaign, TierSpec
from ._gate import Finding, TaskResult, read_outcome
from ._ledger import Ledger
from ._ledger_record import Record
from ._phases import passed, record_is_final, record_is_screened

EXIT_TOP, EXIT_USER, EXIT_HALTED, EXIT_INCOMPLETE, EXIT_AWAITING = 0, 1, 2, 3, 4
EXIT_NOT_QUALIFIED = 5

Status = Literal["top", "halted", "incomplete", "awaiting_approval", "not_qualified"]
_EXIT: dict[str, int] = {
    "top": EXIT_TOP,
    "halted": EXIT_HALTED,
    "incomplete": EXIT_INCOMPLETE,
    "awaiting_approval": EXIT_AWAITING,
    "not_qualified": EXIT_NOT_QUALIFIED,
}
_STOPS: dict[str, Status] = {"unsafe": "halted", "not-qualified": "not_qualified"}
"""How a final verdict that stops the climb ends the run."""

log = structlog.get_logger("tierlock.runner")


@dataclass(frozen=True)
class TierContext:
    """Everything an executor needs to run one attempt at one tier."""

    run_id: str
    campaign: Campaign
    tier: TierSpec
    model: str
    log_dir: Path
    attempt: int

    @property
    def policy(self) -> Path:
        return self.campaign.policy_path(self.tier)


class TierExecutor(Protocol):
    """Runs a tier's tasks and reports what each task's log shows."""

    def run_tier_tasks(self, ctx: TierContext) -> list[TaskResult]: ...


Hold = Callable[[str, str], "str | None"]
"""Asked (run id, tier) once the tier's screening is clean: a reason to wait, or None."""

Auditor = Callable[[Path, "str | None"], "list[Finding] | None"]
"""Findings for one log (given the SHA-256 the ledger recorded for it), or None when no audit
is available. Raising means the log could not be audited: the tier is then incomplete."""


@dataclass(frozen=True)
class RunOutcome:
    """Where a run stopped, and why, in plain words."""

    run_id: str
    status: Status
    tier: str | None
    reasons: tuple[str, ...] = ()
    partial: bool = False  # an aimed run (`_aim.py`): never a clean climb of the campaign

    @property
    def exit_code(self) -> int:
        return _EXIT[self.status]


@dataclass
class RunState:
    """A run as the ledger shows it (replayed in order)."""

    run: Record
    verdicts: dict[str, Record] = field(default_factory=dict)  # final: clean, not-qualified, unsafe
    screened: dict[str, Record] = field(default_factory=dict)  # clean screening, thorough next
    last_verdict: dict[str, Record] = field(default_factory=dict)  # including incomplete
    approvals: dict[str, Record] = field(default_factory=dict)
    awaiting: set[str] = field(default_factory=set)
    attempts: dict[str, int] = field(default_factory=dict)
    phase_attempts: dict[tuple[str, str], int] = field(default_factory=dict)
    finished: Record | None = None
    last: Record | None = None

    @property
    def tiers(self) -> list[dict[str, Any]]:
        return list(self.run.payload.get("tiers", []))

    def outcome(self, tier: str) -> str | None:
        """The tier's final outcome (an older ledger's `failed` reads as `unsafe`)."""
        v = self.verdicts.get(tier)
        return None if v is None else read_outcome(v.payload.get("outcome"))

    def clean(self, tier: str) -> bool:
        return self.outcome(tier) == "clean"

    def passed(self, tier: str) -> bool:
        """Clean, or not-qualified in a tier whose campaign said `on_not_qualified: continue`."""
        spec = next((t for t in self.tiers if t.get("tier") == tier), {})
        return passed(self.outcome(tier), spec.get("on_not_qualified", "stop"))


def run_state(ledger: Ledger, run_id: str) -> RunState:
    """Replay one run's records."""
    state: RunState | None = None
    for rec in ledger.records(run_id):
        if rec.kind == "run_started":
            state = RunState(rec)
        if state is None:
            continue
        state.last = rec
        t = rec.tier or ""
        if rec.kind == "verdict":
            state.last_verdict[t] = rec
            if record_is_final(rec.payload):
                state.verdicts[t] = rec
            elif record_is_screened(rec.payload):
                state.screened[t] = rec
        elif rec.kind == "approval":
            state.approvals[t] = rec
        elif rec.kind == "awaiting_approval":
            state.awaiting.add(t)
        elif rec.kind == "tier_started":
            state.attempts[t] = state.attempts.get(t, 0) + 1
            key = (t, str(rec.payload.get("phase", "screening")))
            state.phase_attempts[key] = state.phase_attempts.get(key, 0) + 1
        elif rec.kind == "run_finished":
            state.finished = rec
    if state is None:
        raise TierlockError(f"no run {run_id!r} in the ledger {ledger.path}")
    return state


def model_slug(model: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", model).strip("_") or "model"


def latest_run(ledger: Ledger, campaign: str, model: str) -> Record | None:
    runs = [
        r for r in ledger.runs()
        if r.campaign == campaign and r.model == model and not r.payload.get("aim")
    ]  # an aimed run (a part of the campaign, `_aim.py`) is only ever resumed by its id
    return runs[-1] if runs else None


def _new_run_id(ledger: Ledger, campaign: str, model: str) -> str:
    base = f"{campaign}-{model_slug(model)}"
    taken = {r.run_id for r in ledger.runs()}
    if base not in taken:
        return base
    n = 2
    while f"{base}-{n}" in taken:
        n += 1
    return f"{base}-{n}"


def append_record(
    ledger: Ledger,
    kind: str,
    run_id: str,
    campaign: Campaign,
    model: str,
    tier: str | None = None,
    payload: dict[str, Any] | None = None,
    logs: list[Path] | None = None,
) -> Record:
    return ledger.append(
        kind, run_id=run_id, campaign=campaign.name, model=model, tier=tier,
        payload=payload, logs=logs or [],
    )  # fmt: skip
