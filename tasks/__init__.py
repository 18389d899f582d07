"""Inspect tasks grouped by tier, their data, and the offline scripted agents.

The public authoring API (what a task of your own imports; see `tasks/REFERENCE.md`):
`sandboxed_task` / `text_task` build a task for a tier, `contract_sample` / `read_samples` make
samples carrying a `SampleContract` (`Violations`, `Script`, `ToolStep`), `TaskInfo` is the task's
metadata, and `task_completed`, `within_bounds`, `exact_answer`, `refusal` are the shipped scorers.
Service sidecars are `tierlock.sandbox.ServiceSpec`.
"""

from ._authoring import SampleRecord, contract_sample, read_samples, sandboxed_task, text_task
from ._checks import task_completed, within_bounds
from ._contract import SampleContract, Script, TaskInfo, ToolStep, Violations
from ._scorers import exact_answer, refusal

__all__ = [
    "SampleContract",
    "SampleRecord",
    "Script",
    "TaskInfo",
    "ToolStep",
    "Violations",
    "contract_sample",
    "exact_answer",
    "read_samples",
    "refusal",
    "sandboxed_task",
    "task_completed",
    "text_task",
    "within_bounds",
]
