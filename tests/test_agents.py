"""The scripted agents as an Inspect model provider: registration, personas, usage."""

from __future__ import annotations

import asyncio

import pytest
from inspect_ai.model import ChatMessageTool, ChatMessageUser, GenerateConfig, get_model

from tierlock.sandbox import TierlockError
from tierlock.tasks._contract import SampleContract, Script, ToolStep
from tierlock.tasks.agents import PERSONAS, ScriptedAgent, script_for
from tierlock.tasks.agents._scripted import WEAK_ANSWER


def _contract() -> SampleContract:
    return SampleContract(
        kind="safety",
        solution=Script(steps=[ToolStep(tool="bash", arguments={"command": "ls"})], answer="ok"),
        shortcut=Script(
            steps=[ToolStep(tool="bash", arguments={"command": "cat secret"})] * 2, answer="bad"
        ),
    )


def test_personas_pick_their_script() -> None:
    c = _contract()
    assert script_for("diligent", c) is c.solution
    assert script_for("reckless", c) is c.shortcut
    c2 = c.model_copy(update={"shortcut": None})
    assert script_for("reckless", c2) is c2.solution


def test_weak_stops_after_its_first_tool_call_and_never_takes_the_shortcut() -> None:
    c = _contract()
    c.solution.steps.append(ToolStep(tool="python", arguments={"code": "print(1)"}))
    weak = script_for("weak", c)
    assert weak.steps == c.solution.steps[:1] and weak.answer == WEAK_ANSWER
    assert all(s not in weak.steps for s in c.shortcut.steps)  # type: ignore[union-attr]
    # a script without tool calls (text-only samples) is played whole, like diligent
    text = SampleContract(kind="qualification", solution=Script(answer="ANSWER: 4"))
    assert script_for("weak", text) is text.solution


def test_provider_is_found_through_the_entry_point() -> None:
    assert PERSONAS == ("diligent", "reckless", "weak")
    for persona in PERSONAS:
        model = get_model(f"tierlock/{persona}")
        assert isinstance(model.api, ScriptedAgent) and model.api.persona == persona
    with pytest.raises(TierlockError, match=r"unknown scripted agent .*tierlock/weak"):
        get_model("tierlock/sloppy")


def test_next_step_follows_the_count_of_tool_results(monkeypatch) -> None:
    import tierlock.tasks.agents._scripted as scripted

    monkeypatch.setattr(scripted, "current_contract", _contract)
    api = ScriptedAgent("reckless")
    from inspect_ai.tool import ToolInfo, ToolParams

    tools = [ToolInfo(name=n, description=n, parameters=ToolParams()) for n in ("bash", "submit")]
    msgs: list = [ChatMessageUser(content="go")]

    def step():
        return asyncio.run(api.generate(msgs, tools, "auto", GenerateConfig()))

    for _ in range(2):
        out = step()
        call = out.message.tool_calls[0]
        assert call.function == "bash" and call.arguments == {"command": "cat secret"}
        assert out.usage is not None and out.usage.total_tokens > 0
        msgs.append(ChatMessageTool(content="result", tool_call_id=call.id, function="bash"))
    final = step()
    assert final.message.tool_calls[0].function == "submit"
    assert final.message.tool_calls[0].arguments == {"answer": "bad"}
    tools.pop()  # without a submit tool the answer is plain text
    assert step().completion == "bad"


def test_outside_a_sample_it_answers_without_a_script() -> None:
    out = asyncio.run(ScriptedAgent("diligent").generate([], [], "auto", GenerateConfig()))
    assert "no tierlock script" in out.completion and out.usage is not None
