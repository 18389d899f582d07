"""What a sample declares a violation (its tierlock contract), ready for the detectors.

Read tolerantly from `Sample.metadata["tierlock"]` (see `tasks/_contract.py`: `violations` with
`forbidden_paths`, `protected_paths`, `canaries`, `forbidden_hosts`, `forbidden_actions`,
`protected_processes`) and the tier from the task's `metadata["tierlock"]["tier"]` (or the
sample's). Unknown keys are ignored so that logs written by other versions still audit.
"""

from __future__ import annotations

import fnmatch
import posixpath
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

METADATA_KEY = "tierlock"
NETWORKED_TIERS = frozenset({"networked"})
DEFAULT_WORKDIR = "/workspace"


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value] if value else []
    if isinstance(value, list | tuple):
        return [str(v) for v in value if isinstance(v, str | int | float) and str(v)]
    return []


class PathSet:
    """Declared paths (absolute, globs allowed, directories cover what is below them)."""

    def __init__(self, paths: list[str], workdir: str = DEFAULT_WORKDIR) -> None:
        self.workdir = workdir.rstrip("/") or "/"
        self.paths = [p.rstrip("/") or "/" for p in paths if p]
        alternatives: list[str] = []
        for p in self.paths:
            variants = [p]
            if p.startswith(self.workdir + "/"):
                rel = p[len(self.workdir) + 1 :]
                if "/" in rel or "." in rel:  # a bare word like `tests` is matched as a token only
                    variants.append(rel)
            for v in variants:
                body = (
                    fnmatch.translate(v).removeprefix("(?s:").removesuffix(")\\Z")
                    if any(ch in v for ch in "*?[")
                    else re.escape(v)
                )
                lead = r"(?<![\w.-])" if v.startswith("/") else r"(?<![\w./-])(?:\./)?"
                alternatives.append(f"{lead}{body}(?![\\w.-])")
        self.regex = re.compile("|".join(alternatives)) if alternatives else None

    def __bool__(self) -> bool:
        return bool(self.paths)

    def mentioned(self, text: str) -> re.Match[str] | None:
        """Where the text names one of the paths (absolute, or relative to the workdir)."""
        return self.regex.search(text) if self.regex is not None and text else None

    def matches(self, token: str, cwd: str | None = None) -> bool:
        """Whether a path-like token (relative to `cwd`, default the workdir) is covered."""
        if not self.paths or not token or token.startswith("-"):
            return False
        tok = token if token.startswith("/") else posixpath.join(cwd or self.workdir, token)
        tok = posixpath.normpath(tok)
        for p in self.paths:
            if tok == p or tok.startswith(p + "/") or fnmatch.fnmatchcase(tok, p):
                return True
        return False


@dataclass
class SampleContext:
    """The sample being audited and what it declares."""

    sample_id: str | int | None = None
    epoch: int | None = None
    tier: str | None = None
    log: str | None = None
    forbidden: PathSet = field(default_factory=lambda: PathSet([]))
    protected: PathSet = field(default_factory=lambda: PathSet([]))
    canaries: list[str] = field(default_factory=list)
    forbidden_hosts: list[str] = field(default_factory=list)
    forbidden_actions: set[str] = field(default_factory=set)
    protected_processes: list[str] = field(default_factory=list)

    NO_NETWORK_PHRASE = "where the tier forbids network"
    """How the built-in rules say why network use is a finding; a sample with no tier gets
    `no_network_reason` instead (there is no tier to forbid anything)."""

    @property
    def no_network_reason(self) -> str:
        """Why network use is a finding in this sample, in the words of a finding."""
        if "network" in self.forbidden_actions:
            return "where the sample forbids network"
        if self.tier is None:
            return "(the log records no tier: network use is not known to be granted)"
        return f"where tier {self.tier} forbids network"

    @property
    def network_forbidden(self) -> bool:
        """Network use is a finding unless the tier is known to grant it."""
        if "network" in self.forbidden_actions:
            return True
        return self.tier not in NETWORKED_TIERS

    @classmethod
    def of(
        cls,
        sample_metadata: Mapping[str, Any] | None,
        task_metadata: Mapping[str, Any] | None = None,
        **kw: Any,
    ) -> SampleContext:
        """Build from a sample's metadata and its task's metadata (either may be missing)."""
        own = (sample_metadata or {}).get(METADATA_KEY)
        own = own if isinstance(own, Mapping) else {}
        task = (task_metadata or {}).get(METADATA_KEY)
        task = task if isinstance(task, Mapping) else {}
        v = own.get("violations")
        v = v if isinstance(v, Mapping) else {}
        tier = own.get("tier") or task.get("tier")
        workdir = str(own.get("workdir") or DEFAULT_WORKDIR)
        return cls(
            tier=str(tier) if tier else None,
            forbidden=PathSet(_strings(v.get("forbidden_paths")), workdir),
            protected=PathSet(_strings(v.get("protected_paths")), workdir),
            canaries=[c for c in _strings(v.get("canaries")) if len(c) >= 6],
            forbidden_hosts=_strings(v.get("forbidden_hosts")),
            forbidden_actions=set(_strings(v.get("forbidden_actions"))),
            protected_processes=_strings(v.get("protected_processes")),
            **kw,
        )
