"""What the audit produces: findings with evidence, per sample and per log (a stable JSON schema)."""

from __future__ import annotations

import re
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, Field

_SURROGATE = re.compile("[\ud800-\udfff]")


def no_surrogates(text: str) -> str:
    """Text with every lone surrogate (what undecodable bytes or a hostile `\\udc80` in a JSON
    log become) written as a visible `\\udcXX` escape, so every report can be encoded."""
    return _SURROGATE.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


def clean_json(value: Any) -> Any:
    """A JSON value with `no_surrogates` applied to every string in it (keys too)."""
    if isinstance(value, str):
        return no_surrogates(value)
    if isinstance(value, list):
        return [clean_json(v) for v in value]
    if isinstance(value, dict):
        return {no_surrogates(str(k)): clean_json(v) for k, v in value.items()}
    return value


Text = Annotated[str, AfterValidator(no_surrogates)]
"""A string that came from a log: encodable whatever the log held."""

SCHEMA = "tierlock.audit/1"
"""`schema` field of the JSON report; bumped when a field is renamed or removed."""


class Severity(StrEnum):
    """How bad a finding is; ordered low < medium < high < critical."""

    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    CRITICAL = "critical"

    @property
    def rank(self) -> int:
        """0 (low) to 3 (critical), for comparisons."""
        return _RANK[self]

    def at_least(self, other: Severity | str) -> bool:
        """Whether this severity is `other` or worse."""
        return self.rank >= Severity(other).rank


_RANK = {Severity.LOW: 0, Severity.MEDIUM: 1, Severity.HIGH: 2, Severity.CRITICAL: 3}

Category = Literal[
    "network", "filesystem", "privilege", "resources", "tampering", "canary", "integrity"
]
CATEGORIES: tuple[Category, ...] = (
    "network",
    "filesystem",
    "privilege",
    "resources",
    "tampering",
    "canary",
    "integrity",
)
"""Finding categories; `integrity` is about the log or the sandbox itself, not the model."""


class Finding(BaseModel):
    """One thing the transcript shows the model tried (or got), with the event that proves it."""

    rule: str = Field(description="Id of the rule that fired, e.g. `net.command`")
    category: Category
    severity: Severity
    explanation: Text = Field(description="One line: what happened and why it matters")
    excerpt: Text = Field(
        default="", description="The quoted evidence (cut to a few hundred chars)"
    )
    log: str | None = Field(default=None, description="Path of the log file")
    sample_id: Text | int | None = None
    epoch: int | None = None
    tier: Text | None = None
    event_index: int | None = Field(default=None, description="Index in the sample's `events`")
    event_uuid: str | None = None
    event: str | None = Field(
        default=None, description="Kind of event cited: tool, model, info, ..."
    )

    def sort_key(self) -> tuple[int, str, int]:
        """Worst first, then by sample and event order."""
        return (-self.severity.rank, str(self.sample_id), self.event_index or 0)


class TimelineEntry(BaseModel):
    """A one-line view of an event, for the HTML report's per-sample timeline."""

    index: int
    event: Text
    label: Text
    rules: list[str] = Field(default_factory=list)
    harness: bool = Field(
        default=False,
        description="Inspect's own sandbox use (setup, scorers), not a command of the model",
    )


SourceStatus = Literal["checked", "partial", "absent", "not-applicable"]
"""`checked`: present and complete; `partial`: present but incomplete (truncated, unreadable
parts); `absent`: the sample should have it and does not; `not-applicable`: nothing to record
(no sandbox, or a policy without that part)."""


class SourceCoverage(BaseModel):
    """One evidence source of a sample and whether the audit could check it."""

    source: str = Field(description="transcript, conformance, filesystem, resources, proxy, ...")
    status: SourceStatus
    detail: Text = ""


class Coverage(BaseModel):
    """What the audit of a sample could see: absent evidence is *not checked*, never clean."""

    sandbox: Literal["tierlock", "other", "none"] = Field(
        description="tierlock's sandbox, another sandbox (local, docker...) or none at all"
    )
    complete: bool = Field(description="Every evidence source the sample should have was checked")
    transcript_only: bool = Field(
        default=False,
        description="Made without tierlock's sandbox: only the transcript could be audited",
    )
    backend: str | None = Field(
        default=None,
        description="The sandbox backend the sample ran on when tierlock ran it without its own "
        "provider (`k8s`): the evidence only that provider collects is absent by design",
    )
    sources: list[SourceCoverage] = Field(default_factory=list)
    ran: list[str] = Field(default_factory=list, description="Checks that ran")
    not_checked: list[str] = Field(
        default_factory=list, description="Checks that could not run: their evidence is missing"
    )

    def gaps(self) -> list[str]:
        """One phrase per source that should be there and is not (fully)."""
        return [
            f"{s.source} {s.status}" + (f" ({s.detail})" if s.detail else "")
            for s in self.sources
            if s.status in ("absent", "partial")
        ]


class SampleAudit(BaseModel):
    """The audit of one sample (one epoch)."""

    id: Text | int
    epoch: int = 1
    tier: Text | None = None
    events: int = 0
    error: Text | None = Field(
        default=None, description="Harness error the sample ended with, if any"
    )
    coverage: Coverage | None = Field(
        default=None, description="Which evidence the audit could check (None: older reports)"
    )
    findings: list[Finding] = Field(default_factory=list)
    timeline: list[TimelineEntry] | None = None
    prompt: Text | None = Field(default=None, description="(HTML report) the sample's input")
    answer: Text | None = Field(default=None, description="(HTML report) the final answer")
    records: list[dict[str, Any]] | None = Field(
        default=None, description="(HTML report) tierlock's evidence records, as logged"
    )

    @property
    def worst(self) -> Severity | None:
        """The worst severity among the findings, None when clean."""
        return max((f.severity for f in self.findings), key=lambda s: s.rank, default=None)


class LogAudit(BaseModel):
    """The audit of one log file. `error` is set (and `samples` may be partial) when unreadable."""

    path: Text
    sha256: str | None = None
    expected_sha256: str | None = None
    task: Text | None = None
    model: Text | None = None
    status: Text | None = Field(
        default=None, description="The eval's status: success, error, started..."
    )
    error: Text | None = None
    log_findings: list[Finding] = Field(
        default_factory=list,
        description="Findings about the log itself (integrity: hash mismatch, unreadable)",
    )
    samples: list[SampleAudit] = Field(default_factory=list)

    @property
    def integrity_ok(self) -> bool | None:
        """True/False when an expected hash was given, None otherwise."""
        if self.expected_sha256 is None or self.sha256 is None:
            return None
        return self.expected_sha256.lower() == self.sha256

    @property
    def findings(self) -> list[Finding]:
        """Every finding of this log (log-level and per sample), worst first."""
        return self.all_findings()

    def all_findings(self) -> list[Finding]:
        """Log-level and sample findings, worst first."""
        out = list(self.log_findings)
        for s in self.samples:
            out.extend(s.findings)
        return sorted(out, key=Finding.sort_key)


class AuditResult(BaseModel):
    """The audit of several logs: what `tierlock audit` reports and the gate reads."""

    schema_: str = Field(default=SCHEMA, alias="schema")
    logs: list[LogAudit] = Field(default_factory=list)

    model_config = {"populate_by_name": True}

    @property
    def errors(self) -> list[LogAudit]:
        """Logs that could not be (fully) audited."""
        return [log for log in self.logs if log.error]

    def findings(self) -> list[Finding]:
        """Every finding of every log, worst first."""
        out: list[Finding] = []
        for log in self.logs:
            out.extend(log.all_findings())
        return sorted(out, key=Finding.sort_key)

    def worst(self) -> Severity | None:
        """The worst severity found, None when there is no finding."""
        return max((f.severity for f in self.findings()), key=lambda s: s.rank, default=None)

    def to_json(self, *, timeline: bool = False) -> str:
        """The machine-readable report (stable schema `tierlock.audit/1`)."""
        report_only = {"prompt", "answer", "records"} | (set() if timeline else {"timeline"})
        exclude = {"logs": {"__all__": {"samples": {"__all__": report_only}}}}
        return self.model_dump_json(by_alias=True, indent=2, exclude=exclude)
