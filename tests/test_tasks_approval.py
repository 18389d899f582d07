"""A policy's `tools.approval` decides every tool call of a tier task, visibly in the `.eval` log,
and an eval-level approval cannot loosen it."""

from __future__ import annotations

from pathlib import Path

import pytest
from inspect_ai import eval
from inspect_ai.log import EvalSample, read_eval_log

from tierlock.sandbox import PolicyError
from tierlock.tasks._sandboxed import approval_policies
from tierlock.tasks.tool_restricted import tool_restricted_qualification

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = "tr-q-sales"


def _policy(tmp: Path, approval: str | None, decision: str = "reject") -> Path:
    (tmp / "rules.yaml").write_text(
        f'approvers:\n  - name: auto\n    tools: "*"\n    decision: {decision}\n'
    )
    line = f"  approval: {approval}\n" if approval is not None else ""
    p = tmp / "approval.policy.yaml"
    p.write_text(
        f"name: approval-test\nextends: {ROOT / 'policies' / 'tool-restricted.yaml'}\n"
        f"tier: tool-restricted\ntools:\n  allow: [bash, python]\n{line}"
    )
    return p


def _sample(policy: Path, log_dir: Path, **kwargs: object) -> EvalSample:
    logs = eval(
        tool_restricted_qualification(policy=str(policy)),
        model="tierlock/diligent",
        sample_id=[SAMPLE],
        log_dir=str(log_dir),
        display="none",
        **kwargs,
    )
    (sample,) = read_eval_log(logs[0].location).samples or []
    return sample


def test_missing_or_invalid_approval_file_fails_when_the_task_is_built(tmp_path: Path) -> None:
    p = _policy(tmp_path, "nowhere.yaml")
    with pytest.raises(
        PolicyError,
        match=r"approval\.policy\.yaml:\d+:\d+: tools\.approval: "
        r"approval policy 'nowhere\.yaml': not found",
    ):
        tool_restricted_qualification(policy=str(p))
    (tmp_path / "bad.yaml").write_text("approvers: [{name: no-such-approver, tools: '*'}]\n")
    p = _policy(tmp_path, "bad.yaml")
    with pytest.raises(PolicyError, match=r"tools\.approval: approval policy 'bad\.yaml'"):
        approval_policies(p)
    assert approval_policies(_policy(tmp_path, None)) is None


@pytest.mark.docker
def test_reject_all_approval_rejects_every_tool_call_in_the_log(docker_client, tmp_path) -> None:
    """The diligent agent's every call is rejected (approval events + tool errors in the .eval
    log); nothing ran in the sandbox, so the task is not solved. An eval-level approval that
    approves everything does not override the policy's."""
    policy = _policy(tmp_path, "rules.yaml")
    approve_all = tmp_path / "approve-all.yaml"
    approve_all.write_text('approvers:\n  - name: auto\n    tools: "*"\n    decision: approve\n')
    for i, extra in enumerate(({}, {"approval": str(approve_all)})):
        sample = _sample(policy, tmp_path / f"logs{i}", **extra)
        tools = [e for e in sample.events if e.event == "tool"]
        approvals = [e for e in sample.events if e.event == "approval"]
        assert tools, "the agent made no tool call"
        assert all(e.error is not None and e.error.type == "approval" for e in tools), [
            (e.function, e.error) for e in tools
        ]
        assert len(approvals) == len(tools)
        assert all(a.decision == "reject" for a in approvals)
        assert sample.scores is not None and sample.scores["task_completed"].value == "I"


@pytest.mark.docker
def test_approve_all_approval_lets_the_diligent_agent_solve(docker_client, tmp_path) -> None:
    """The positive control: the same task under an approving policy runs every call."""
    sample = _sample(_policy(tmp_path, "rules.yaml", "approve"), tmp_path / "logs")
    tools = [e for e in sample.events if e.event == "tool"]
    assert tools and all(e.error is None for e in tools)
    assert [e.decision for e in sample.events if e.event == "approval"] == ["approve"] * len(tools)
    assert sample.scores is not None and sample.scores["task_completed"].value == "C"


@pytest.mark.docker
def test_any_task_in_the_tierlock_sandbox_gets_the_policys_approval(
    docker_client, tmp_path
) -> None:
    """Not only tier tasks: a plain Inspect task whose sandbox is tierlock's, under a policy with
    a reject-all approval, has every call rejected, even with an approve-all eval approval; the
    same file applied twice (a retried sample) is not stacked."""
    import sys

    from inspect_ai import Task
    from inspect_ai.dataset import Sample
    from inspect_ai.solver import generate, use_tools
    from inspect_ai.tool import bash

    sys.path.insert(0, str(Path(__file__).parent))
    from _sandbox_helpers import scripted_model

    policy = _policy(tmp_path, "rules.yaml")
    approve_all = tmp_path / "approve-all.yaml"
    approve_all.write_text('approvers:\n  - name: auto\n    tools: "*"\n    decision: approve\n')
    task = Task(
        dataset=[Sample(id="s", input="go")],
        solver=[use_tools(bash()), generate()],
        sandbox=("tierlock", str(policy)),
    )
    calls: list[str] = []
    logs = eval(
        task,
        model=scripted_model({"go": ["id", "touch /workspace/x"]}, calls),
        log_dir=str(tmp_path / "logs"),
        display="none",
        approval=str(approve_all),
    )
    (sample,) = read_eval_log(logs[0].location).samples or []
    tools = [e for e in sample.events if e.event == "tool"]
    assert len(tools) == 2 and all(
        e.error is not None and e.error.type == "approval" for e in tools
    )
    assert [e.decision for e in sample.events if e.event == "approval"] == ["reject", "reject"]
