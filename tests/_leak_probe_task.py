"""A one-sample sandboxed task for `test_real_model_path`: the model's tool calls search the sandbox.

The sample's prompt is `LEAK-PROBE <tier>`; the test's scripted endpoint answers it with tool
calls that dump the process environment, `/proc/*/environ`, `/proc/*/cmdline`, `/etc/hosts`,
`resolv.conf` and grep the file system for the endpoint's key and address. A marker file is planted
in the workspace (and the test's policy plants a marker variable) so a search that could not find
a leak is told from one that found none. Runs in tierlock's sandbox under the tier's policy; the
networked tier gets the shipped `api` sidecar its policy lists.
"""

from __future__ import annotations

from inspect_ai import Task, task
from inspect_ai.agent import AgentPrompt, as_solver, react
from inspect_ai.dataset import MemoryDataset, Sample
from inspect_ai.model import ChatMessageTool
from inspect_ai.scorer import CORRECT, INCORRECT, Score, Scorer, Target, accuracy, scorer
from inspect_ai.solver import TaskState
from inspect_ai.tool import bash, python

from tierlock.tasks._contract import TaskInfo
from tierlock.tasks._policy import resolve_policy
from tierlock.tasks.networked._service import sandbox_config

PROMPT = "LEAK-PROBE"
PLANTED_FILE = "planted.txt"


@scorer(metrics=[accuracy()])
def tools_ran() -> Scorer:
    """C when every tool call of the sample ran and answered without a tool error."""

    async def score(state: TaskState, target: Target) -> Score:
        results = [m for m in state.messages if isinstance(m, ChatMessageTool)]
        failed = [m for m in results if m.error is not None]
        ok = bool(results) and not failed
        return Score(value=CORRECT if ok else INCORRECT, explanation=f"{len(results)} tool results")

    return score


@task
def leak_probe(tier: str, marker: str, policy: str | None = None) -> Task:
    """`LEAK-PROBE <tier>` in tierlock's sandbox under `policy` (default: the shipped one), with `marker` planted in a file."""
    path = resolve_policy(tier, policy)  # type: ignore[arg-type]
    sandbox = ("tierlock", sandbox_config(path)) if tier == "networked" else ("tierlock", str(path))
    return Task(
        dataset=MemoryDataset(
            [Sample(id="probe", input=f"{PROMPT} {tier}", files={PLANTED_FILE: f"{marker}\n"})],
            name=f"leak-probe-{tier}",
        ),
        solver=as_solver(
            react(
                prompt=AgentPrompt(instructions="Run the commands you are given."),
                tools=[bash(timeout=60), python(timeout=60)],
            )
        ),
        scorer=tools_ran(),
        sandbox=sandbox,
        metadata=TaskInfo(tier=tier, kind="qualification", policy=str(path)).to_metadata(),  # type: ignore[arg-type]
    )
