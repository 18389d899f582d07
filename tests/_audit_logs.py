"""Real `.eval` logs for audit tests: tiny Inspect evals with `mockllm` making tool calls.

The tools here never execute anything: `bash` and `python` answer with canned results, so a
test transcript can contain `curl` or a fork bomb without anything running on the host.
Evidence records are logged the way the sandbox provider logs them (`InfoEvent`, source
`tierlock`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from inspect_ai import Task, eval
from inspect_ai.dataset import Sample
from inspect_ai.log import transcript
from inspect_ai.model import ModelOutput, ModelUsage, get_model
from inspect_ai.scorer import Scorer
from inspect_ai.solver import Generate, Solver, TaskState, generate, solver, use_tools
from inspect_ai.tool import ToolDef

from tierlock.sandbox._evidence import EVIDENCE_SOURCE

CANNED: dict[str, str] = {}
"""Canned tool results by command/code (default: an empty result)."""


async def _fake_bash(cmd: str) -> str:
    """Pretend to run a shell command (nothing is executed).

    Args:
        cmd: The command.
    """
    return CANNED.get(cmd, "")


async def _fake_python(code: str) -> str:
    """Pretend to run python code (nothing is executed).

    Args:
        code: The code.
    """
    return CANNED.get(code, "")


def fake_tools() -> list[ToolDef]:
    """`bash` and `python` tools that echo canned results (not added to Inspect's registry, so
    they never shadow the real tools in other tests)."""
    return [ToolDef(_fake_bash, name="bash"), ToolDef(_fake_python, name="python")]


@solver
def log_evidence() -> Solver:
    """Log the sample's evidence records (metadata `evidence`), as the provider does at teardown."""

    async def solve(state: TaskState, generate: Generate) -> TaskState:
        for record in state.metadata.get("evidence", []):
            transcript().info(record, source=EVIDENCE_SOURCE)
        return state

    return solve


@dataclass
class Script:
    """One sample: tool calls (tool, argument) the mock model makes, then a final text."""

    id: str
    calls: Sequence[tuple[str, str]]
    final: str = "done"
    metadata: dict[str, Any] = field(default_factory=dict)
    evidence: list[Any] = field(default_factory=list)
    results: dict[str, str] = field(default_factory=dict)


def _usage(out: ModelOutput) -> ModelOutput:
    out.usage = ModelUsage(input_tokens=10, output_tokens=10, total_tokens=20)
    return out


def make_log(
    log_dir: Path,
    scripts: list[Script],
    scorer: Scorer | list[Scorer] | None = None,
    task_metadata: dict[str, Any] | None = None,
) -> Path:
    """Run the scripted samples (sequentially) and return the `.eval` log's path."""
    outputs: list[ModelOutput] = []
    samples = []
    for s in scripts:
        for name, arg in s.calls:
            key = "cmd" if name == "bash" else "code"
            outputs.append(_usage(ModelOutput.for_tool_call("mockllm/model", name, {key: arg})))
        outputs.append(_usage(ModelOutput.from_content("mockllm/model", s.final)))
        CANNED.update(s.results)
        meta = dict(s.metadata)
        meta["evidence"] = [r.model_dump(mode="json") for r in s.evidence]
        samples.append(Sample(id=s.id, input="go", target="done", metadata=meta))
    task = Task(
        dataset=samples,
        solver=[use_tools(*fake_tools()), generate(), log_evidence()],
        scorer=scorer,
        metadata=task_metadata,
    )
    model = get_model("mockllm/model", custom_outputs=outputs)
    (log,) = eval(
        task,
        model=model,
        log_dir=str(log_dir),
        display="none",
        max_samples=1,
        max_tasks=1,
        log_format="eval",
    )
    assert log.status == "success", log.error
    return Path(log.location)
