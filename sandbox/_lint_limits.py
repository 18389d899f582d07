"""Lint rules about resource limits: every limit is set, and every value is a real limit.

The policy model already refuses out-of-range values read from a file (`sandbox._bounds`); the
`limit-range` rule checks the `Policy` object again, because one built or changed in code
(`model_copy(update=...)` skips validation) must not reach Docker with `memory: 0` either.
"""

from __future__ import annotations

from collections.abc import Iterator

from ._bounds import out_of_range
from ._lint_rule import Finding, LintContext
from ._loader_positions import KeyPath
from ._policy import Policy


def _memory(p: Policy, _: LintContext) -> Iterator[Finding]:
    if p.limits.memory is None:
        yield Finding(("limits", "memory"), "no memory limit; set one, e.g. 512m")


def _pids(p: Policy, _: LintContext) -> Iterator[Finding]:
    if p.limits.pids is None:
        yield Finding(("limits", "pids"), "no pids limit (fork bombs); set one, e.g. 256")


def _cpus(p: Policy, _: LintContext) -> Iterator[Finding]:
    if p.limits.cpus is None:
        yield Finding(("limits", "cpus"), "no CPU limit; set one, e.g. 1.0")


def limit_values(p: Policy) -> Iterator[tuple[KeyPath, str, float]]:
    """(key path, `BOUNDS` field, value) of every limit the policy sets."""
    for name in ("memory", "cpus", "pids", "command_timeout", "output_bytes", "sample_time"):
        value = getattr(p.limits, name)
        if value is not None:
            yield ("limits", name), f"limits.{name}", value
    for i, w in enumerate(p.filesystem.writable):
        yield ("filesystem", "writable", i, "size"), "filesystem.writable.size", w.size


def _limit_range(p: Policy, _: LintContext) -> Iterator[Finding]:
    for path, field, value in limit_values(p):
        bad = out_of_range(field, value)
        if bad is not None:
            yield Finding(path, bad[1])
