"""A fault-injecting OpenAI-compatible model server for tests (127.0.0.1, a free port).

Serves `POST /v1/chat/completions` and `POST /v1/responses`. Each answer comes from `brain`:
given the first user prompt, the number of tool results so far and the names of the tools the
request offers, it returns the next step,
a `("tool", name, arguments)` call or a `("text", answer)`, so tasks with tools get real tool
calls. Every answer carries `usage`. Faults, chosen per call:

- `always=401` (or 403, 404, 500...): every call is answered with that status;
- `faults=[...]`: a cycle over the calls, each entry one of `ok`, `429`, `500`, `503`, `slow`
  (answers after `slow_seconds`), `drop` (closes the connection without a reply) or `malformed`
  (a 200 whose body is not JSON).

`calls` counts requests by route and `outcomes` by what was done, for assertions. `requests`
records what each model call carried (route, prompt, temperature, max tokens, the bearer key),
`peak_in_flight` the most calls answered at once, and `strays` every other request (any method,
any path: a sandbox that reached the server would show here). `refuse` maps a prompt fragment to
a status (e.g. 400, which no retry fixes): calls of matching samples get it until it is removed.
"""

from __future__ import annotations

import itertools
import json
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

Step = tuple[Any, ...]
Brain = Callable[[str, int, set[str]], Step]

FAULTS = ("ok", "429", "500", "503", "slow", "drop", "malformed")


class _QuietServer(ThreadingHTTPServer):
    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # clients that hang up (a cancelled run, an injected drop) are expected here


class FaultServer:
    """Start with `with FaultServer(brain, ...) as server:`; `server.base_url` ends in `/v1`."""

    def __init__(
        self,
        brain: Brain,
        *,
        always: int | None = None,
        faults: Iterable[str] = ("ok",),
        slow_seconds: float = 1.5,
    ) -> None:
        faults = list(faults)
        unknown = set(faults) - set(FAULTS)
        if unknown:
            raise ValueError(f"unknown faults: {sorted(unknown)}")
        self.brain = brain
        self.always = always
        self.slow_seconds = slow_seconds
        self._cycle = itertools.cycle(faults)
        self._lock = threading.Lock()
        self.calls: Counter[str] = Counter()
        self.outcomes: Counter[str] = Counter()
        self.tool_results_seen = 0  # the most tool results one request carried back
        self.first_call: float | None = None
        self.requests: list[dict[str, Any]] = []
        self.strays: list[str] = []
        self.refuse: dict[str, int] = {}
        self.in_flight = 0
        self.peak_in_flight = 0
        self._server = _QuietServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}/v1"

    def __enter__(self) -> FaultServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)

    def _next_fault(self, route: str) -> str:
        with self._lock:
            if self.first_call is None:
                self.first_call = time.monotonic()
            self.calls[route] += 1
            fault = f"{self.always}" if self.always is not None else next(self._cycle)
            self.outcomes[fault] += 1
            return fault

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:  # quiet
                pass

            def do_GET(self) -> None:
                self._stray()

            def do_PUT(self) -> None:
                self._stray()

            def do_CONNECT(self) -> None:
                self._stray()

            def _stray(self) -> None:
                with server._lock:
                    server.strays.append(f"{self.command} {self.path}")
                self._send(404, {"error": {"message": "no such route", "type": "nf"}})

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                try:
                    body = json.loads(self.rfile.read(length) or b"{}")
                except ValueError:
                    body = None
                route = self.path.rstrip("/")
                if route not in ("/v1/chat/completions", "/v1/responses") or not isinstance(
                    body, dict
                ):
                    with server._lock:
                        server.strays.append(f"POST {self.path}")
                    self._send(404, {"error": {"message": f"no route {route}", "type": "nf"}})
                    return
                with server._lock:
                    server.in_flight += 1
                    server.peak_in_flight = max(server.peak_in_flight, server.in_flight)
                try:
                    self._answer(route, body)
                finally:
                    with server._lock:
                        server.in_flight -= 1

            def _answer(self, route: str, body: dict[str, Any]) -> None:
                prompt = _prompt_of(body)
                with server._lock:
                    server.requests.append(_carried(route, prompt, body, self.headers))
                    status = next((s for f, s in server.refuse.items() if f in prompt), None)
                if status is not None:
                    with server._lock:
                        server.calls[route] += 1
                        server.outcomes[f"refused {status}"] += 1
                    err = {"message": f"refused {status}", "type": "invalid_request_error",
                           "code": "refused_by_test"}  # fmt: skip
                    self._send(status, {"error": err})
                    return
                fault = server._next_fault(route)
                if fault == "drop":
                    self.close_connection = True
                    self.connection.shutdown(2)  # no status line at all
                    return
                if fault.isdigit() and fault != "200":
                    status = int(fault)
                    err = {"message": f"injected {status}", "type": "injected", "code": fault}
                    self._send(status, {"error": err}, retry_after=status == 429)
                    return
                if fault == "slow":
                    time.sleep(server.slow_seconds)
                if fault == "malformed":
                    self._raw(200, b'{"id": "broken", "choices": [', "application/json")
                    return
                server.tool_results_seen = max(server.tool_results_seen, _tool_results(body))
                if route == "/v1/chat/completions":
                    self._send(200, _chat(body, server.brain))
                else:
                    self._send(200, _responses(body, server.brain))

            def _send(
                self, status: int, payload: dict[str, Any], retry_after: bool = False
            ) -> None:
                extra = {"Retry-After": "0"} if retry_after else {}
                self._raw(status, json.dumps(payload).encode(), "application/json", extra)

            def _raw(
                self, status: int, data: bytes, ctype: str, extra: dict[str, str] | None = None
            ) -> None:
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(data)))
                for k, v in (extra or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(data)

        return Handler


def _prompt_of(body: dict[str, Any]) -> str:
    """The first user prompt of a chat-completions or Responses request."""
    items = body.get("messages") or body.get("input") or []
    if isinstance(items, str):
        return items
    if not isinstance(items, list):
        return ""
    return next(
        (
            _text_of(i.get("content"))
            for i in items
            if isinstance(i, dict) and i.get("role") == "user"
        ),
        "",
    )


def _carried(route: str, prompt: str, body: dict[str, Any], headers: Any) -> dict[str, Any]:
    """What one model call carried, for assertions on what Inspect sent."""
    limit = next(
        (
            body[k]
            for k in ("max_tokens", "max_completion_tokens", "max_output_tokens")
            if k in body
        ),
        None,
    )
    return {
        "route": route,
        "prompt": prompt,
        "model": body.get("model"),
        "temperature": body.get("temperature"),
        "max_tokens": limit,
        "authorization": headers.get("Authorization", ""),
    }


def _tool_results(body: dict[str, Any]) -> int:
    items = body.get("messages") or body.get("input") or []
    if not isinstance(items, list):
        return 0
    return sum(
        1 for i in items if i.get("role") == "tool" or i.get("type") == "function_call_output"
    )


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(
            str(p.get("text", "")) for p in content if isinstance(p, dict) and "text" in p
        )
    return ""


def _usage_numbers(body: dict[str, Any], out: str) -> tuple[int, int]:
    return max(1, len(json.dumps(body)) // 4), max(1, len(out) // 4)


def _chat(body: dict[str, Any], brain: Brain) -> dict[str, Any]:
    messages = body.get("messages", [])
    prompt = next((_text_of(m.get("content")) for m in messages if m.get("role") == "user"), "")
    done = sum(1 for m in messages if m.get("role") == "tool")
    tools = {str(t.get("function", {}).get("name")) for t in body.get("tools", [])}
    step = brain(prompt, done, tools)
    message: dict[str, Any] = {"role": "assistant", "content": None}
    if step[0] == "tool":
        args = json.dumps(step[2])
        call = {"id": f"call_{done + 1}", "type": "function",
                "function": {"name": step[1], "arguments": args}}  # fmt: skip
        message.update(content=f"Step {done + 1}", tool_calls=[call])
        finish, text = "tool_calls", args
    else:
        message["content"] = text = step[1]
        finish = "stop"
    n_in, n_out = _usage_numbers(body, text)
    return {
        "id": f"chatcmpl-{uuid.uuid4().hex[:12]}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": body.get("model", "fault"),
        "choices": [{"index": 0, "message": message, "finish_reason": finish}],
        "usage": {"prompt_tokens": n_in, "completion_tokens": n_out,
                  "total_tokens": n_in + n_out},
    }  # fmt: skip


def _responses(body: dict[str, Any], brain: Brain) -> dict[str, Any]:
    items = body.get("input", [])
    if isinstance(items, str):
        items = [{"role": "user", "content": items}]
    prompt = next((_text_of(i.get("content")) for i in items if i.get("role") == "user"), "")
    done = sum(1 for i in items if i.get("type") == "function_call_output")
    tools = {str(t.get("name")) for t in body.get("tools", [])}
    step = brain(prompt, done, tools)
    if step[0] == "tool":
        text = json.dumps(step[2])
        output: dict[str, Any] = {
            "type": "function_call", "id": f"fc_{uuid.uuid4().hex[:12]}",
            "call_id": f"call_{done + 1}", "name": step[1], "arguments": text,
            "status": "completed",
        }  # fmt: skip
    else:
        text = step[1]
        output = {
            "type": "message", "id": f"msg_{uuid.uuid4().hex[:12]}", "role": "assistant",
            "status": "completed",
            "content": [{"type": "output_text", "text": text, "annotations": []}],
        }  # fmt: skip
    n_in, n_out = _usage_numbers(body, text)
    return {
        "id": f"resp_{uuid.uuid4().hex[:12]}",
        "object": "response",
        "created_at": int(time.time()),
        "model": body.get("model", "fault"),
        "status": "completed",
        "output": [output],
        "parallel_tool_calls": True,
        "tool_choice": body.get("tool_choice", "auto"),
        "tools": body.get("tools", []),
        "usage": {
            "input_tokens": n_in, "output_tokens": n_out, "total_tokens": n_in + n_out,
            "input_tokens_details": {"cached_tokens": 0},
            "output_tokens_details": {"reasoning_tokens": 0},
        },
    }  # fmt: skip


def script_brain(scripts: dict[str, Any], fallback: str = "I have no script for this.") -> Brain:
    """A brain playing `tasks._contract.Script`s keyed by their sample's prompt: tool steps in
    order, then the answer (a `submit` call when the task offers that tool, else text)."""

    def brain(prompt: str, done: int, tools: set[str]) -> Step:
        script = scripts.get(prompt.strip())
        if script is None:
            return ("text", fallback)
        if done < len(script.steps):
            step = script.steps[done]
            return ("tool", step.tool, dict(step.arguments))
        if "submit" in tools:
            return ("tool", "submit", {"answer": script.answer})
        return ("text", script.answer)

    return brain
