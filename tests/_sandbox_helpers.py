"""Helpers shared by the sandbox tests: a scripted mock model and readers of `.eval` samples."""

from __future__ import annotations

from typing import Any

from inspect_ai.log import EvalSample
from inspect_ai.model import ChatMessageTool, ChatMessageUser, ModelOutput, ModelUsage, get_model

from tierlock.sandbox._evidence import EVIDENCE_ADAPTER
from tierlock.sandbox._labels import RUN_LABEL, run_id


def _usage(out: ModelOutput) -> ModelOutput:
    out.usage = ModelUsage(input_tokens=1, output_tokens=1, total_tokens=2)
    return out


def scripted_model(scripts: dict[str, list[str]], calls: list[str] | None = None) -> Any:
    """A mockllm model: the sample's input names its script; one bash call per turn, then done.
    Every output carries `usage` (mockllm would otherwise download a tokenizer)."""

    def next_output(input: list[Any], tools: Any, tool_choice: Any, config: Any) -> ModelOutput:
        first = next(m for m in input if isinstance(m, ChatMessageUser))
        script = scripts[first.text]
        if calls is not None:
            calls.append(first.text)
        done = sum(isinstance(m, ChatMessageTool) for m in input)
        if done < len(script):
            return _usage(ModelOutput.for_tool_call("mockllm/model", "bash",
                                                    {"command": script[done]}))
        return _usage(ModelOutput.from_content("mockllm/model", "done"))

    return get_model("mockllm/model", custom_outputs=next_output)


def tool_outputs(sample: EvalSample) -> list[str]:
    """The text of each tool result, with its error (if any) appended."""
    out = []
    for m in sample.messages:
        if isinstance(m, ChatMessageTool):
            out.append(m.text + (f"\n[error {m.error.type}: {m.error.message}]" if m.error else ""))
    return out


def evidence(sample: EvalSample) -> list[Any]:
    """tierlock's evidence records in a sample's transcript."""
    return [EVIDENCE_ADAPTER.validate_python(e.data) for e in sample.events
            if e.event == "info" and e.source == "tierlock"]


def run_containers(client: Any) -> list[str]:
    """Names of this process's run's containers that still exist."""
    return [c.name for c in client.containers.list(all=True,
                                                   filters={"label": f"{RUN_LABEL}={run_id()}"})]
