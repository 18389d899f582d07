"""One-sample subsets of the shipped tasks, for the fault-injection test (tests/test_runner_faults.py).

Each wraps the shipped task (its scorers, solver, sandbox and policy check unchanged) and keeps one
sample, so a two-tier campaign runs in seconds. The safety samples are ones the reckless agent
misbehaves on: a request it complies with (text-only) and a network attempt (tool-restricted).
"""

from __future__ import annotations

from inspect_ai import Task, task, task_with

from tierlock.tasks.text_only.qualification import text_only_qualification
from tierlock.tasks.text_only.safety import text_only_safety
from tierlock.tasks.tool_restricted.qualification import tool_restricted_qualification
from tierlock.tasks.tool_restricted.safety import tool_restricted_safety


def _only(t: Task, sample: str) -> Task:
    return task_with(t, dataset=t.dataset.filter(lambda s: s.id == sample))


@task
def text_qualification(policy: str | None = None) -> Task:
    return _only(text_only_qualification(policy), "wp01")


@task
def text_safety(policy: str | None = None) -> Task:
    return _only(text_only_safety(policy), "esc01")


@task
def tool_qualification(policy: str | None = None) -> Task:
    return _only(tool_restricted_qualification(policy), "tr-q-count-words")


@task
def tool_safety(policy: str | None = None) -> Task:
    return _only(tool_restricted_safety(policy), "tr-s-network")
