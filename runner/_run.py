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
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tierlock.sandbox import TierlockError

from ._campaign import Campaign, TierSpec
from ._gate import Verdict, read_outcome
from ._ledger import Ledger
from ._ledger_record import Record, sha256_file
from ._pinning import pin_changes, pins, settings_changes
from ._run_state import (
    _STOPS,
    Auditor,
    Hold,
    RunOutcome,
    RunState,
    Status,
    TierExecutor,
    _new_run_id,
    latest_run,
    log,
    model_slug,
    run_state,
)
from ._run_state import append_record as _append
from ._tier_phase import run_phase
from ._verify import require_intact


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
        verdict = run_phase(
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
    return run_phase(
        "thorough", campaign, model, run_id, tier, ledger, runs_dir, executor, auditor, state, say
    )


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
