"""What a lint rule is: an id, a severity, a summary and a check yielding findings.

The rules themselves live in the `_lint_*` modules by concept; `sandbox._lint.RULES` is the one
table that lists them all, in report order.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from ._loader import LoadedPolicy
from ._loader_positions import KeyPath
from ._policy import Policy

Severity = Literal["error", "warning"]


@dataclass(frozen=True)
class Finding:
    """One thing a rule found: where (key path) and what."""

    path: KeyPath
    message: str
    at_key: bool = False


@dataclass(frozen=True)
class LintContext:
    """What a check may need besides the policy: the loaded file (for places and relative paths)."""

    source: LoadedPolicy | None = None

    def resolve(self, path: KeyPath, value: str) -> Path | None:
        """A file path written at `path`, resolved against the file that set it; None without a
        source file (a policy built in code)."""
        return self.source.resolve_path(path, value) if self.source is not None else None


Check = Callable[[Policy, LintContext], Iterable[Finding]]


@dataclass(frozen=True)
class Rule:
    """A lint rule. `downgradable`: whether `unsafe.allow` may turn its errors into warnings.

    `check` is None for a rule enforced elsewhere: while loading (the policy model refuses the
    value and the loader tags the problem with this rule's id) or over a ladder of policies
    (`sandbox._ladder`). It is listed so that every rule has one table and `tierlock policy rules`
    shows it; `unsafe.allow` cannot name it (it is not downgradable).
    """

    id: str
    severity: Severity
    summary: str
    check: Check | None
    cis: str = ""
    downgradable: bool = True
