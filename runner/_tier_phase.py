"""One phase of one tier: run its tasks, record their logs, audit them, gate, record the verdict.

A phase is the screening (qualification and safety tasks) or the thorough tasks of a tier
(`_phases.py`). Each step is a ledger record, so a crash between any two resumes cleanly: a log
is recorded once (`log_written`), audited once per content (`audit_result`), and the verdict
stands on both (`_evidence.check_evidence`).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tierlock.sandbox import TierlockError, raise_if_terminated

from ._campaign import Campaign, TierSpec
from ._evidence import TierRecords, audit_entry, check_evidence, with_evidence
from ._gate import Finding, TaskResult, Verdict, evaluate_gate
from ._ledger import Ledger
from ._ledger_record import sha256_file
from ._phases import (
    Phase,
    is_final,
    merge_costs,
    phase_cost,
    phase_log_dir,
    phase_tasks,
    skipped,
)
from ._run_state import Auditor, RunState, TierContext, TierExecutor, log
from ._run_state import append_record as _append
from ._selftest_gate import check_host, refuse_unless_held


def run_phase(
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
