"""Offline scripted agents: `tierlock/diligent`, `tierlock/reckless` and `tierlock/weak`.

They read the current sample's `SampleContract` (its metadata) and play a script: the reference
solution (diligent); on safety samples that have one, the forbidden shortcut (reckless); or the
solution's first tool call only, then a give-up answer (weak: it stays inside the lines and
answers text-only samples like diligent, but cannot carry a task through the tools, so it falls
below the qualification bar of the first sandboxed tier). The next step is chosen from the conversation so far (the number of tool results in it), and every
step is a real tool call executed by the real sandbox. No network, no tokenizer: every output
carries its own `usage`.
"""

from __future__ import annotations

from typing import Any

from inspect_ai.model import (
    ChatMessage,
    ChatMessageTool,
    GenerateConfig,
    ModelAPI,
    ModelOutput,
    ModelUsage,
)
from inspect_ai.tool import ToolChoice, ToolInfo

from tierlock.sandbox import TierlockError

from .._contract import SampleContract, Script

PERSONAS = ("diligent", "reckless", "weak")
SUBMIT_TOOL = "submit"
WEAK_ANSWER = "I could not finish this task."
NO_CONTRACT_ANSWER = (
    "I am an offline scripted agent (tierlock/{persona}); this sample has no tierlock script, "
    "so I have no answer."
)


def current_contract() -> SampleContract | None:
    """The tierlock contract of the sample this model call belongs to (None outside a sample)."""
    from inspect_ai.log._samples import sample_active
    from inspect_ai.solver._task_state import sample_state

    state = sample_state()
    if state is not None:
        return SampleContract.of(state.metadata)
    active = sample_active()
    if active is not None:
        return SampleContract.of(active.sample.metadata)
    return None


def script_for(persona: str, contract: SampleContract) -> Script:
    """The diligent agent follows the solution; the reckless one takes the shortcut if any; the
    weak one stops after the solution's first tool call (a script without tool calls it plays
    whole)."""
    if persona == "reckless" and contract.shortcut is not None:
        return contract.shortcut
    if persona == "weak" and contract.solution.steps:
        return Script(steps=contract.solution.steps[:1], answer=WEAK_ANSWER)
    return contract.solution


def _tokens(text: str) -> int:
    return max(1, len(text) // 4)


def _usage(input: list[ChatMessage], output_text: str) -> ModelUsage:
    in_tokens = sum(_tokens(m.text) for m in input)
    out_tokens = _tokens(output_text)
    return ModelUsage(
        input_tokens=in_tokens, output_tokens=out_tokens, total_tokens=in_tokens + out_tokens
    )


class ScriptedAgent(ModelAPI):
    """A model provider whose outputs come from the sample's script, step by step."""

    def __init__(
        self,
        model_name: str,
        base_url: str | None = None,
        api_key: str | None = None,
        config: GenerateConfig | None = None,
        **model_args: Any,
    ) -> None:
        super().__init__(model_name, base_url, api_key, [], config or GenerateConfig())
        if model_name not in PERSONAS:
            raise TierlockError(
                f"tierlock/{model_name}: unknown scripted agent (choose one of "
                + ", ".join(f"tierlock/{p}" for p in PERSONAS)
                + ")"
            )
        self.persona = model_name

    def max_connections(self) -> int:
        return 32

    async def generate(
        self,
        input: list[ChatMessage],
        tools: list[ToolInfo],
        tool_choice: ToolChoice,
        config: GenerateConfig,
    ) -> ModelOutput:
        model = f"tierlock/{self.persona}"
        contract = current_contract()
        if contract is None:
            return self._text(model, input, NO_CONTRACT_ANSWER.format(persona=self.persona))
        script = script_for(self.persona, contract)
        done = sum(1 for m in input if isinstance(m, ChatMessageTool))
        available = {t.name for t in tools}
        if done < len(script.steps):
            step = script.steps[done]
            output = ModelOutput.for_tool_call(
                model=model,
                tool_name=step.tool,
                tool_arguments=dict(step.arguments),
                tool_call_id=f"call_{done + 1}",
                content=step.thought or f"Step {done + 1}: {step.tool}",
            )
            output.usage = _usage(input, str(step.arguments) + step.thought)
            return output
        if SUBMIT_TOOL in available:
            output = ModelOutput.for_tool_call(
                model=model,
                tool_name=SUBMIT_TOOL,
                tool_arguments={"answer": script.answer},
                tool_call_id=f"call_{done + 1}",
                content="Submitting my answer.",
            )
            output.usage = _usage(input, script.answer)
            return output
        return self._text(model, input, script.answer)

    @staticmethod
    def _text(model: str, input: list[ChatMessage], text: str) -> ModelOutput:
        output = ModelOutput.from_content(model=model, content=text)
        output.usage = _usage(input, text)
        return output
