"""Gate semantics: clean only when completion, audit, thresholds and approval all show it."""

from __future__ import annotations

from pathlib import Path

import pytest

from runner import Finding, SampleError, TaskResult, TierSpec, evaluate_gate
from runner._gate import tolerated


def tier(
    max_severity: str = "none", approval: bool = False, thresholds=("accuracy >= 0.9",)
) -> TierSpec:
    return TierSpec.model_validate(
        {
            "tier": "text-only",
            "policy": "p.yaml",
            "tasks": [
                {"task": "t.py@qual", "kind": "qualification", "thresholds": list(thresholds)}
            ],
            "gate": {"max_severity": max_severity, "approval_required": approval},
        }
    )


def result(**kw) -> TaskResult:
    base = dict(
        task="qual",
        log=Path("x.eval"),
        status="success",
        samples=3,
        completed=3,
        metrics={"exact": {"accuracy": 1.0}},
    )
    return TaskResult(**{**base, **kw})


def test_all_good_is_clean() -> None:
    v = evaluate_gate(tier(), [result()], [], approved=False)
    assert v.outcome == "clean"


def test_threshold_missed_fails_naming_task_and_metric() -> None:
    v = evaluate_gate(tier(), [result(metrics={"exact": {"accuracy": 0.5}})], [], approved=False)
    assert v.outcome == "failed"
    assert v.reasons == ("task qual: threshold accuracy >= 0.9 not met: accuracy = 0.5",)


def test_boundary_value_meets_threshold() -> None:
    assert evaluate_gate(
        tier(), [result(metrics={"s": {"accuracy": 0.9}})], [], approved=False
    ).clean


@pytest.mark.parametrize(
    ("metrics", "why"),
    [
        ({}, "no metric accuracy"),
        ({"a": {"accuracy": 1.0}, "b": {"accuracy": 1.0}}, "ambiguous"),
    ],
)
def test_missing_or_ambiguous_metric_is_not_met(metrics, why) -> None:
    v = evaluate_gate(tier(), [result(metrics=metrics)], [], approved=False)
    assert v.outcome == "failed" and why in v.reasons[0]


def test_scorer_qualified_threshold() -> None:
    t = tier(thresholds=("b/accuracy >= 0.9",))
    metrics = {"a": {"accuracy": 0.0}, "b": {"accuracy": 1.0}}
    assert evaluate_gate(t, [result(metrics=metrics)], [], approved=False).clean
    assert not evaluate_gate(
        t, [result(metrics={"a": {"accuracy": 1.0}})], [], approved=False
    ).clean


def test_any_finding_fails_by_default_naming_the_sample() -> None:
    f = Finding("network", "low", "s7", "curl http://example.org", task="qual", rule="net-curl")
    v = evaluate_gate(tier(), [result()], [f], approved=False)
    assert v.outcome == "failed"
    assert v.reasons == (
        "task qual: sample s7: low network finding [net-curl]: curl http://example.org",
    )


def test_findings_up_to_max_severity_are_tolerated() -> None:
    low = Finding("resources", "low", "s1", "timeout")
    high = Finding("network", "high", "s2", "curl")
    assert evaluate_gate(tier("medium"), [result()], [low], approved=False).clean
    assert not evaluate_gate(tier("medium"), [result()], [low, high], approved=False).clean


def test_unknown_severity_is_never_tolerated() -> None:
    assert not tolerated("catastrophic", "critical")
    assert tolerated("critical", "critical")
    assert not tolerated("low", "none")


@pytest.mark.parametrize(
    ("kw", "why"),
    [
        ({"status": "error", "error": "boom"}, "log status is error: boom"),
        ({"completed": 2}, "only 2 of 3 samples completed"),
        ({"samples": 0, "completed": 0}, "no samples ran"),
        (
            {"sample_errors": (SampleError("s2", 1, "RuntimeError: x"),), "completed": 3},
            "sample s2 (epoch 1) ended in a harness error",
        ),
        ({"log": None}, "no log was written"),
    ],
)
def test_harness_problems_are_incomplete_never_clean(kw, why) -> None:
    v = evaluate_gate(tier(), [result(**kw)], [], approved=False)
    assert v.outcome == "incomplete"
    assert any(why in r for r in v.reasons)


def test_a_task_without_result_is_incomplete() -> None:
    assert evaluate_gate(tier(), [], [], approved=False).outcome == "incomplete"


def test_audit_that_could_not_read_a_log_is_incomplete() -> None:
    v = evaluate_gate(tier(), [result()], [], approved=False, audit_problems=["x.eval (corrupt)"])
    assert v.outcome == "incomplete"


def test_a_finding_is_definitive_even_when_incomplete() -> None:
    f = Finding("canary", "critical", "s1", "canary in output")
    v = evaluate_gate(tier(), [result(status="error")], [f], approved=False)
    assert v.outcome == "failed"


def test_required_approval_must_be_recorded() -> None:
    assert not evaluate_gate(tier(approval=True), [result()], [], approved=False).clean
    assert evaluate_gate(tier(approval=True), [result()], [], approved=True).clean


def test_threshold_reason_names_the_failing_samples() -> None:
    failing = {"exact": tuple(f"q{i:02d}" for i in range(12))}
    r = result(metrics={"exact": {"accuracy": 0.0}}, failing=failing)
    (reason,) = evaluate_gate(tier(), [r], [], approved=False).reasons
    assert reason.endswith(
        "samples not passing: q00, q01, q02, q03, q04, q05, q06, q07, q08, q09 and 2 more"
    )
