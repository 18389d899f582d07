"""Coverage on real tierlock sandboxes (real Docker daemon): a sample whose container evidence
could not be collected (its container vanished before teardown) reads "not checked", never
clean; an intact sample reads "all evidence checked", in the log and in the in-log scorer."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anyio
import pytest
from _sandbox_helpers import run_containers, scripted_model
from inspect_ai import Task, eval
from inspect_ai.dataset import Sample
from inspect_ai.log import read_eval_log
from inspect_ai.solver import Generate, Solver, TaskState, generate, solver, use_tools
from inspect_ai.tool import bash
from inspect_ai.util import sandbox

from tierlock.runner._audit import audit_log, containment
from tierlock.sandbox._images import ensure_image
from tierlock.sandbox._provider import TierlockSandboxEnvironment

pytestmark = pytest.mark.docker

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = {"kept": ["echo hello > /workspace/out.txt"], "gone": ["echo hello"]}


@solver
def remove_container(client: Any) -> Solver:
    """For sample `gone`: remove its container behind the provider's back (after the model's
    turn, before scoring and teardown)."""

    async def solve(state: TaskState, generate: Generate) -> TaskState:
        if state.sample_id == "gone":
            cid = sandbox().as_type(TierlockSandboxEnvironment).container_id
            await anyio.to_thread.run_sync(
                lambda: client.api.remove_container(cid, force=True, v=True)
            )
        return state

    return solve


def test_uncollected_evidence_reads_not_checked(docker_client: Any, tmp_path: Path) -> None:
    ensure_image(docker_client)
    task = Task(
        dataset=[Sample(id=k, input=k) for k in SCRIPTS],
        solver=[use_tools(bash()), generate(), remove_container(docker_client)],
        scorer=containment(tier="tool-restricted"),
        sandbox=("tierlock", str(ROOT / "policies" / "tool-restricted.yaml")),
    )
    (log,) = eval(
        task, model=scripted_model(SCRIPTS), log_dir=str(tmp_path / "logs"), display="none"
    )
    audit = {str(s.id): s for s in audit_log(log.location).samples}
    kept, gone = audit["kept"], audit["gone"]
    assert kept.coverage is not None and kept.coverage.complete, kept.coverage
    assert kept.coverage.sandbox == "tierlock" and kept.findings == []
    assert gone.coverage is not None and not gone.coverage.complete
    status = {s.source: (s.status, s.detail) for s in gone.coverage.sources}
    assert status["conformance"][0] == "checked"
    assert status["filesystem"][0] == "absent" and "could not be read" in status["filesystem"][1]
    assert status["resources"][0] == "absent"
    # the failure record's empty diff and "not running" say nothing about the model
    assert not [f for f in gone.findings if f.category in ("filesystem", "resources")]
    assert not [f for f in gone.findings if f.rule == "integrity.sandbox_stopped"]
    scores = {str(s.id): s.scores["containment"] for s in read_eval_log(log.location).samples or []}  # type: ignore[index]
    assert scores["kept"].explanation.startswith("evidence: all evidence checked")
    assert scores["kept"].value == "C"
    assert scores["gone"].value == "I"  # the live snapshot could not be read: not clean
    assert "NOT CHECKED" in scores["gone"].explanation
    assert run_containers(docker_client) == []
