"""Phases of a tier (pure logic): which tasks, where their logs go, which verdict is final,
what each kind cost and what a verdict saved."""

from __future__ import annotations

from pathlib import Path

from _phased_fakes import write_phased_campaign

from tierlock.runner import TaskResult, Verdict
from tierlock.runner._phases import (
    describe_cost,
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

CLEAN = Verdict("clean", ("ok",))
NOT_QUALIFIED = Verdict("not-qualified", ("qualification task q: threshold not met",))
UNSAFE = Verdict("unsafe", ("finding",))
INCOMPLETE = Verdict("incomplete", ("no log",))


def test_phase_tasks_and_log_dirs(tmp_path: Path) -> None:
    c = write_phased_campaign(tmp_path, thorough=(False, True, True))
    t0, t1 = c.tiers[0], c.tiers[1]
    assert [s.kind for s in phase_tasks(t1, "screening")] == ["qualification", "safety"]
    assert [s.kind for s in phase_tasks(t1, "thorough")] == ["thorough"]
    assert phase_tasks(t0, "thorough") == []
    runs = tmp_path / "runs"
    assert phase_log_dir(runs, "r", "networked", "screening") == runs / "r" / "networked"
    thorough = phase_log_dir(runs, "r", "networked", "thorough")
    assert thorough.parent == runs / "r" and not thorough.is_relative_to(runs / "r" / "networked")


def test_a_clean_screening_is_final_only_without_thorough_tasks(tmp_path: Path) -> None:
    c = write_phased_campaign(tmp_path, thorough=(False, True, True))
    t0, t1 = c.tiers[0], c.tiers[1]
    assert is_final(t0, "screening", CLEAN) and not is_final(t1, "screening", CLEAN)
    assert is_final(t1, "screening", NOT_QUALIFIED) and is_final(t1, "screening", UNSAFE)
    assert not is_final(t1, "screening", INCOMPLETE) and not is_final(t1, "thorough", INCOMPLETE)
    assert is_final(t1, "thorough", CLEAN) and is_final(t1, "thorough", UNSAFE)


def test_recorded_verdicts_of_older_ledgers_are_final_and_failed_is_unsafe() -> None:
    assert record_is_final({"outcome": "failed"}) and record_is_final({"outcome": "clean"})
    assert not record_is_final({"outcome": "incomplete"})
    assert not record_is_final({"outcome": "clean", "phase": "screening", "final": False})
    assert record_is_screened({"outcome": "clean", "phase": "screening", "final": False})
    assert not record_is_screened({"outcome": "clean"})  # a pre-phase verdict is not screening
    assert not passed("failed", "continue")  # an old `failed` reads as unsafe
    assert passed("clean", "stop") and passed("not-qualified", "continue")
    assert not passed("not-qualified", "stop") and not passed("unsafe", "continue")


def test_costs_per_kind(tmp_path: Path) -> None:
    t1 = write_phased_campaign(tmp_path).tiers[1]
    q, s, m = (x.name for x in (*t1.screening, *t1.thorough))

    def r(task: str, samples: int, tokens: int, seconds: float) -> TaskResult:
        return TaskResult(task, None, samples=samples, tokens=tokens, seconds=seconds)

    screening = phase_cost(t1, [r(q, 5, 1000, 2.0), r(s, 4, 800, 3.5), r("other", 9, 9, 9)])
    assert screening == {
        "qualification": {"tasks": 1, "samples": 5, "tokens": 1000, "seconds": 2.0},
        "safety": {"tasks": 1, "samples": 4, "tokens": 800, "seconds": 3.5},
    }
    total = merge_costs(screening, phase_cost(t1, [r(m, 8, 4000, 10.25)]), screening)
    assert list(total) == ["qualification", "safety", "thorough"]
    assert total["qualification"] == {"tasks": 2, "samples": 10, "tokens": 2000, "seconds": 4.0}
    assert describe_cost(total).startswith("qualification 10 samples 2.0k tokens 4.0 s; safety")
    assert describe_cost({}) == "-"


def test_what_a_verdict_saves(tmp_path: Path) -> None:
    c = write_phased_campaign(tmp_path, on_not_qualified=("stop", "continue", "stop"))
    t0, t1, t2 = c.tiers
    assert skipped(c, t0, "screening", NOT_QUALIFIED) == {
        "thorough": [t0.thorough[0].name],
        "tiers": ["tool-restricted", "networked"],
    }
    # continue: only this tier's thorough tasks are skipped
    assert skipped(c, t1, "screening", NOT_QUALIFIED) == {"thorough": [t1.thorough[0].name]}
    assert skipped(c, t1, "screening", UNSAFE)["tiers"] == ["networked"]
    assert skipped(c, t2, "screening", UNSAFE) == {"thorough": [t2.thorough[0].name]}
    assert skipped(c, t1, "thorough", UNSAFE) == {"tiers": ["networked"]}  # thorough ran
    assert skipped(c, t1, "screening", CLEAN) == {} == skipped(c, t2, "thorough", CLEAN)


def test_an_old_ledger_verifies_reads_failed_as_unsafe_and_resumes_to_a_halt(
    tmp_path: Path,
) -> None:
    """A run recorded before phases (no `phase`/`final`, outcome `failed`, no pins): the ledger
    still verifies, and resuming it halts where it had failed without running anything."""
    from _runner_fakes import FakeExecutor, fake_audit, write_campaign

    from tierlock.runner import Ledger, run_campaign, run_state
    from tierlock.runner._run import _policy_hashes

    c = write_campaign(tmp_path / "c")
    runs = tmp_path / "runs"
    old_run = {
        "campaign_file": c.source,
        "campaign_digest": c.digest(),
        "policy_sha256": _policy_hashes(c),
        "tiers": [{"tier": t.tier, "approval_required": False} for t in c.tiers],
    }
    with Ledger(runs / "ledger.sqlite") as ledger:

        def add(kind: str, tier: str | None = None, payload: dict | None = None) -> None:
            ledger.append(kind, run_id="fake-m", campaign="fake", model="m", tier=tier,
                          payload=payload)  # fmt: skip

        add("run_started", payload=old_run)
        add("tier_started", "text-only", {"attempt": 1, "tasks": ["t"]})
        add("verdict", "text-only", {"attempt": 1, "outcome": "clean", "reasons": ["ok"]})
        add("tier_started", "tool-restricted", {"attempt": 1, "tasks": ["t"]})
        reasons = ["task tool_restricted_task: threshold accuracy >= 0.9 not met"]
        add("verdict", "tool-restricted", {"attempt": 1, "outcome": "failed", "reasons": reasons})
        assert ledger.verify().ok
        st = run_state(ledger, "fake-m")
        assert (st.outcome("text-only"), st.outcome("tool-restricted")) == ("clean", "unsafe")
        assert st.passed("text-only") and not st.passed("tool-restricted")
        ex = FakeExecutor()
        out = run_campaign(c, "m", ledger=ledger, runs_dir=runs, executor=ex, auditor=fake_audit)
        assert (out.status, out.tier, out.exit_code) == ("halted", "tool-restricted", 2)
        assert out.reasons == tuple(reasons) and ex.started == []
        assert ledger.verify().ok


def _climb(tmp_path: Path, plan: dict, **campaign_kw):  # type: ignore[no-untyped-def]
    from _phased_fakes import PhasedExecutor, phased_audit

    from tierlock.runner import Ledger, run_campaign

    c = write_phased_campaign(tmp_path / "c", **campaign_kw)
    runs = tmp_path / "runs"
    ex = PhasedExecutor(plan, ledger_path=runs / "ledger.sqlite", campaign=c)
    with Ledger(runs / "ledger.sqlite") as ledger:
        out = run_campaign(c, "m", ledger=ledger, runs_dir=runs, executor=ex, auditor=phased_audit)
        recs = list(ledger.records())
    assert not ex.early, ex.early
    return out, ex, recs


def test_clean_tiers_measure_after_screening_with_costs_per_kind(tmp_path: Path) -> None:
    out, ex, recs = _climb(tmp_path, {})
    assert (out.status, out.exit_code) == ("top", 0)
    assert [(t, k) for _, t, k in ex.calls] == [
        (t, kinds) for t in ("text-only", "tool-restricted", "networked")
        for kinds in (("qualification", "safety"), ("thorough",))
    ]  # fmt: skip
    final = [r.payload for r in recs if r.kind == "verdict" and r.payload["final"]]
    assert [p["phase"] for p in final] == ["thorough"] * 3
    assert final[0]["cost"]["thorough"] == {"tasks": 1, "samples": 3, "tokens": 300, "seconds": 1.5}
    assert set(final[0]["cost"]) == {"qualification", "safety", "thorough"}
    assert final[0]["measurements"] == {"text_only_thorough": {"done": {"accuracy": 0.75}}}


def test_not_qualified_stops_before_thorough_and_higher_tiers(tmp_path: Path) -> None:
    out, ex, recs = _climb(tmp_path, {"tool-restricted": ["unqualified"]})
    assert (out.status, out.tier, out.exit_code) == ("not_qualified", "tool-restricted", 5)
    assert [(t, k) for _, t, k in ex.calls][-1] == ("tool-restricted", ("qualification", "safety"))
    assert not any(t == "networked" or (t == "tool-restricted" and k == ("thorough",))
                   for _, t, k in ex.calls)  # fmt: skip
    (v,) = [r.payload for r in recs if r.kind == "verdict" and r.tier == "tool-restricted"]
    assert v["skipped"] == {"thorough": ["tool_restricted_thorough"], "tiers": ["networked"]}


def test_on_not_qualified_continue_climbs_on_without_measuring(tmp_path: Path) -> None:
    out, ex, _ = _climb(
        tmp_path, {"text-only": ["unqualified"]}, on_not_qualified=("continue", "stop", "stop")
    )
    assert (out.status, out.tier, out.exit_code) == ("not_qualified", "text-only", 5)
    assert ("text-only", ("thorough",)) not in [(t, k) for _, t, k in ex.calls]
    assert ("networked", ("thorough",)) in [(t, k) for _, t, k in ex.calls]


def test_a_finding_while_measuring_is_unsafe(tmp_path: Path) -> None:
    out, _ex, recs = _climb(tmp_path, {"tool-restricted": ["clean", "finding"]})
    assert (out.status, out.tier, out.exit_code) == ("halted", "tool-restricted", 2)
    (v,) = [r.payload for r in recs if r.kind == "verdict" and r.payload["final"]][-1:]
    assert (v["phase"], v["outcome"], v["skipped"]) == (
        "thorough",
        "unsafe",
        {"tiers": ["networked"]},
    )
    assert "critical canary finding" in v["reasons"][0]


def test_an_incomplete_measurement_resumes_only_the_thorough_phase(tmp_path: Path) -> None:
    out, _ex, _ = _climb(tmp_path, {"text-only": ["clean", "raise"]})
    assert (out.status, out.tier) == ("incomplete", "text-only")
    out2, ex2, recs = _climb(tmp_path, {})
    assert out2.status == "top"
    assert next((t, k) for _, t, k in ex2.calls) == ("text-only", ("thorough",))
    started = [
        r.payload["phase"] for r in recs if r.kind == "tier_started" and r.tier == "text-only"
    ]
    assert started == ["screening", "thorough", "thorough"]
