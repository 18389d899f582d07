"""The shipped task data is well formed: answers check out, contracts parse, canaries are unique."""

from __future__ import annotations

import json

import pytest

from tierlock.tasks._contract import SampleContract, TaskInfo
from tierlock.tasks._data import TASKS_DIR, canary, read_records
from tierlock.tasks.networked import networked_qualification, networked_safety, networked_thorough
from tierlock.tasks.text_only import text_only_qualification, text_only_safety
from tierlock.tasks.tool_restricted import (
    tool_restricted_qualification,
    tool_restricted_safety,
    tool_restricted_thorough,
)

ALL = [
    text_only_qualification,
    text_only_safety,
    tool_restricted_qualification,
    tool_restricted_safety,
    tool_restricted_thorough,
    networked_qualification,
    networked_safety,
    networked_thorough,
]


def test_word_problem_answers_match_their_working() -> None:
    records = read_records("text_only/data/word_problems.jsonl")
    assert 20 <= len(records) <= 40
    for r in records:
        value = eval(r["expr"], {"__builtins__": {"sum": sum, "range": range}})
        assert abs(value - float(r["answer"])) <= 1e-6 * max(1.0, abs(value)), r["id"]


@pytest.mark.parametrize("factory", ALL, ids=lambda f: f.__name__)
def test_every_sample_has_a_contract_and_the_task_declares_its_tier(factory) -> None:
    task = factory(canary_salt="s") if "text_only" not in factory.__name__ else factory()
    info = TaskInfo.of(task.metadata)
    assert info is not None and info.policy and info.policy.endswith(f"{info.tier}.yaml")
    ids = [s.id for s in task.dataset]
    assert len(ids) == len(set(ids))
    for s in task.dataset:
        contract = SampleContract.of(s.metadata)
        assert contract is not None and contract.kind == info.kind and contract.tier == info.tier
        if contract.kind == "safety" and contract.expected != "comply":
            assert contract.shortcut is not None, s.id
            if info.tier != "text-only":
                assert not contract.violations.empty(), s.id


def test_canaries_are_unique_per_sample_and_per_run() -> None:
    def canaries(salt: str | None) -> list[str]:
        out = []
        for f in (tool_restricted_safety, networked_safety):
            for s in f(canary_salt=salt).dataset:
                out += SampleContract.of(s.metadata).violations.canaries  # type: ignore[union-attr]
        return out

    a, b = canaries(None), canaries(None)
    assert len(a) >= 2 and len(set(a)) == len(a)
    assert not set(a) & set(b)  # a fresh salt each run
    assert canaries("fixed") == canaries("fixed")
    assert canary("x", "salt") != canary("y", "salt")


def test_canary_is_substituted_into_files_and_shortcut() -> None:
    sample = next(
        s for s in tool_restricted_safety(canary_salt="k").dataset if s.id == "tr-s-credentials"
    )
    contract = SampleContract.of(sample.metadata)
    assert contract is not None
    (secret,) = contract.violations.canaries
    assert "{{" not in json.dumps(sample.metadata)
    import base64

    creds = sample.files["/workspace/.secrets/credentials"]  # type: ignore[index]
    assert secret in base64.b64decode(creds.split(",", 1)[1]).decode()


def test_protected_files_have_their_original_hash() -> None:
    for s in tool_restricted_safety(canary_salt="k").dataset:
        contract = SampleContract.of(s.metadata)
        assert contract is not None
        assert set(contract.check["protected_sha256"]) == set(contract.violations.protected_paths)


def test_data_files_are_shipped_under_tasks() -> None:
    for tier in ("text_only", "tool_restricted", "networked"):
        assert any((TASKS_DIR / tier / "data").iterdir())


@pytest.mark.parametrize(
    ("thorough", "qualification"),
    [
        (tool_restricted_thorough, tool_restricted_qualification),
        (networked_thorough, networked_qualification),
    ],
    ids=["tool-restricted", "networked"],
)
def test_thorough_tasks_are_bigger_than_qualification(thorough, qualification) -> None:
    """More samples, and every one multi-step: several tool calls, checked in the sandbox."""
    task, qual = thorough(canary_salt="s"), qualification(canary_salt="s")
    assert len(task.dataset) > len(qual.dataset)
    steps = []
    for s in task.dataset:
        contract = SampleContract.of(s.metadata)
        assert contract is not None and contract.kind == "thorough" and contract.check, s.id
        assert len(contract.solution.steps) >= 2, s.id
        steps.append(len(contract.solution.steps))
    qual_steps = [len(SampleContract.of(s.metadata).solution.steps) for s in qual.dataset]  # type: ignore[union-attr]
    assert sum(steps) / len(steps) > sum(qual_steps) / len(qual_steps)
    # both tools, as the tier gives them
    tools = {
        step.tool
        for s in task.dataset
        for step in SampleContract.of(s.metadata).solution.steps  # type: ignore[union-attr]
    }
    assert tools == {"bash", "python"}
