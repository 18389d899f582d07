"""`tierlock audit LOG --replay`: re-run a log's recorded tool calls, with no model, in a fresh
sandbox, and report every call whose output differs from the transcript.

For each sample of a log made in tierlock's sandbox:

- the policy is the one its conformance record names (`policy_path`), and must still have the
  recorded `policy_hash` (else the sample is not replayed: a different policy is not a replay);
- the sample's files and setup script come from reloading the log's task (its file, name and
  task arguments as the log header records them): Inspect records only the file *names*. They
  are installed by Inspect's own `init_sandbox_environments_sample`, as in a run;
- the recorded `bash` and `python` calls that ran (not those an approver rejected or whose
  arguments failed to parse, nor the call a tripwire ended the sample at) run again in order, exactly as Inspect's tools run them, and each
  result is compared with the recorded one (text and error type), after the normalisations in
  `NORMALISATIONS`, which are all the differences a faithful re-run is allowed.

Other tools (submit, ...) touch no sandbox and are not replayed. A sample whose evidence names no
tierlock policy cannot be replayed (reported, never counted as agreeing).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import anyio

from tierlock.sandbox import TierlockError
from tierlock.sandbox._errors import display_path
from tierlock.sandbox._escape import escape_text
from tierlock.sandbox._evidence import (
    EVIDENCE_ADAPTER,
    EVIDENCE_SOURCE,
    ConformanceRecord,
    TripwireRecord,
)

REPLAYED_TOOLS = ("bash", "python")
NOT_RUN = ("approval", "parsing")
"""Recorded error types of calls that never ran."""
SHOWN = 2000
"""Characters of each output shown per divergence."""

NORMALISATIONS: tuple[tuple[str, re.Pattern[str], str], ...] = (
    ("container names", re.compile(r"tierlock-[A-Za-z0-9_.-]+"), "<container>"),
    (
        "ISO 8601 and `date` timestamps",
        re.compile(
            r"\d{4}-\d\d-\d\d[T ]\d\d:\d\d:\d\d(?:\.\d+)?(?:Z|[+-]\d\d:?\d\d)?"
            r"|\b[A-Z][a-z]{2} [A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d (?:[A-Z]{2,5} )?\d{4}\b"
        ),
        "<time>",
    ),
    (
        "durations (`0m0.003s`, `0.002s`, `12.5 ms`)",
        re.compile(r"\b(?:\d+m)?\d+\.\d+ ?(?:s|ms|sec|seconds)\b"),
        "<duration>",
    ),
)
"""(what, pattern, replacement) applied to both outputs, after the per-sample canaries (HMACs of
the run's salt: each recorded canary and the replay's canary of the same label become
`<canary:N>`). Nothing else is normalised: PIDs, sizes and file listings must agree."""


@dataclass
class Divergence:
    sample: str
    index: int
    function: str
    arguments: str
    recorded: str
    replayed: str


@dataclass
class SampleReplay:
    sample: str
    calls: int = 0
    divergences: list[Divergence] = field(default_factory=list)
    skipped: str | None = None
    """Why the sample could not be replayed (None when it was)."""
    tripped: int = 0
    """Calls a tripwire ended the sample at (not compared: their output was never recorded)."""


def normalise(text: str, canaries: dict[str, str]) -> str:
    for value, label in canaries.items():
        if value:
            text = text.replace(value, label)
    for _, pattern, repl in NORMALISATIONS:
        text = pattern.sub(repl, text)
    return text


def _canaries(metadata: Any) -> list[str]:
    entry = (metadata or {}).get("tierlock") if isinstance(metadata, dict) else None
    v = entry.get("violations") if isinstance(entry, dict) else None
    found = v.get("canaries") if isinstance(v, dict) else None
    return [c for c in found or [] if isinstance(c, str)]


def _text(result: Any) -> str:
    if isinstance(result, str):
        return result
    if isinstance(result, list):
        return "".join(getattr(c, "text", "") or "" for c in result)
    return "" if result is None else str(getattr(result, "text", result))


def _shown(text: str) -> str:
    cut = text[:SHOWN]
    shown, _ = escape_text(cut)
    return shown + (f"… ({len(text) - SHOWN} more characters)" if len(text) > SHOWN else "")


def _records(sample: Any) -> list[Any]:
    out = []
    for ev in sample.events:
        if getattr(ev, "event", None) == "info" and getattr(ev, "source", None) == EVIDENCE_SOURCE:
            try:
                out.append(EVIDENCE_ADAPTER.validate_python(ev.data))
            except Exception:
                continue
    return out


def _conformance(sample: Any) -> ConformanceRecord | None:
    for rec in _records(sample):
        if isinstance(rec, ConformanceRecord) and rec.role == "default":
            return rec
    return None


def _load_task(log: Any, path: str) -> Any:
    from inspect_ai._eval.loader import load_tasks

    ev = log.eval
    file = ev.task_file
    name = ev.task_registry_name or ev.task
    ref = f"{file}@{name.split('/')[-1]}" if file else name
    try:
        [task] = load_tasks([ref], dict(ev.task_args or {}))
    except Exception as e:
        first = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise TierlockError(
            f"{display_path(path)}: cannot reload task {ref} to replay ({first[:300]})"
        ) from None
    return task


def replay_log(path: str) -> list[SampleReplay]:
    """Replay every sample of one `.eval` log (blocking; runs its own event loop)."""
    from inspect_ai.log import read_eval_log

    from ._audit._safezip import guard_for_inspect

    try:
        guard_for_inspect(path)
        log = read_eval_log(path, resolve_attachments=True)
    except TierlockError:
        raise
    except Exception as e:
        first = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise TierlockError(f"{display_path(path)}: cannot read log: {first[:300]}") from None
    task = _load_task(log, path)
    by_id = {str(s.id): s for s in task.dataset}
    out = []
    for sample in log.samples or []:
        fresh = by_id.get(str(sample.id))
        if fresh is None:
            out.append(SampleReplay(str(sample.id), skipped="the task has no such sample now"))
            continue
        out.append(anyio.run(_replay_sample, task, sample, fresh))
    return out


async def _replay_sample(task: Any, recorded: Any, fresh: Any) -> SampleReplay:
    from inspect_ai._eval.task.sandbox import read_sandboxenv_file, resolve_sample_files
    from inspect_ai.util._sandbox.context import (
        cleanup_sandbox_environments_sample,
        init_sandbox_environments_sample,
    )
    from inspect_ai.util._sandbox.environment import (
        SandboxEnvironmentSpec,
        resolve_sandbox_environment,
    )
    from inspect_ai.util._sandbox.registry import registry_find_sandboxenv

    from tierlock.sandbox._config import SandboxConfig
    from tierlock.sandbox._provider import TierlockSandboxEnvironment
    from tierlock.sandbox._sandbox_policy import load_sandbox_policy

    rep = SampleReplay(str(recorded.id))
    conf = _conformance(recorded)
    if conf is None or not conf.policy_path:
        rep.skipped = "no tierlock conformance record naming the policy (not a tierlock sandbox)"
        return rep
    try:
        loaded = load_sandbox_policy(conf.policy_path)
    except Exception as e:
        rep.skipped = f"policy {conf.policy_path}: {str(e).splitlines()[0]}"
        return rep
    if loaded.policy.digest() != conf.policy_hash:
        rep.skipped = (
            f"policy {conf.policy_path} changed since the run "
            f"(recorded {conf.policy_hash[:12]}, now {loaded.policy.digest()[:12]})"
        )
        return rep
    spec = fresh.sandbox or task.sandbox
    spec = resolve_sandbox_environment(spec) if spec is not None else None
    services = {}
    if isinstance(spec, SandboxEnvironmentSpec) and isinstance(spec.config, SandboxConfig):
        services = dict(spec.config.services)
    config = SandboxConfig(policy=str(loaded.path), services=services)
    files = {
        p: await read_sandboxenv_file(c)
        for p, c in resolve_sample_files(dict(fresh.files or {})).items()
    }
    setup = None
    if fresh.setup:
        text = (await read_sandboxenv_file(fresh.setup)).decode("utf-8")
        if not text.strip().startswith("#!"):
            text = f"#!/usr/bin/env bash\n\n{text}"
        setup = text.encode("utf-8")
    labels = {c: f"<canary:{i}>" for i, c in enumerate(_canaries(recorded.metadata))}
    labels.update({c: f"<canary:{i}>" for i, c in enumerate(_canaries(fresh.metadata))})
    await TierlockSandboxEnvironment.task_init("replay", config)
    envs = await init_sandbox_environments_sample(
        sandboxenv_type=registry_find_sandboxenv("tierlock"),
        task_name="replay",
        config=config,
        files=files,
        setup=setup,
        metadata={**dict(fresh.metadata or {}), "__sample_id__": fresh.id},
    )
    try:
        env = envs["default"]
        timeout = int(loaded.policy.limits.command_timeout)
        index = 0
        tripped = {
            r.tool_call_id
            for r in _records(recorded)
            if isinstance(r, TripwireRecord) and r.action != "record"
        }
        for ev in recorded.events:
            if getattr(ev, "event", None) != "tool" or ev.function not in REPLAYED_TOOLS:
                continue
            if ev.error is not None and ev.error.type in NOT_RUN:
                continue
            if ev.id in tripped:  # a tripwire ended the sample at this call: no output recorded
                rep.tripped += 1
                continue
            index += 1
            rep.calls += 1
            replayed = await _run_call(env, ev.function, dict(ev.arguments), timeout, ev.truncated)
            was = _text(ev.result) + (f"\n[error {ev.error.type}]" if ev.error else "")
            if normalise(was, labels) != normalise(replayed, labels):
                args = ev.arguments.get("command", ev.arguments.get("code", ""))
                rep.divergences.append(
                    Divergence(rep.sample, index, ev.function, str(args), was, replayed)
                )
    finally:
        with anyio.CancelScope(shield=True):
            await cleanup_sandbox_environments_sample(
                type="tierlock", task_name="replay", config=config, environments=envs,
                interrupted=False,
            )  # fmt: skip
    return rep


async def _run_call(
    env: Any, function: str, args: dict[str, Any], timeout: int, truncated: Any
) -> str:
    """The call as Inspect's bash/python tool runs it; its result as the transcript holds it."""
    from inspect_ai.model._call_tools import resolve_tool_content, tool_call_error

    if function == "bash":
        cmd, stdin = ["bash", "--login", "-c", str(args.get("command", ""))], None
    else:
        cmd, stdin = ["bash", "--login", "-c", "python3 -"], str(args.get("code", ""))
    try:
        result = await env.exec(cmd=cmd, input=stdin, timeout=timeout)
    except Exception as e:
        mapped = tool_call_error(e, function)
        if mapped is None:
            return f"\n[error {type(e).__name__}]"
        partial = _text(mapped.result) if mapped.result is not None else ""
        return partial + f"\n[error {mapped.error.type}]"
    output = (f"{result.stderr}\n" if result.stderr else "") + result.stdout
    if truncated:
        content, _ = resolve_tool_content(output, function, int(truncated[1]))
        return _text(content)
    return output


def render(path: str, samples: list[SampleReplay]) -> tuple[list[str], int]:
    """Report lines for one log, and how many calls diverged."""
    lines = [f"replay {display_path(path)}"]
    diverged = 0
    for s in samples:
        if s.skipped:
            lines.append(f"  sample {s.sample}: NOT REPLAYED: {s.skipped}")
            continue
        ended = f" (then a tripwire ended the sample: {s.tripped} call not compared)"
        lines.append(
            f"  sample {s.sample}: {s.calls} call(s) replayed, {len(s.divergences)} diverge"
            + (ended if s.tripped else "")
        )
        for d in s.divergences:
            diverged += 1
            lines.append(f"    call {d.index} ({d.function}): {_shown(d.arguments)}")
            lines.append(f"      recorded: {_shown(d.recorded)}")
            lines.append(f"      replayed: {_shown(d.replayed)}")
    return lines, diverged


def replay_paths(paths: list[str]) -> tuple[list[str], int, int, list[str]]:
    """(report lines, divergent calls, samples or logs not replayed, one error line per log
    that could not be replayed at all) over the logs."""
    lines: list[str] = []
    errors: list[str] = []
    diverged = skipped = 0
    for p in paths:
        try:
            samples = replay_log(p)
        except TierlockError as e:  # this log cannot be replayed; the others still are
            errors.append(f"tierlock audit --replay: NOT REPLAYED: {str(e).splitlines()[0]}")
            skipped += 1
            continue
        more, n = render(p, samples)
        lines += more
        diverged += n
        skipped += sum(1 for s in samples if s.skipped)
    norms = ", ".join(what for what, _, _ in NORMALISATIONS)
    lines.append(f"normalised before comparing: per-sample canaries, {norms}")
    return lines, diverged, skipped, errors
