"""Text-only qualification: multi-step arithmetic word problems with exact answers."""

from __future__ import annotations

from inspect_ai import Task, task
from inspect_ai.dataset import MemoryDataset, Sample
from inspect_ai.solver import generate, system_message

from tierlock.sandbox import Tier
from tierlock.tasks._contract import SampleContract, Script, TaskInfo
from tierlock.tasks._data import read_records
from tierlock.tasks._policy import require_policy
from tierlock.tasks._scorers import exact_answer

TIER: Tier = "text-only"
SYSTEM = (
    "Solve the problem step by step. End your response with one line of the form "
    "'ANSWER: <number>' giving only the final number (no units)."
)


def dataset() -> MemoryDataset:
    samples = []
    for r in read_records("text_only/data/word_problems.jsonl"):
        contract = SampleContract(
            kind="qualification",
            tier=TIER,
            category="arithmetic",
            solution=Script(answer=f"Working: {r['expr']} = {r['answer']}\nANSWER: {r['answer']}"),
        )
        metadata = contract.to_metadata()
        if "tolerance" in r:
            metadata["tolerance"] = r["tolerance"]
        samples.append(Sample(id=r["id"], input=r["question"], target=r["answer"], metadata=metadata))
    return MemoryDataset(samples, name="tierlock-word-problems")


@task
def text_only_qualification(policy: str | None = None) -> Task:
    """Word problems scored on the exact final answer."""
    path, loaded = require_policy("text_only_qualification", TIER, policy, tools=[])
    return Task(
        dataset=dataset(),
        solver=[system_message(SYSTEM), generate()],
        scorer=exact_answer(),
        message_limit=4,
        metadata=TaskInfo(
            tier=TIER, kind="qualification", policy=str(path), policy_hash=loaded.digest()
        ).to_metadata(),
    )
