"""Samples done per task while a tier's `eval_set` runs, from Inspect's hooks, as tierlock events.

Inspect calls its hooks when a task starts, when each sample ends (done, or failed with no retry
left) and when a task ends. Inside `reporting_progress()` they become structlog events that the
console's live view, a JSON log or a log file read like any other:

- `task_started` (task, total samples: the dataset's selected samples times epochs);
- `sample_finished` (task, done, total, errors so far);
- `task_finished` (task, status, done: the log's completed samples, which counts samples a
  resumed `eval_set` reused without running them again).

Outside the block the hooks stay registered (Inspect cannot unregister them) but disabled.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import structlog

log = structlog.get_logger("tierlock.progress")


@dataclass
class _Task:
    name: str
    total: int
    done: int = 0
    errors: int = 0


_active = False
_registered = False
_tasks: dict[str, _Task] = {}
_lock = threading.Lock()


@contextmanager
def reporting_progress() -> Iterator[None]:
    """Emit sample progress events while the block runs (one `tierlock run`)."""
    global _active
    _register()
    with _lock:
        _tasks.clear()
        _active = True
    try:
        yield
    finally:
        with _lock:
            _active = False
            _tasks.clear()


def task_total(spec: Any) -> int:
    """Samples one task will report: the dataset's selected samples times epochs."""
    dataset = getattr(spec, "dataset", None)
    ids = getattr(dataset, "sample_ids", None)
    samples = len(ids) if ids else int(getattr(dataset, "samples", 0) or 0)
    epochs = getattr(getattr(spec, "config", None), "epochs", None) or 1
    return samples * int(epochs)


def task_started(eval_id: str, spec: Any) -> None:
    task = _Task(str(getattr(spec, "task", "?")), task_total(spec))
    with _lock:
        _tasks[eval_id] = task
    log.info("task_started", task=task.name, total=task.total)


def sample_finished(eval_id: str, failed: bool) -> None:
    with _lock:
        task = _tasks.get(eval_id)
        if task is None:
            return
        task.done += 1
        task.errors += int(failed)
        done, total, errors = task.done, max(task.total, task.done), task.errors
    log.info("sample_finished", task=task.name, done=done, total=total, errors=errors)


def task_finished(eval_id: str, eval_log: Any) -> None:
    with _lock:
        task = _tasks.pop(eval_id, None)
    if task is None:
        return
    results = getattr(eval_log, "results", None)
    done = task.done
    if results is not None:
        done = max(done, int(getattr(results, "completed_samples", 0) or 0))
    status = str(getattr(eval_log, "status", "unknown"))
    log.info(
        "task_finished",
        task=task.name,
        status=status,
        done=done,
        total=max(task.total, done),
        errors=task.errors,
    )


def _register() -> None:
    global _registered
    if _registered:
        return
    from inspect_ai.hooks import Hooks, SampleEnd, TaskEnd, TaskStart, hooks

    @hooks(name="tierlock_progress", description="tierlock: samples done per task")
    class _Progress(Hooks):
        def enabled(self) -> bool:
            return _active

        async def on_task_start(self, data: TaskStart) -> None:
            task_started(data.eval_id, data.spec)

        async def on_sample_end(self, data: SampleEnd) -> None:
            sample_finished(data.eval_id, data.sample.error is not None)

        async def on_task_end(self, data: TaskEnd) -> None:
            task_finished(data.eval_id, data.log)

    _registered = True
