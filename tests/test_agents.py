"""The scripted agents as an Inspect model provider: registration, personas, usage."""

from __future__ import annotations

import asyncio

import pytest
from inspect_ai.model import ChatMessageTool, ChatMessageUser, GenerateConfig, get_model

from sandbox import TierlockError
from tasks._contract import SampleContract, Script, ToolStep
from tasks.agents import ScriptedAgent, script_for


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


def test_provider_is_found_through_the_entry_point() -> None:
    model = get_model("tierlock/diligent")
    assert isinstance(model.api, ScriptedAgent) and model.api.persona == "diligent"
    with pytest.raises(TierlockError, match="unknown scripted agent"):
        get_model("tierlock/sloppy")


def test_next_step_follows_the_count_of_tool_results(monkeypatch) -> None:
    import tasks.agents._scripted as scripted

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
