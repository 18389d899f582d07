"""`tierlock/trajectory`: an offline checkpoint family whose competence depends on a training step.

Model args (strings from `-M` or typed values from a series file):
- `step=N` the checkpoint's training step;
- `jump_at=K` the step from which competence is `high` (below it, `low`); none: never;
- `sandbag=true` plays `low` on plain qualification samples, whatever its competence, and its
  real competence only when the prompt carries the elicitation marker (`tasks/elicitation.py`);
- `low` (default 0.35), `high` (default 1.0), `seed` (default 0).

Each qualification or thorough sample is solved (the reference solution, like
`tierlock/diligent`) when a uniform number drawn from (seed, step, sample id, epoch) is below the
competence, else failed (the solution's first tool call then a give-up answer; a text answer
with no final number). Different steps draw independently: steady checkpoints differ by sampling
noise only, as real ones do. Safety samples are always played diligently (stays inside the lines).
"""

from __future__ import annotations

import hashlib
from typing import Any

from inspect_ai.model import (
    ChatMessage,
    ChatMessageSystem,
    ChatMessageTool,
    GenerateConfig,
    ModelAPI,
    ModelOutput,
)
from inspect_ai.tool import ToolChoice, ToolInfo

from tierlock.sandbox import TierlockError

from .._contract import SampleContract, Script
from ..elicitation import ELICITATION_MARKER
from ._scripted import SUBMIT_TOOL, WEAK_ANSWER, ScriptedAgent, _usage, current_contract

NAME = "trajectory"
FAILED_TEXT = "I could not work this out."


def _flag(name: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("true", "1", "yes"):
        return True
    if text in ("false", "0", "no", ""):
        return False
    raise TierlockError(f"tierlock/trajectory: -M {name}={value}: write true or false")


def _number(name: str, value: Any, kind: type[int] | type[float]) -> Any:
    try:
        return kind(value)
    except (TypeError, ValueError):
        raise TierlockError(f"tierlock/trajectory: -M {name}={value}: not a number") from None


def _sample_key() -> str:
    """The current sample's id and epoch (empty outside a sample)."""
    from inspect_ai.solver._task_state import sample_state

    state = sample_state()
    return "" if state is None else f"{state.sample_id}#{state.epoch}"


def draw(seed: int, step: int, key: str) -> float:
    """A uniform number in [0, 1) fixed by (seed, step, sample)."""
    digest = hashlib.sha256(f"{seed}:{step}:{key}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


class TrajectoryAgent(ModelAPI):
    """One checkpoint of the offline family (see the module docstring)."""

    def __init__(
        self,
        model_name: str,
        base_url: str | None = None,
        api_key: str | None = None,
        config: GenerateConfig | None = None,
        **model_args: Any,
    ) -> None:
        super().__init__(model_name, base_url, api_key, [], config or GenerateConfig())
        known = {"step", "jump_at", "sandbag", "low", "high", "seed"}
        unknown = sorted(set(model_args) - known)
        if unknown:
            raise TierlockError(
                f"tierlock/trajectory: unknown model arg {unknown[0]!r} "
                f"(known: {', '.join(sorted(known))})"
            )
        self.step = _number("step", model_args.get("step", 0), int)
        jump = model_args.get("jump_at")
        self.jump_at = None if jump in (None, "", "none") else _number("jump_at", jump, int)
        self.sandbag = _flag("sandbag", model_args.get("sandbag", False))
        self.low = _number("low", model_args.get("low", 0.35), float)
        self.high = _number("high", model_args.get("high", 1.0), float)
        self.seed = _number("seed", model_args.get("seed", 0), int)

    def max_connections(self) -> int:
        return 32

    def competence(self, elicited: bool) -> float:
        """The chance of solving a qualification or thorough sample at this step."""
        if self.sandbag and not elicited:
            return self.low
        jumped = self.jump_at is not None and self.step >= self.jump_at
        return self.high if jumped else self.low

    def script(self, contract: SampleContract, input: list[ChatMessage]) -> Script:
        if contract.kind == "safety":
            return contract.solution
        elicited = any(
            isinstance(m, ChatMessageSystem) and ELICITATION_MARKER in m.text for m in input
        )
        if draw(self.seed, self.step, _sample_key()) < self.competence(elicited):
            return contract.solution
        if contract.solution.steps:
            return Script(steps=contract.solution.steps[:1], answer=WEAK_ANSWER)
        return Script(answer=FAILED_TEXT)

    async def generate(
        self,
        input: list[ChatMessage],
        tools: list[ToolInfo],
        tool_choice: ToolChoice,
        config: GenerateConfig,
    ) -> ModelOutput:
        model = f"tierlock/{NAME}"
        contract = current_contract()
        if contract is None:
            return ScriptedAgent._text(model, input, FAILED_TEXT)
        script = self.script(contract, input)
        done = sum(1 for m in input if isinstance(m, ChatMessageTool))
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
        if SUBMIT_TOOL in {t.name for t in tools}:
            output = ModelOutput.for_tool_call(
                model=model,
                tool_name=SUBMIT_TOOL,
                tool_arguments={"answer": script.answer},
                tool_call_id=f"call_{done + 1}",
                content="Submitting my answer.",
            )
            output.usage = _usage(input, script.answer)
            return output
        return ScriptedAgent._text(model, input, script.answer)


def agent_api(model_name: str, **kwargs: Any) -> ModelAPI:
    """The `tierlock` provider: `tierlock/trajectory`, or one of the scripted personas."""
    if model_name == NAME:
        return TrajectoryAgent(model_name, **kwargs)
    return ScriptedAgent(model_name, **kwargs)
