"""A tier executor that reports an interrupted eval as the interruption it is (Ctrl-C, SIGTERM,
SIGHUP), never as a verdict."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from tierlock.sandbox import raise_if_terminated

from ._endpoint import EndpointRefused, EndpointUnavailable
from ._gate import TaskResult
from ._run_state import TierContext, TierExecutor


class Interruptible:
    """A tier executor that reports an interrupted eval as the interruption it is.

    Inspect absorbs Ctrl-C inside `eval_set`: it returns without the interrupted task's log
    (the log on disk says `cancelled`), which the gate would record as an incomplete tier. An
    interruption is not a verdict: `KeyboardInterrupt` ends the run before anything is recorded,
    and the next `tierlock run` resumes the tier.
    """

    def __init__(self, inner: TierExecutor) -> None:
        self.inner = inner

    def selftest(self, policy: Path) -> dict[str, Any] | None:
        """The inner executor's host check (`_selftest_gate`), when it has one."""
        probe = getattr(self.inner, "selftest", None)
        return probe(policy) if probe is not None else None

    def run_tier_tasks(self, ctx: TierContext) -> list[TaskResult]:
        started = time.time()
        try:
            results = self.inner.run_tier_tasks(ctx)
        except (EndpointRefused, EndpointUnavailable):  # the watch cancelled the eval
            raise
        except Exception:
            if _cancelled_since(ctx.log_dir, started):
                raise KeyboardInterrupt from None
            raise
        raise_if_terminated()
        if any(r.status == "cancelled" for r in results) or _cancelled_since(ctx.log_dir, started):
            raise KeyboardInterrupt
        return results


def _cancelled_since(log_dir: Path, since: float) -> bool:
    """Whether an Inspect log written in `log_dir` since `since` (epoch seconds) was cancelled."""
    from inspect_ai.log import read_eval_log

    from ._audit._safezip import guard_for_inspect

    for path in log_dir.glob("*.eval") if log_dir.is_dir() else ():
        try:
            recent = path.stat().st_mtime >= since - 1  # coarse file-system clocks
            if recent:
                guard_for_inspect(path)  # no zip bomb reaches Inspect's reader
            if recent and read_eval_log(str(path), header_only=True).status == "cancelled":
                return True
        except Exception:
            continue
    return False
