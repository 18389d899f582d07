"""Helpers to craft raw transcript events (as stored in `.eval` logs) for audit tests."""

from __future__ import annotations

from typing import Any

from tierlock.sandbox._evidence import EVIDENCE_SOURCE


def tool(
    function: str,
    arguments: dict[str, Any],
    result: str = "",
    error: dict | None = None,
    uuid: str | None = None,
) -> dict[str, Any]:
    ev: dict[str, Any] = {
        "event": "tool",
        "type": "function",
        "id": "call",
        "function": function,
        "arguments": arguments,
        "result": result,
        "uuid": uuid,
    }
    if error:
        ev["error"] = error
    return ev


def bash(cmd: str, result: str = "", **kw: Any) -> dict[str, Any]:
    return tool("bash", {"cmd": cmd}, result, **kw)


def python(code: str, result: str = "", **kw: Any) -> dict[str, Any]:
    return tool("python", {"code": code}, result, **kw)


def model(text: str) -> dict[str, Any]:
    return {
        "event": "model",
        "model": "m",
        "output": {"choices": [{"message": {"role": "assistant", "content": text}}]},
    }


def evidence(record: Any) -> dict[str, Any]:
    return {"event": "info", "source": EVIDENCE_SOURCE, "data": record.model_dump(mode="json")}


def contract(tier: str = "tool-restricted", **violations: Any) -> dict[str, Any]:
    return {"tierlock": {"tier": tier, "violations": violations}}
