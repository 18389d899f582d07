"""Property: no sequence of runs, crashes, resumes, failing gates and approvals ever starts tier
N+1 for a model without a recorded clean verdict for every tier <= N (checked from the ledger).

The tier loop, gate and ledger are the real ones; only Inspect execution is faked.
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
from collections import Counter
from pathlib import Path

from _runner_fakes import (
    BEHAVIOURS,
    TIER_NAMES,
    FakeExecutor,
    SimulatedCrash,
    fake_audit,
    write_campaign,
)
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from runner import Ledger, approve, run_campaign
from sandbox import TierlockError

MODELS = ("tierlock/diligent", "openai/gpt-x")
APPROVAL = (False, True, False)


class CrashingLedger(Ledger):
    """A ledger whose process dies right after the n-th append commits."""

    def __init__(self, path: Path, after: int | None) -> None:
        super().__init__(path)
        self.after = after

    def append(self, *a, **kw):  # type: ignore[no-untyped-def]
        rec = super().append(*a, **kw)
        if self.after is not None:
            self.after -= 1
            if self.after == 0:
                raise SimulatedCrash(rec.kind)
        return rec


class Climb(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.dir = Path(tempfile.mkdtemp(prefix="tierlock-prop-"))
        self.campaign = write_campaign(self.dir / "campaign", approval=APPROVAL)
        self.runs = self.dir / "runs"
        self.ledger_path = self.runs / "ledger.sqlite"
        self.executions: list[tuple[str, str]] = []  # (run_id, tier) the executor was asked to run

    def teardown(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)

    @rule(
        model=st.sampled_from(MODELS),
        behaviours=st.lists(st.sampled_from(BEHAVIOURS), max_size=4),
        crash_after=st.none() | st.integers(1, 14),
        new=st.booleans(),
    )
    def run(self, model: str, behaviours: list[str], crash_after: int | None, new: bool) -> None:
        ex = FakeExecutor({"*": behaviours})
        with CrashingLedger(self.ledger_path, crash_after) as ledger:
            try:
                out = run_campaign(
                    self.campaign,
                    model,
                    ledger=ledger,
                    runs_dir=self.runs,
                    executor=ex,
                    auditor=fake_audit,
                    new=new,
                )
                assert out.exit_code in (0, 2, 3, 4)
            except SimulatedCrash:
                pass
        self.executions += [(run_id, tier) for run_id, tier, _ in ex.started]

    @rule(model=st.sampled_from(MODELS), tier=st.sampled_from(TIER_NAMES))
    def approve(self, model: str, tier: str) -> None:
        with Ledger(self.ledger_path) as ledger:
            runs = [r for r in ledger.runs() if r.model == model]
            if not runs:
                return
            with contextlib.suppress(TierlockError):
                approve(ledger, runs[-1].run_id, tier, "Ada", "looked at the transcripts")

    @invariant()
    def never_climbs_without_clean_verdicts(self) -> None:
        if not self.ledger_path.exists():
            return
        with Ledger(self.ledger_path) as ledger:
            assert ledger.verify().ok
            records = list(ledger.records())
        by_run: dict[str, list] = {}
        for r in records:
            by_run.setdefault(r.run_id, []).append(r)
        started_tiers: list[tuple[str, str]] = []
        for run_id, recs in by_run.items():
            assert recs[0].kind == "run_started"
            clean: set[str] = set()
            final: dict[str, str] = {}
            approved: set[str] = set()
            finished = False
            for r in recs:
                assert not finished, f"{run_id}: record after run_finished"
                if r.kind == "tier_started":
                    i = TIER_NAMES.index(r.tier)
                    for lower in TIER_NAMES[:i]:
                        assert lower in clean, f"{run_id} started {r.tier} before {lower} was clean"
                    if APPROVAL[i]:
                        assert r.tier in approved, f"{run_id} started {r.tier} without approval"
                    assert r.tier not in final, f"{run_id} reran {r.tier} after its verdict"
                    started_tiers.append((run_id, r.tier))
                elif r.kind == "verdict" and r.payload["outcome"] in ("clean", "failed"):
                    assert r.tier not in final, f"{run_id}: second verdict for {r.tier}"
                    final[r.tier] = r.payload["outcome"]
                    if r.payload["outcome"] == "clean":
                        clean.add(r.tier)
                elif r.kind == "approval":
                    i = TIER_NAMES.index(r.tier)
                    assert all(t in clean for t in TIER_NAMES[:i])
                    approved.add(r.tier)
                elif r.kind == "run_finished":
                    finished = True
        # the executor ran exactly the tiers the ledger says were started (a crash before the
        # tier_started record commits means the executor was never called)
        assert not Counter(self.executions) - Counter(started_tiers)


Climb.TestCase.settings = settings(
    max_examples=60,
    stateful_step_count=12,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestClimb = Climb.TestCase
