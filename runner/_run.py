"""The tier loop: climb a campaign's ladder, one gated tier at a time, recording every step.

The loop is the same for every executor (Inspect in production, a fake in property tests): it
replays the ledger to know where a run stands, so a crash at any point resumes without rerunning a
finished tier or recording a verdict twice. A tier starts only when every tier below it has
passed (a recorded clean verdict, or not-qualified where the campaign says
`on_not_qualified: continue`) and, if its gate asks for one, an approval. Within a tier, the
qualification and safety tasks run and are gated first; the thorough tasks start only once that
verdict is recorded clean (`_phases.py`).

Exit codes: 0 reached the top tier clean; 1 user error; 2 halted: unsafe (an audit finding or a
safety threshold); 3 incomplete (harness error or missing evidence: run again to retry);
4 awaiting an approval; 5 not qualified (below a tier's qualification bar: its thorough tasks and
the tiers above were skipped; nothing alarming was found).
"""

from __future__ import annotations

import fcntl
import re
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

import structlog

from tierlock.sandbox import TierlockError, raise_if_terminated

from ._campaign import Campaign, TierSpec
from ._evidence import TierRecords, audit_entry, check_evidence, with_evidence
from ._gate import Finding, TaskResult, Verdict, evaluate_gate, read_outcome
from ._ledger import Ledger
from ._ledger_record import Record, sha256_file
from ._phases import (
    Phase,
    is_final,
    merge_costs,
    passed,
    phase_cost,
    phase_log_dir,
    phase_tasks,
    record_is_final,
    record_is_screened,
    skipped,
)
from ._pinning import pin_changes, pins, settings_changes
from ._selftest_gate import check_host, refuse_unless_held
from ._verify import require_intact

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
    runs = [r for r in ledger.runs() if r.campaign == campaign and r.model == model]
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


@contextmanager
def _exclusive(runs_dir: Path, campaign: str, model: str) -> Iterator[None]:
    """One `tierlock run` per campaign and model at a time (released by the OS on a crash)."""
    locks = runs_dir / ".locks"
    locks.mkdir(parents=True, exist_ok=True)
    with open(locks / f"{campaign}-{model_slug(model)}.lock", "w") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise TierlockError(
                f"another tierlock run is working on campaign {campaign} with model {model}"
            ) from None
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _finished_outcome(state: RunState) -> RunOutcome:
    assert state.finished is not None
    p = state.finished.payload
    return RunOutcome(state.run.run_id, p["outcome"], p.get("tier"), tuple(p.get("reasons", [])))


def run_campaign(
    campaign: Campaign,
    model: str,
    *,
    ledger: Ledger,
    runs_dir: Path,
    executor: TierExecutor,
    auditor: Auditor,
    new: bool = False,
    progress: Callable[[str], None] | None = None,
    run_id: str | None = None,
    hold: Hold | None = None,
    run_info: dict[str, Any] | None = None,
) -> RunOutcome:
    """Climb the campaign's ladder for `model`, resuming its latest run unless `new`.

    `run_id` names the run (resumed when the ledger has it, else started under that id): a
    checkpoint series gives each checkpoint its own run of one model name. `hold(run_id, tier)`
    is asked once `tier`'s qualification and safety are recorded clean, before its thorough
    tasks and the tiers above: a reason stops the run as awaiting an approval, None goes on."""
    say = progress or (lambda _msg: None)
    runs_dir = runs_dir.resolve()
    with _exclusive(runs_dir, campaign.name, model):
        if run_id is not None:
            prior = next((r for r in ledger.runs() if r.run_id == run_id), None)
        else:
            prior = None if new else latest_run(ledger, campaign.name, model)
        # Verify before trusting: the chain, and the logs of the run about to be reused.
        require_intact(ledger, logs_of=prior.run_id if prior is not None else None)
        if prior is not None:
            state = run_state(ledger, prior.run_id)
            changes = pin_changes(prior.payload, campaign)
            changes += settings_changes(prior.payload, run_info)
            if changes:  # a finished run is pinned too: re-running it must not hide a change
                status = f" ({state.finished.payload['outcome']})" if state.finished else ""
                raise TierlockError(
                    f"{'; '.join(changes)} since run {prior.run_id}{status} started; "
                    "run with --new to start a new run"
                )
            if state.finished is not None:
                return _finished_outcome(state)
            run_id = prior.run_id
            _append(ledger, "run_resumed", run_id, campaign, model)
            log.info("run_resumed", run_id=run_id, campaign=campaign.name, model=model)
            say(f"resuming run {run_id}")
        else:
            run_id = run_id or _new_run_id(ledger, campaign.name, model)
            payload = {**_run_payload(campaign), **(run_info or {})}  # model args, no secrets
            _append(ledger, "run_started", run_id, campaign, model, payload=payload)
            log.info("run_started", run_id=run_id, campaign=campaign.name, model=model)
            say(f"started run {run_id}")
        return _climb(campaign, model, run_id, ledger, runs_dir, executor, auditor, say, hold)


def _climb(
    campaign: Campaign,
    model: str,
    run_id: str,
    ledger: Ledger,
    runs_dir: Path,
    executor: TierExecutor,
    auditor: Auditor,
    say: Callable[[str], None],
    hold: Hold | None = None,
) -> RunOutcome:
    state = run_state(ledger, run_id)
    for i, tier in enumerate(campaign.tiers):
        name = tier.tier
        final = state.verdicts.get(name)
        held = hold(run_id, campaign.tiers[i - 1].tier) if hold and i else None
        if held is not None and final is None:  # the tier below screened clean; not beyond yet
            say(held)
            return RunOutcome(run_id, "awaiting_approval", name, (held,))
        if final is not None and state.passed(name):
            log.info("tier_passed", run_id=run_id, tier=name, outcome=state.outcome(name))
            continue
        if final is not None:  # decided earlier; the crash came before run_finished
            status = _STOPS[read_outcome(final.payload.get("outcome"))]
            return _finish(ledger, campaign, model, run_id, status, name, final.payload["reasons"])
        # The invariant, checked against the ledger itself, not against this loop's memory.
        for lower in campaign.tiers[:i]:
            if not state.passed(lower.tier):
                raise RuntimeError(f"refusing to start {name}: {lower.tier} has not passed")
        if tier.gate.approval_required and name not in state.approvals:
            reason = (
                f"tier {name} needs an approval: tierlock approve {run_id} --tier {name} "
                '--by NAME --note "..."'
            )
            if name not in state.awaiting:
                _append(
                    ledger, "awaiting_approval", run_id, campaign, model, name, {"reason": reason}
                )
            log.info(
                "gate_decision",
                run_id=run_id,
                tier=name,
                outcome="awaiting_approval",
                reasons=[reason],
            )
            say(reason)
            return RunOutcome(run_id, "awaiting_approval", name, (reason,))

        verdict = _attempt(
            campaign, model, run_id, tier, ledger, runs_dir, executor, auditor, state, say, hold
        )
        log.info(
            "gate_decision",
            run_id=run_id,
            tier=name,
            outcome=verdict.outcome,
            reasons=list(verdict.reasons),
        )
        say(
            f"tier {name}: {verdict.outcome}"
            + (f" ({verdict.reasons[0]})" if verdict.clean else "")
        )
        state = run_state(ledger, run_id)
        if verdict.definitive and not state.passed(name):  # unsafe, or not-qualified: stop
            status = _STOPS[verdict.outcome]
            return _finish(ledger, campaign, model, run_id, status, name, list(verdict.reasons))
        if verdict.outcome == "incomplete":
            return RunOutcome(run_id, "incomplete", name, verdict.reasons)
        if verdict.outcome == "awaiting-approval":
            return RunOutcome(run_id, "awaiting_approval", name, verdict.reasons)
    top = campaign.tiers[-1].tier
    below = [t.tier for t in campaign.tiers if not state.clean(t.tier)]
    if below:  # not-qualified tiers the campaign let the climb continue past
        return _finish(
            ledger, campaign, model, run_id, "not_qualified", below[0],
            [f"not qualified at {', '.join(below)} (on_not_qualified: continue); "
             f"every tier up to {top} passed"],
        )  # fmt: skip
    return _finish(
        ledger, campaign, model, run_id, "top", top, [f"every tier up to {top} is clean"]
    )


def _attempt(
    campaign: Campaign,
    model: str,
    run_id: str,
    tier: TierSpec,
    ledger: Ledger,
    runs_dir: Path,
    executor: TierExecutor,
    auditor: Auditor,
    state: RunState,
    say: Callable[[str], None],
    hold: Hold | None = None,
) -> Verdict:
    """One attempt at one tier: its screening phase (qualification and safety), unless the
    ledger already holds a clean screening verdict, then, only when that is clean, its thorough
    phase. Returns the last phase's verdict (final when definitive)."""
    if tier.tier not in state.screened:
        verdict = _phase(
            "screening", campaign, model, run_id, tier, ledger, runs_dir, executor, auditor,
            state, say,
        )  # fmt: skip
        if not verdict.clean or not tier.thorough:
            return verdict
        state = run_state(ledger, run_id)
        if tier.tier not in state.screened:  # the invariant, from the ledger itself
            raise RuntimeError(f"refusing thorough tasks of {tier.tier}: no clean screening")
        log.info("screening_clean", run_id=run_id, tier=tier.tier)
        say(f"tier {tier.tier}: qualification and safety clean; measuring")
    held = hold(run_id, tier.tier) if hold is not None else None
    if held is not None:
        return Verdict("awaiting-approval", (held,))
    return _phase(
        "thorough", campaign, model, run_id, tier, ledger, runs_dir, executor, auditor, state, say
    )


def _phase(
    phase: Phase,
    campaign: Campaign,
    model: str,
    run_id: str,
    tier: TierSpec,
    ledger: Ledger,
    runs_dir: Path,
    executor: TierExecutor,
    auditor: Auditor,
    state: RunState,
    say: Callable[[str], None],
) -> Verdict:
    """One phase of one tier: run its tasks, record logs, audit, gate, record the verdict."""
    name = tier.tier
    tasks = phase_tasks(tier, phase)
    attempt = state.phase_attempts.get((name, phase), 0) + 1
    policy = campaign.policy_path(tier)
    selftest = check_host(executor, policy)
    if selftest is not None:
        _append(ledger, "selftest", run_id, campaign, model, name, selftest)
    refuse_unless_held(selftest, policy, name)  # a sandbox that did not hold: nothing starts
    _append(
        ledger, "tier_started", run_id, campaign, model, name,
        {
            "attempt": attempt,
            "phase": phase,
            "policy": str(policy),
            "policy_sha256": sha256_file(policy) if policy.is_file() else None,
            "tasks": [t.task for t in tasks],
        },
    )  # fmt: skip
    log.info(
        "tier_started", run_id=run_id, tier=name, phase=phase, attempt=attempt,
        tasks=[t.name for t in tasks],
    )  # fmt: skip
    say(f"tier {name}: running {len(tasks)} {phase} task(s) (attempt {attempt})")
    log_dir = phase_log_dir(runs_dir, run_id, name, phase)
    ctx = TierContext(run_id, campaign, tier.only(tasks), model, log_dir, attempt)
    started = time.monotonic()
    harness_error = None
    try:
        results = executor.run_tier_tasks(ctx)
    except TierlockError:
        raise
    except Exception as e:
        ledger.raise_if_unwritable()  # the runs directory filled up or turned read-only
        results, harness_error = [], f"{type(e).__name__}: {e}"
        log.warning("harness_error", run_id=run_id, tier=name, error=harness_error)
    raise_if_terminated()  # SIGTERM/SIGHUP mid-tier: no verdict; the next run resumes the tier
    seconds = round(time.monotonic() - started, 3)

    kinds: dict[str, str] = {t.name: t.kind for t in tier.tasks}
    _record_logs(ledger, campaign, model, run_id, name, results, kinds)
    _audit_new_logs(ledger, campaign, model, run_id, name, results, auditor)
    evidence = check_evidence(
        ledger, run_id, name, results, accept_transcript_only=tier.evidence == "transcript-only"
    )

    approved = name in state.approvals
    verdict = evaluate_gate(tier, results, evidence.findings, approved=approved, tasks=tasks)
    verdict = with_evidence(verdict, evidence)
    if harness_error is not None:
        verdict = Verdict("incomplete", (f"harness error: {harness_error}", *verdict.reasons))
    final = is_final(tier, phase, verdict)
    screening = state.screened.get(name)
    cost = phase_cost(tier, results)
    if phase == "thorough" and screening is not None:
        cost = merge_costs(screening.payload.get("cost", {}), cost)
    payload: dict[str, Any] = {
        "attempt": attempt,
        "phase": phase,
        "final": final,
        **verdict.payload(),
        "cost": cost,
        "seconds": seconds,
    }
    if final:
        payload["skipped"] = skipped(campaign, tier, phase, verdict)
    if phase == "thorough":
        payload["measurements"] = {r.task: r.metrics for r in results}
    _append(
        ledger, "verdict", run_id, campaign, model, name,
        {**payload, "evidence": evidence.cited}, logs=evidence.logs,
    )  # fmt: skip
    return verdict


def _record_logs(
    ledger: Ledger,
    campaign: Campaign,
    model: str,
    run_id: str,
    tier: str,
    results: list[TaskResult],
    kinds: dict[str, str] | None = None,
) -> None:
    """A `log_written` record (with the log's SHA-256) for each task log the ledger does not
    cite yet. A log reused after a crash keeps its first record: if its bytes changed since,
    the evidence check says so (a changed log is never recorded afresh). A thorough task's
    record is its measurement: kind, metrics and the log's hash."""
    recorded = TierRecords.read(ledger, run_id, tier)
    for r in results:
        if r.log is None or not r.log.is_file() or recorded.recorded(ledger, r.log) is not None:
            continue
        _append(
            ledger, "log_written", run_id, campaign, model, tier,
            {
                "task": r.task,
                "kind": (kinds or {}).get(r.task),
                "status": r.status,
                "samples": r.samples,
                "completed": r.completed,
                "sample_errors": len(r.sample_errors),
                "metrics": r.metrics,
                "tokens": r.tokens,
                "seconds": r.seconds,
            },
            logs=[r.log],
        )  # fmt: skip


def _audit_new_logs(
    ledger: Ledger,
    campaign: Campaign,
    model: str,
    run_id: str,
    tier: str,
    results: list[TaskResult],
    auditor: Auditor,
) -> None:
    """Audit each recorded task log whose SHA-256 no earlier `audit_result` of this run and tier
    vouches for, and record one `audit_result` for them (none when every log was audited
    before: a resumed attempt does not audit the same bytes twice)."""
    recorded = TierRecords.read(ledger, run_id, tier)
    entries: list[dict[str, Any]] = []
    paths: list[Path] = []
    for r in results:
        ref = None if r.log is None or not r.log.is_file() else recorded.recorded(ledger, r.log)
        if r.log is None or ref is None or ref.sha256 in recorded.audits:
            continue
        findings: list[Finding] | None = None
        problem: str | None = None
        try:
            findings = auditor(r.log, ref.sha256)
            if findings is None:
                problem = "no audit installed: findings not checked"
        except Exception as e:
            problem = f"{type(e).__name__}: {e}"
        entries.append(audit_entry(r.task, ref.path, ref.sha256, findings, problem))
        paths.append(r.log)
    if not entries:
        return
    problems = [f"{e['path']} ({e['problem']})" for e in entries if e["problem"] is not None]
    _append(
        ledger, "audit_result", run_id, campaign, model, tier,
        {
            "available": not problems,
            "logs": entries,
            "findings": [f for e in entries for f in e["findings"]],
            "problems": problems,
        },
        logs=paths,
    )  # fmt: skip
    found = sum(len(e["findings"]) for e in entries)
    log.info("audit_result", run_id=run_id, tier=tier, logs=len(entries), findings=found)
    if problems:
        log.warning("audit_incomplete", run_id=run_id, tier=tier, problems=problems)


def _finish(
    ledger: Ledger,
    campaign: Campaign,
    model: str,
    run_id: str,
    status: Status,
    tier: str,
    reasons: list[str],
) -> RunOutcome:
    payload = {"outcome": status, "tier": tier, "reasons": reasons}
    _append(ledger, "run_finished", run_id, campaign, model, tier, payload)
    log.info("run_finished", run_id=run_id, outcome=status, tier=tier, reasons=reasons)
    return RunOutcome(run_id, status, tier, tuple(reasons))


def _policy_hashes(campaign: Campaign) -> dict[str, str | None]:
    """Each tier's policy file bytes (the pre-pins check, kept for older tools reading it)."""
    out: dict[str, str | None] = {}
    for t in campaign.tiers:
        path = campaign.policy_path(t)
        out[t.tier] = sha256_file(path) if path.is_file() else None
    return out


def _run_payload(campaign: Campaign) -> dict[str, Any]:
    return {
        "campaign_file": campaign.source,
        "campaign_digest": campaign.digest(),
        "policy_sha256": _policy_hashes(campaign),
        "pins": pins(campaign),  # effective policies, their seccomp/approval files, task files
        "tiers": [
            {
                "tier": t.tier,
                "approval_required": t.gate.approval_required,
                "on_not_qualified": t.on_not_qualified,
            }
            for t in campaign.tiers
        ],
    }


def _append(
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


def approve(ledger: Ledger, run_id: str, tier: str, by: str, note: str) -> Record:
    """Record a named human's approval for `run_id` to enter `tier`."""
    state = run_state(ledger, run_id)
    names = [t["tier"] for t in state.tiers]
    if tier not in names:
        raise TierlockError(f"run {run_id} has no tier {tier!r} (tiers: {', '.join(names)})")
    spec = state.tiers[names.index(tier)]
    if not spec.get("approval_required"):
        raise TierlockError(f"tier {tier} of run {run_id} does not require an approval")
    if state.finished is not None:
        raise TierlockError(f"run {run_id} has finished ({state.finished.payload['outcome']})")
    if tier in state.approvals:
        prior = state.approvals[tier].payload
        raise TierlockError(f"tier {tier} of run {run_id} was already approved by {prior['by']}")
    missing = [n for n in names[: names.index(tier)] if not state.passed(n)]
    if missing:
        raise TierlockError(
            f"cannot approve {tier} for run {run_id}: tier {missing[0]} has no clean verdict yet"
        )
    if not by.strip() or not note.strip():
        raise TierlockError("an approval needs a name (--by) and a note (--note)")
    rec = ledger.append(
        "approval", run_id=run_id, campaign=state.run.campaign, model=state.run.model,
        tier=tier, payload={"by": by, "note": note},
    )  # fmt: skip
    log.info("approval", run_id=run_id, tier=tier, by=by)
    return rec
