"""A one-sample tool-restricted task for the k8s backend tests (tests/test_k8s_backend.py): the
diligent agent writes an answer file in its working directory, and the sandbox shows it done."""

from __future__ import annotations

from inspect_ai import Task, task

from tierlock.tasks import contract_sample, sandboxed_task


@task
def k8s_probe(policy: str | None = None) -> Task:
    sample = contract_sample(
        "answer",
        "Write the number 42 into answer.txt in your working directory, then submit 42.",
        {
            "kind": "qualification",
            "tier": "tool-restricted",
            "solution": {
                "steps": [{"tool": "bash", "arguments": {"command": "echo 42 > answer.txt"}}],
                "answer": "42",
            },
            "check": {"answer_file": "answer.txt", "expected": "42"},
        },
    )
    return sandboxed_task([sample], tier="tool-restricted", kind="qualification", policy=policy)
