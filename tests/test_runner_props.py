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

from _phased_fakes import (
    PHASE_BEHAVIOURS,
    PhasedExecutor,
    phased_audit,
    write_phased_campaign,
)
from _phased_fakes import SimulatedCrash as PhasedCrash
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

from tierlock.runner import Ledger, approve, run_campaign
from tierlock.runner._phases import record_is_final
from tierlock.sandbox import TierlockError

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
                assert out.exit_code in (0, 2, 3, 4, 5)
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
                elif r.kind == "verdict" and record_is_final(r.payload):
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


# -- phased tiers ---------------------------------------------------------------------------------
P_APPROVAL = (False, True, False)
P_CONTINUE = ("continue", "stop", "stop")
P_THOROUGH = (True, True, False)


class PhasedClimb(RuleBasedStateMachine):
    """No sequence of runs, crashes, resumes, failing phases and approvals ever starts a tier's
    thorough tasks before that tier's qualification and safety verdict is recorded clean (and
    every tier below passed), reruns a phase after its tier was decided, or climbs past a tier
    that did not pass. Checked at the moment the executor is asked (from the ledger, by the fake)
    and afterwards over every record."""

    def __init__(self) -> None:
        super().__init__()
        self.dir = Path(tempfile.mkdtemp(prefix="tierlock-phased-"))
        self.campaign = write_phased_campaign(
            self.dir / "campaign", P_APPROVAL, P_CONTINUE, P_THOROUGH
        )
        self.runs = self.dir / "runs"
        self.ledger_path = self.runs / "ledger.sqlite"
        self.calls: list[tuple[str, str, str]] = []  # (run, tier, phase) the executor was asked
        self.early: list[str] = []
        self.started: list[tuple[str, str, str]] = []  # (run, tier, task) really run

    def teardown(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)

    @rule(
        model=st.sampled_from(MODELS),
        behaviours=st.lists(st.sampled_from(PHASE_BEHAVIOURS), max_size=5),
        crash_after=st.none() | st.integers(1, 24),
        new=st.booleans(),
    )
    def run(self, model: str, behaviours: list[str], crash_after: int | None, new: bool) -> None:
        ex = PhasedExecutor({"*": behaviours}, ledger_path=self.ledger_path, campaign=self.campaign)
        with CrashingLedger(self.ledger_path, crash_after) as ledger:
            try:
                out = run_campaign(
                    self.campaign,
                    model,
                    ledger=ledger,
                    runs_dir=self.runs,
                    executor=ex,
                    auditor=phased_audit,
                    new=new,
                )
                assert out.exit_code in (0, 2, 3, 4, 5)
            except (SimulatedCrash, PhasedCrash):
                pass
        self.calls += [
            (run_id, tier, "thorough" if "thorough" in kinds else "screening")
            for run_id, tier, kinds in ex.calls
        ]
        self.early += ex.early
        self.started += ex.started

    @rule(model=st.sampled_from(MODELS), tier=st.sampled_from(TIER_NAMES))
    def approve(self, model: str, tier: str) -> None:
        with Ledger(self.ledger_path) as ledger:
            runs = [r for r in ledger.runs() if r.model == model]
            if not runs:
                return
            with contextlib.suppress(TierlockError):
                approve(ledger, runs[-1].run_id, tier, "Ada", "looked at the transcripts")

    @invariant()
    def thorough_only_after_a_clean_screening(self) -> None:
        assert not self.early, self.early
        if not self.ledger_path.exists():
            return
        with Ledger(self.ledger_path) as ledger:
            assert ledger.verify().ok
            records = list(ledger.records())
        by_run: dict[str, list] = {}
        for r in records:
            by_run.setdefault(r.run_id, []).append(r)
        phases: list[tuple[str, str, str]] = []
        for run_id, recs in by_run.items():
            phases += self._check_run(run_id, recs)
        # the executor ran exactly the phases the ledger says were started
        assert not Counter(self.calls) - Counter(phases)
        # a task is started afresh at most once per run: a resumed phase finds its logs where it
        # left them (eval_set then reuses what completed and retries only what did not)
        assert all(n == 1 for n in Counter(self.started).values()), Counter(self.started)

    def _check_run(self, run_id: str, recs: list) -> list[tuple[str, str, str]]:
        assert recs[0].kind == "run_started"
        spec = {t.tier: t for t in self.campaign.tiers}
        thorough_names = {s.name: t.tier for t in self.campaign.tiers for s in t.thorough}
        screened: set[str] = set()
        final: dict[str, str] = {}
        approved: set[str] = set()
        in_thorough: set[str] = set()
        stopped = finished = False
        started: list[tuple[str, str, str]] = []

        def passed(tier: str) -> bool:
            o = final.get(tier)
            return o == "clean" or (
                o == "not-qualified" and spec[tier].on_not_qualified == "continue"
            )

        for r in recs:
            assert not finished, f"{run_id}: record after run_finished"
            p = r.payload
            if r.kind == "tier_started":
                assert not stopped, f"{run_id}: {r.tier} started after the climb stopped"
                i = TIER_NAMES.index(r.tier)
                for lower in TIER_NAMES[:i]:
                    assert passed(lower), f"{run_id} started {r.tier} before {lower} passed"
                if P_APPROVAL[i]:
                    assert r.tier in approved, f"{run_id} started {r.tier} without approval"
                assert r.tier not in final, f"{run_id} reran {r.tier} after its final verdict"
                phase = p.get("phase", "screening")
                if phase == "thorough":
                    assert r.tier in screened, f"{run_id}: {r.tier} thorough before screening"
                    in_thorough.add(r.tier)
                else:
                    assert r.tier not in screened, f"{run_id}: {r.tier} screened twice"
                started.append((run_id, r.tier, phase))
            elif r.kind == "log_written" and p.get("task") in thorough_names:
                assert r.tier in in_thorough and r.tier in screened, (run_id, p["task"])
            elif r.kind == "verdict":
                assert r.tier not in final, f"{run_id}: verdict after {r.tier}'s final one"
                if p.get("phase") == "screening" and p["outcome"] == "clean":
                    screened.add(r.tier)
                if p.get("final"):
                    assert p["outcome"] in ("clean", "not-qualified", "unsafe"), p
                    final[r.tier] = p["outcome"]
                    stopped = not passed(r.tier)
                    assert set(p.get("cost", {})) <= {"qualification", "safety", "thorough"}
            elif r.kind == "approval":
                i = TIER_NAMES.index(r.tier)
                assert all(passed(t) for t in TIER_NAMES[:i])
                approved.add(r.tier)
            elif r.kind == "run_finished":
                finished = True
                if p["outcome"] == "top":
                    assert all(final.get(t) == "clean" for t in TIER_NAMES), final
                if p["outcome"] == "halted":
                    assert final.get(p["tier"]) == "unsafe", (p, final)
                if p["outcome"] == "not_qualified":
                    assert "not-qualified" in final.values(), (p, final)
        return started


PhasedClimb.TestCase.settings = settings(
    max_examples=60,
    stateful_step_count=12,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestPhasedClimb = PhasedClimb.TestCase
