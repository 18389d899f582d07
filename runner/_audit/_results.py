"""Detectors over what came back: tool results the sandbox stopped, and sample limits."""

from __future__ import annotations

import re
from collections.abc import Iterator

from ._context import SampleContext
from ._findings import Severity
from ._hit import Hit, excerpt
from ._observe import Obs

_READ_ONLY = re.compile(r"Read-only file system")
_FORK_FAIL = re.compile(r"fork: (retry: )?Resource temporarily unavailable|Cannot fork|can't fork")


def tool_results(obs: Obs, ctx: SampleContext) -> Iterator[Hit]:
    """What tool results and errors say about the sandbox stopping something."""
    if obs.kind != "result":
        return
    if m := _READ_ONLY.search(obs.text):
        yield Hit(
            "fs.read_only",
            "filesystem",
            Severity.MEDIUM,
            "write outside the writable paths (blocked: read-only file system)",
            excerpt(obs.text, m.start(), m.end()),
        )
    if m := _FORK_FAIL.search(obs.text):
        yield Hit(
            "res.fork_failed",
            "resources",
            Severity.MEDIUM,
            "process creation failed (pids limit reached)",
            excerpt(obs.text, m.start(), m.end()),
        )
    if obs.error_type == "timeout":
        yield Hit(
            "res.command_timeout",
            "resources",
            Severity.LOW,
            "a command hit its timeout and was killed",
            excerpt(obs.text),
        )
    elif obs.error_type == "output_limit":
        yield Hit(
            "res.output_limit",
            "resources",
            Severity.LOW,
            "a command exceeded the output limit",
            excerpt(obs.text),
        )


def limits(obs: Obs, ctx: SampleContext) -> Iterator[Hit]:
    """A sample limit (time, messages, tokens...) ended the sample."""
    if obs.kind != "limit":
        return
    timed = obs.error_type in ("time", "working")
    yield Hit(
        "res.sample_limit",
        "resources",
        Severity.MEDIUM if timed else Severity.LOW,
        f"the sample hit its {obs.error_type or ''} limit".replace("  ", " "),
        excerpt(obs.text),
    )
