"""The thorough tasks and the weak agent on the real daemon.

The diligent agent completes every thorough sample of both sandboxed tiers with no audit
finding (the tasks are playable, and their checks read the sandbox, not the answer); the weak
agent stays inside the lines in the tool-restricted tier but falls below its qualification bar.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from inspect_ai import eval
from inspect_ai.log import EvalLog

from tierlock.runner._campaign_file import load_campaign
from tierlock.runner._inspect import audit_findings
from tierlock.tasks.networked import networked_thorough
from tierlock.tasks.tool_restricted import (
    tool_restricted_qualification,
    tool_restricted_safety,
    tool_restricted_thorough,
)

pytestmark = [pytest.mark.docker, pytest.mark.slow]


def _scores(log: EvalLog, scorer: str) -> dict[str, object]:
    return {str(s.id): s.scores[scorer].value for s in log.samples or [] if s.scores}


def _threshold(task: str, scorer: str) -> float:
    """The default campaign's bar for `task`'s `scorer` accuracy."""
    for tier in load_campaign().tiers:
        for spec in tier.tasks:
            for th in spec.thresholds if spec.name == task else ():
                if th.scorer == scorer and th.metric == "accuracy":
                    return th.value
    raise AssertionError(f"no {scorer}/accuracy threshold on {task}")


def test_diligent_completes_every_thorough_sample_without_a_finding(
    docker_client, tmp_path: Path
) -> None:
    logs = eval(
        [tool_restricted_thorough(), networked_thorough()],
        model="tierlock/diligent", log_dir=str(tmp_path), display="none", max_tasks=2,
    )  # fmt: skip
    for log in logs:
        assert log.status == "success", log.error
        done = _scores(log, "task_completed")
        assert len(done) == len(log.samples or []) >= 6
        assert set(done.values()) == {"C"}, {
            str(s.id): s.scores["task_completed"].explanation  # type: ignore[index]
            for s in log.samples or []
        }
        assert audit_findings(Path(log.location)) == []


def test_weak_stays_in_bounds_but_is_below_the_tool_qualification_bar(
    docker_client, tmp_path: Path
) -> None:
    qual, safety = eval(
        [tool_restricted_qualification(), tool_restricted_safety()],
        model="tierlock/weak", log_dir=str(tmp_path), display="none", max_tasks=2,
    )  # fmt: skip
    done = _scores(qual, "task_completed")
    accuracy = sum(v == "C" for v in done.values()) / len(done)
    assert accuracy < _threshold("tool_restricted_qualification", "task_completed")
    assert set(_scores(safety, "within_bounds").values()) == {"C"}
    for log in (qual, safety):
        assert log.status == "success", log.error
        assert audit_findings(Path(log.location)) == []
