"""The tier loop against the real ledger and gate, with Inspect execution replaced by a fake."""

from __future__ import annotations

import contextlib
import dataclasses
from pathlib import Path

import pytest
from _runner_fakes import FakeExecutor, SimulatedCrash, fake_audit, write_campaign

from tierlock.runner import Ledger, approve, run_campaign, run_state
from tierlock.runner._evidence import log_path
from tierlock.runner._ledger_record import Record
from tierlock.sandbox import TierlockError


@pytest.fixture
def ledger(tmp_path: Path):
    with Ledger(tmp_path / "runs" / "ledger.sqlite") as led:
        yield led


def run(campaign, ledger: Ledger, executor: FakeExecutor, model: str = "m", **kw):
    return run_campaign(
        campaign,
        model,
        ledger=ledger,
        runs_dir=ledger.path.parent,
        executor=executor,
        auditor=fake_audit,
        **kw,
    )


def kinds(ledger: Ledger, run_id: str) -> list[tuple[str, str | None]]:
    return [(r.kind, r.tier) for r in ledger.records(run_id)]


def verdicts(ledger: Ledger) -> list[Record]:
    return [r for r in ledger.records() if r.kind == "verdict"]


def test_clean_model_climbs_to_the_top(tmp_path: Path, ledger: Ledger) -> None:
    c = write_campaign(tmp_path / "c")
    ex = FakeExecutor()
    out = run(c, ledger, ex)
    assert (out.status, out.tier, out.exit_code) == ("top", "networked", 0)
    assert [t for _, t, _ in ex.started] == ["text-only", "tool-restricted", "networked"]
    per_tier = ["tier_started", "log_written", "audit_result", "verdict"]
    expected = (
        [("run_started", None)]
        + [(k, t) for t in ("text-only", "tool-restricted", "networked") for k in per_tier]
        + [("run_finished", "networked")]
    )
    assert kinds(ledger, out.run_id) == expected
    assert ledger.verify().ok
    assert out.run_id == "fake-m"
    assert (ledger.root / "fake-m" / "text-only" / "text_only_task-1.json").is_file()


@pytest.mark.parametrize("behaviour", ["finding", "threshold"])
def test_failed_gate_halts_and_never_starts_the_next_tier(tmp_path, ledger, behaviour) -> None:
    c = write_campaign(tmp_path / "c")
    ex = FakeExecutor({"tool-restricted": [behaviour]})
    out = run(c, ledger, ex)
    assert (out.status, out.tier, out.exit_code) == ("halted", "tool-restricted", 2)
    assert "networked" not in [t for _, t, _ in ex.started]
    assert out.reasons and ("sample s1" in out.reasons[0] or "accuracy = 0.5" in out.reasons[0])
    # a finished run is reported again, never rerun
    again = run(c, ledger, FakeExecutor())
    assert again == out
    assert len(verdicts(ledger)) == 2


@pytest.mark.parametrize("behaviour", ["sample_error", "no_log", "raise"])
def test_incomplete_tier_stops_and_the_next_run_retries_it(tmp_path, ledger, behaviour) -> None:
    c = write_campaign(tmp_path / "c")
    ex = FakeExecutor({"text-only": [behaviour]})
    out = run(c, ledger, ex)
    assert (out.status, out.tier, out.exit_code) == ("incomplete", "text-only", 3)
    assert [v.payload["outcome"] for v in verdicts(ledger)] == ["incomplete"]
    out2 = run(c, ledger, ex)
    assert out2.status == "top" and out2.run_id == out.run_id
    assert [(t, a) for _, t, a in ex.started][:2] == [("text-only", 1), ("text-only", 2)]


def test_approval_stops_the_run_until_recorded(tmp_path, ledger) -> None:
    c = write_campaign(tmp_path / "c", approval=(False, False, True))
    ex = FakeExecutor()
    out = run(c, ledger, ex)
    assert (out.status, out.tier, out.exit_code) == ("awaiting_approval", "networked", 4)
    assert "tierlock approve fake-m --tier networked" in out.reasons[0]
    # asking again does not rerun anything nor repeat the record
    assert run(c, ledger, ex).status == "awaiting_approval"
    assert [k for k, _ in kinds(ledger, out.run_id)].count("awaiting_approval") == 1
    assert len(ex.started) == 2
    approve(ledger, out.run_id, "networked", "Ada", "reviewed tier 2 transcripts")
    with pytest.raises(TierlockError, match="already approved by Ada"):
        approve(ledger, out.run_id, "networked", "Bob", "again")
    final = run(c, ledger, ex)
    assert final.status == "top"
    assert [t for _, t, _ in ex.started] == ["text-only", "tool-restricted", "networked"]


def test_approval_is_refused_when_it_cannot_apply(tmp_path, ledger) -> None:
    c = write_campaign(tmp_path / "c", approval=(False, True, False))
    out = run(c, ledger, FakeExecutor({"text-only": ["raise"]}))
    with pytest.raises(TierlockError, match="does not require an approval"):
        approve(ledger, out.run_id, "networked", "Ada", "note")
    with pytest.raises(TierlockError, match="text-only has no clean verdict"):
        approve(ledger, out.run_id, "tool-restricted", "Ada", "note")
    with pytest.raises(TierlockError, match="no tier 'gpu'"):
        approve(ledger, out.run_id, "gpu", "Ada", "note")
    with pytest.raises(TierlockError, match="no run"):
        approve(ledger, "nope", "networked", "Ada", "note")


def test_crash_mid_tier_resumes_without_rerunning_finished_tiers(tmp_path, ledger) -> None:
    c = write_campaign(tmp_path / "c")
    ex = FakeExecutor({"tool-restricted": ["crash"]})
    with pytest.raises(SimulatedCrash):
        run(c, ledger, ex)
    out = run(c, ledger, ex)
    assert out.status == "top"
    assert [(t, a) for _, t, a in ex.started] == [
        ("text-only", 1),
        ("tool-restricted", 1),
        ("tool-restricted", 2),
        ("networked", 1),
    ]
    assert [v.tier for v in verdicts(ledger)] == ["text-only", "tool-restricted", "networked"]
    assert "run_resumed" in [k for k, _ in kinds(ledger, out.run_id)]


class CrashingLedger(Ledger):
    """Dies right after the n-th append commits (SIGKILL between two records)."""

    def __init__(self, path: Path, after: int) -> None:
        super().__init__(path)
        self.after = after

    def append(self, *a, **kw):  # type: ignore[no-untyped-def]
        rec = super().append(*a, **kw)
        self.after -= 1
        if self.after == 0:
            raise SimulatedCrash(rec.kind)
        return rec


@pytest.mark.parametrize("after", range(1, 15))
def test_crash_after_any_record_never_records_a_verdict_twice(tmp_path, after) -> None:
    c = write_campaign(tmp_path / "c")
    path = tmp_path / "runs" / "ledger.sqlite"
    ex = FakeExecutor({"networked": ["threshold"] * 3})
    with CrashingLedger(path, after) as led, contextlib.suppress(SimulatedCrash):
        run(c, led, ex)
    with Ledger(path) as led:
        out = run(c, led, ex)
        assert (out.status, out.tier) == ("halted", "networked")
        tiers = [v.tier for v in verdicts(led)]
        assert tiers == ["text-only", "tool-restricted", "networked"]
        assert [r.kind for r in led.records()].count("run_finished") == 1
        assert led.verify().ok


def test_new_starts_a_fresh_run_and_status_keeps_both(tmp_path, ledger) -> None:
    c = write_campaign(tmp_path / "c")
    first = run(c, ledger, FakeExecutor({"text-only": ["threshold"]}))
    second = run(c, ledger, FakeExecutor(), new=True)
    assert (first.run_id, second.run_id) == ("fake-m", "fake-m-2")
    assert second.status == "top"
    assert run_state(ledger, "fake-m").finished is not None


def test_changed_campaign_is_not_resumed_silently(tmp_path, ledger) -> None:
    c = write_campaign(tmp_path / "c")
    run(c, ledger, FakeExecutor({"text-only": ["raise"]}))
    changed = write_campaign(tmp_path / "c", approval=(True, False, False))
    with pytest.raises(TierlockError, match="changed since run fake-m started"):
        run(changed, ledger, FakeExecutor())


def test_models_are_tracked_separately(tmp_path, ledger) -> None:
    c = write_campaign(tmp_path / "c")
    a = run(c, ledger, FakeExecutor(), model="openai/gpt-x")
    b = run(c, ledger, FakeExecutor({"text-only": ["finding"]}), model="tierlock/reckless")
    assert (a.run_id, a.status) == ("fake-openai_gpt-x", "top")
    assert (b.run_id, b.status, b.tier) == ("fake-tierlock_reckless", "halted", "text-only")


def test_changed_policy_is_not_resumed_silently(tmp_path, ledger) -> None:
    c = write_campaign(tmp_path / "c")
    run(c, ledger, FakeExecutor({"text-only": ["raise"]}))
    policy = tmp_path / "c" / "networked.yaml"
    policy.write_text(policy.read_text() + "description: widened\n")
    with pytest.raises(
        TierlockError, match=r"networked policy .* changed since run fake-m started"
    ):
        run(c, ledger, FakeExecutor())


# -- evidence: what a verdict may rest on (issue 17, item 1) ---------------------------------
def audit_entries(led: Ledger) -> list[tuple[str | None, str, str | None]]:
    """(tier, log sha256, problem) of every log entry of every audit_result record."""
    return [
        (r.tier, e["sha256"], e["problem"])
        for r in led.records()
        if r.kind == "audit_result"
        for e in r.payload["logs"]
    ]


def test_missing_audit_is_incomplete_never_clean(tmp_path, ledger) -> None:
    c = write_campaign(tmp_path / "c")
    ex = FakeExecutor(reuse=True)
    out = run_campaign(
        c, "m", ledger=ledger, runs_dir=ledger.path.parent, executor=ex,
        auditor=lambda log, sha: None,
    )  # fmt: skip
    assert (out.status, out.tier) == ("incomplete", "text-only")
    assert out.reasons == (
        "task text_only_task: log fake-m/text-only/text_only_task.json was not audited: "
        "no audit installed: findings not checked",
    )
    # with the audit installed, the next run audits the same (reused) log and climbs
    again = run(c, ledger, ex)
    assert again.status == "top"
    assert [p for t, _, p in audit_entries(ledger) if t == "text-only"] == [
        "no audit installed: findings not checked",
        None,
    ]


def test_audit_that_raises_is_incomplete_and_retried(tmp_path, ledger) -> None:
    c = write_campaign(tmp_path / "c")

    def broken(log: Path, sha: str | None) -> list:
        raise OSError("disk went away")

    ex = FakeExecutor(reuse=True)
    out = run_campaign(
        c, "m", ledger=ledger, runs_dir=ledger.path.parent, executor=ex, auditor=broken
    )
    assert out.status == "incomplete"
    assert "was not audited: OSError: disk went away" in out.reasons[0]
    assert run(c, ledger, ex).status == "top"


def test_log_reported_at_a_missing_path_is_never_clean(tmp_path, ledger) -> None:
    """The defect of issue 17: a resumed attempt's log, reported at a location that is not a
    file (a `file:` URI taken as a path), was skipped by the audit and the tier called clean."""

    class Elsewhere(FakeExecutor):
        def run_tier_tasks(self, ctx):  # type: ignore[no-untyped-def]
            results = super().run_tier_tasks(ctx)
            return [
                dataclasses.replace(r, log=Path(f"file://{r.log}")) if r.log else r for r in results
            ]

    c = write_campaign(tmp_path / "c")
    out = run(c, ledger, Elsewhere())
    assert (out.status, out.tier) == ("incomplete", "text-only")
    assert "does not exist or is not a regular file" in out.reasons[0]
    assert "text_only_task" in out.reasons[0]
    assert not [
        r for r in ledger.records() if r.kind == "verdict" and r.payload["outcome"] == "clean"
    ]


def test_log_changed_after_it_was_recorded_is_not_clean(tmp_path) -> None:
    c = write_campaign(tmp_path / "c")
    path = tmp_path / "runs" / "ledger.sqlite"
    ex = FakeExecutor(reuse=True)
    with CrashingLedger(path, 3) as led, contextlib.suppress(SimulatedCrash):
        run(c, led, ex)  # run_started, tier_started, log_written: crash
    log = tmp_path / "runs" / "fake-m" / "text-only" / "text_only_task.json"
    log.write_text(log.read_text() + " ")
    with Ledger(path) as led:
        # issue 17 item 2: the resume re-verifies the logs it reuses and stops (exit 1)
        with pytest.raises(TierlockError, match=r"record 3 \(log_written\): cited log "
                           r"fake-m/text-only/text_only_task.json changed"):  # fmt: skip
            run(c, led, ex)
        assert [r.kind for r in led.records()].count("log_written") == 1
        assert [r.kind for r in led.records()][-1] == "log_written"  # nothing recorded after


@pytest.mark.parametrize("after", range(1, 13))
def test_crash_at_any_point_keeps_an_audit_halt(tmp_path, after) -> None:
    """The reckless case of issue 17 with fakes: the tool tier halts on the audit alone (its
    threshold is met); a crash after any record, then a resume that reuses the finished logs,
    still halts there, and every log hash is audited exactly once."""
    c = write_campaign(tmp_path / "c")
    path = tmp_path / "runs" / "ledger.sqlite"
    ex = FakeExecutor({"tool-restricted": ["finding"]}, reuse=True)
    with CrashingLedger(path, after) as led, contextlib.suppress(SimulatedCrash):
        run(c, led, ex)
    with Ledger(path) as led:
        out = run(c, led, ex)
        assert (out.status, out.tier) == ("halted", "tool-restricted")
        assert "critical canary finding" in out.reasons[0]
        good = [(t, sha) for t, sha, problem in audit_entries(led) if problem is None]
        assert len(good) == len(set(good)) == 2  # one log per tier, each audited once
        final = {v.tier: v for v in verdicts(led)}
        assert [v.payload["outcome"] for v in final.values()] == ["clean", "unsafe"]
        for v in final.values():
            (cited,) = v.payload["evidence"]
            assert (v.tier, cited["sha256"]) in good
            assert cited["sha256"] == v.logs[0].sha256
        assert led.verify().ok


def test_log_path_reads_paths_and_file_uris() -> None:
    assert log_path("/runs/a.eval") == Path("/runs/a.eval")
    assert log_path(Path("runs/a.eval")) == Path("runs/a.eval")
    assert log_path("file:///runs/x%20y%40z.eval") == Path("/runs/x y@z.eval")
    assert log_path("file://localhost/runs/a.eval") == Path("/runs/a.eval")
    assert log_path("file://otherhost/runs/a.eval") is None
    assert log_path("s3://bucket/a.eval") is None
    assert log_path("") is None and log_path(None) is None


def test_summarize_log_finds_a_log_given_as_a_file_uri(tmp_path) -> None:
    from types import SimpleNamespace

    from tierlock.runner._inspect import summarize_log

    log = tmp_path / "a b.eval"
    location = log.as_uri()
    result = summarize_log(
        "t", SimpleNamespace(location=location, results=None, error=None, status="success")
    )
    assert result.log == log


def test_evidence_check_refuses_a_log_that_changed_or_was_never_audited(tmp_path, ledger) -> None:
    """The gate's own check, apart from the resume-time ledger verification: a log whose bytes
    no longer hash to its log_written record, or whose hash no audit_result vouches for, is a
    reason naming the task and log, and the verdict is incomplete, never clean."""
    from tierlock.runner._evidence import audit_entry, check_evidence, with_evidence
    from tierlock.runner._gate import TaskResult, Verdict

    common = {"run_id": "r", "campaign": "c", "model": "m", "tier": "text-only"}
    a, b = ledger.root / "a.eval", ledger.root / "b.eval"
    a.write_text("a")
    b.write_text("b")
    ledger.append("log_written", **common, payload={"task": "ta"}, logs=[a])
    rec = ledger.append("log_written", **common, payload={"task": "tb"}, logs=[b])
    entry = audit_entry("tb", "b.eval", rec.logs[0].sha256, [], None)
    ledger.append("audit_result", **common, payload={"logs": [entry]}, logs=[b])
    results = [
        TaskResult("ta", a, samples=1, completed=1),
        TaskResult("tb", b, samples=1, completed=1),
    ]
    ev = check_evidence(ledger, "r", "text-only", results)
    assert ev.problems == ["task ta: log a.eval was not audited"]
    assert [c["task"] for c in ev.cited] == ["tb"]
    b.write_text("b, rewritten")
    ev = check_evidence(ledger, "r", "text-only", results)
    assert ev.problems[1] == "task tb: log b.eval changed since the ledger recorded it (record 2)"
    verdict = with_evidence(Verdict("clean", ("all fine",)), ev)
    assert verdict.outcome == "incomplete" and verdict.reasons == tuple(ev.problems)
