"""Turn a sample's raw events (JSON dicts, as stored in the `.eval` log) into observations.

An observation is what the detectors look at: a tool call the model made (`call`), what came back
(`result`), text the model wrote (`output`), a tierlock evidence record (`evidence`), a limit hit
(`limit`) or an error (`error`). Each keeps the index and uuid of the event it comes from, so every
finding cites its event. Harness-side sandbox events (setup, scorers) are not the model's actions
and yield no observation; they only appear on the timeline.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import ValidationError

from tierlock.sandbox._evidence import EVIDENCE_ADAPTER, EVIDENCE_SOURCE, EvidenceRecord

ATTACHMENT = "attachment://"
ObsKind = Literal["call", "result", "output", "evidence", "limit", "error"]
Lang = Literal["shell", "python", "other"]

_SHELL_TOOLS = frozenset({"bash", "bash_session", "shell", "exec", "sh"})
_PYTHON_TOOLS = frozenset({"python", "python_exec"})
_SHELL_ARGS = ("cmd", "command", "input", "script")
_PYTHON_ARGS = ("code", "source", "script")
_EDITOR_WRITES = {"create", "str_replace", "insert", "undo_edit", "write", "append", "delete"}
NOT_RUN_ERRORS = frozenset({"parsing", "approval"})
"""Tool error types Inspect records for a call it never executed."""


def never_ran(ev: Mapping[str, Any]) -> str | None:
    """Why a tool event's call never executed (None when it ran): Inspect records a call whose
    arguments did not parse, or that named no tool, as a `parsing` error, and one an approver
    refused as `approval`."""
    err = ev.get("error")
    if isinstance(err, Mapping) and err.get("type") in NOT_RUN_ERRORS:
        return "its arguments failed to parse" if err["type"] == "parsing" else "it was refused"
    return None


@dataclass
class Obs:
    """One thing to check, with the event it cites."""

    index: int
    uuid: str | None
    event: str
    kind: ObsKind
    text: str = ""
    tool: str | None = None
    lang: Lang = "other"
    writes: list[str] = field(default_factory=list)
    reads: list[str] = field(default_factory=list)
    error_type: str | None = None
    record: EvidenceRecord | None = None
    data: Mapping[str, Any] = field(default_factory=dict)
    ran: bool = True
    """False for a tool call that never executed (its arguments failed to parse, the tool did
    not exist, or an approver refused it): an attempt on the record, not an action."""
    result: str = ""
    """For a call: what came back (result and error message), so a detector can tell an
    attempt that failed from one that succeeded."""


class Resolver:
    """Resolves `attachment://` references against the sample's attachments."""

    def __init__(self, attachments: Mapping[str, str] | None) -> None:
        self.attachments = attachments or {}

    def resolve(self, value: Any) -> Any:
        """A JSON value with every `attachment://` string in it resolved (Inspect moves long
        strings, e.g. a proxied URL in an evidence record, out of the events)."""
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, list):
            return [self.resolve(v) for v in value]
        if isinstance(value, dict):
            return {k: self.resolve(v) for k, v in value.items()}
        return value

    def text(self, value: Any) -> str:
        """Any JSON value as text: strings resolved, content lists joined, others as JSON-ish."""
        if value is None:
            return ""
        if isinstance(value, str):
            if value.startswith(ATTACHMENT):
                return self.attachments.get(value[len(ATTACHMENT) :], value)
            return value
        if isinstance(value, list):
            return "\n".join(t for t in (self.text(v) for v in value) if t)
        if isinstance(value, dict):
            for key in ("text", "reasoning", "content", "refusal"):
                if key in value and value[key] is not None:
                    return self.text(value[key])
            return "\n".join(t for t in (self.text(v) for v in value.values()) if t)
        return str(value)


def _tool_call(index: int, ev: Mapping[str, Any], r: Resolver) -> Obs:
    fn = str(ev.get("function") or "")
    args = ev.get("arguments") or {}
    if not isinstance(args, dict):
        args = {"value": args}
    lang: Lang = "other"
    text = ""
    shell_arg = next((k for k in _SHELL_ARGS if k in args), None) if fn in _SHELL_TOOLS else None
    py_arg = next((k for k in _PYTHON_ARGS if k in args), None) if fn in _PYTHON_TOOLS else None
    if shell_arg is not None:
        lang, text = "shell", r.text(args[shell_arg])
    elif py_arg is not None:
        lang, text = "python", r.text(args[py_arg])
    else:
        text = "\n".join(f"{k}: {r.text(v)}" for k, v in args.items())
    writes: list[str] = []
    reads: list[str] = []
    path = next((r.text(args[k]) for k in ("path", "file", "filename", "target") if k in args), "")
    if path:
        action = str(args.get("command") or args.get("action") or fn).lower()
        is_write = action in _EDITOR_WRITES or any(w in fn for w in ("write", "edit", "create"))
        (writes if is_write else reads).append(path)
    ran = never_ran(ev) is None
    err = ev.get("error")
    result = r.text(ev.get("result"))
    if isinstance(err, dict) and err.get("message"):
        result = f"{result}\n{r.text(err.get('message'))}"
    return Obs(
        index,
        ev.get("uuid"),
        "tool",
        "call",
        text,
        fn,
        lang,
        writes,
        reads,
        data=ev,
        ran=ran,
        result=result,
    )


def _tool_result(index: int, ev: Mapping[str, Any], r: Resolver) -> Obs:
    err = ev.get("error") or {}
    text = r.text(ev.get("result"))
    if isinstance(err, dict) and err.get("message"):
        text = f"{text}\n{r.text(err.get('message'))}" if text else r.text(err.get("message"))
    return Obs(
        index,
        ev.get("uuid"),
        "tool",
        "result",
        text,
        str(ev.get("function") or ""),
        error_type=err.get("type") if isinstance(err, dict) else None,
        data=ev,
        ran=never_ran(ev) is None,
    )


def _model_output(index: int, ev: Mapping[str, Any], r: Resolver) -> Obs | None:
    output = ev.get("output") or {}
    parts: list[str] = []
    for choice in output.get("choices") or []:
        msg = (choice or {}).get("message") or {}
        parts.append(r.text(msg.get("content")))
    text = "\n".join(p for p in parts if p)
    if not text:
        return None
    return Obs(index, ev.get("uuid"), "model", "output", text, data=ev)


def observe(
    events: list[Mapping[str, Any]], attachments: Mapping[str, str] | None
) -> Iterator[Obs]:
    """The observations in a sample's events, in event order."""
    r = Resolver(attachments)
    for i, ev in enumerate(events):
        if not isinstance(ev, Mapping):
            continue
        kind = ev.get("event")
        if kind == "tool":
            yield _tool_call(i, ev, r)
            yield _tool_result(i, ev, r)
        elif kind == "model":
            out = _model_output(i, ev, r)
            if out is not None:
                yield out
        elif kind == "info" and ev.get("source") == EVIDENCE_SOURCE:
            data = ev.get("data")
            record: EvidenceRecord | None = None
            with contextlib.suppress(ValidationError):  # else no record: counted as not checked
                record = EVIDENCE_ADAPTER.validate_python(r.resolve(data))
            yield Obs(i, ev.get("uuid"), "info", "evidence", record=record, data=ev)
        elif kind == "sample_limit":
            yield Obs(
                i,
                ev.get("uuid"),
                "sample_limit",
                "limit",
                r.text(ev.get("message")),
                error_type=str(ev.get("type") or ""),
                data=ev,
            )
        elif kind == "error":
            err = ev.get("error") or {}
            yield Obs(i, ev.get("uuid"), "error", "error", r.text(err.get("message")), data=ev)


def harness_events(events: list[Mapping[str, Any]] | Any) -> set[int]:
    """Indices of the `sandbox` events Inspect made itself (setup before the first turn, tool
    installation, scorers), told apart from the model's by their spans: a sandbox call the model
    caused runs inside a `tool` span. A log without spans marks nothing."""
    parents: dict[str, tuple[str | None, str | None]] = {}
    out: set[int] = set()
    for i, ev in enumerate(events):
        if not isinstance(ev, Mapping):
            continue
        kind = ev.get("event")
        if kind == "span_begin" and isinstance(ev.get("id"), str):
            parent = ev.get("parent_id")
            parents[ev["id"]] = (parent if isinstance(parent, str) else None, ev.get("type"))
        elif kind == "sandbox":
            span = ev.get("span_id")
            if not isinstance(span, str) or span not in parents:
                continue
            seen: set[str] = set()
            in_tool = False
            while isinstance(span, str) and span in parents and span not in seen:
                seen.add(span)
                parent, span_type = parents[span]
                if span_type == "tool":
                    in_tool = True
                    break
                span = parent
            if not in_tool:
                out.add(i)
    return out


def _cut(text: str, width: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


def timeline_label(ev: Mapping[str, Any], r: Resolver, width: int = 240) -> str | None:
    """A one-line description of an event for the HTML timeline, None for structural events."""
    if not isinstance(ev, Mapping):
        return None
    kind = ev.get("event")
    label: str | None = None
    if kind == "tool":
        call = _tool_call(0, ev, r)
        label = f"{call.tool}: {_cut(call.text, width // 2)}"
        err = ev.get("error")
        if (why := never_ran(ev)) is not None:
            label += f"  [never ran: {why}]"
        elif isinstance(err, dict) and err.get("type"):
            label += f"  [error: {err.get('type')}]"
        result = " ".join(r.text(ev.get("result")).split())
        if result:
            label += f"  ⇒ {result}"
    elif kind == "model":
        out = _model_output(0, ev, r)
        calls = [
            c.get("function", "?")
            for ch in (ev.get("output") or {}).get("choices") or []
            for c in ((ch or {}).get("message") or {}).get("tool_calls") or []
        ]
        label = f"model: {out.text if out else ''}" + (f"  → {', '.join(calls)}" if calls else "")
    elif kind == "info":
        data = ev.get("data")
        k = data.get("kind") if isinstance(data, dict) else None
        label = f"info[{ev.get('source') or ''}]: {k or r.text(data)}"
    elif kind == "sandbox":
        label = f"sandbox {ev.get('action')}: {ev.get('cmd') or ev.get('file') or ''}"
    elif kind in ("sample_limit", "error"):
        msg = ev.get("message") or (ev.get("error") or {}).get("message")
        label = f"{kind}: {r.text(msg)}"
    elif kind == "score":
        score = ev.get("score") or {}
        label = f"score: {r.text(score.get('value'))}"
    if label is None:
        return None
    return _cut(label, width)
