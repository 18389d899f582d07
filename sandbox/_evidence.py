"""Evidence records tierlock writes into a sample's transcript.

Each record is logged as an Inspect `InfoEvent` with `source="tierlock"` and `data` the record's
JSON (`model_dump(mode="json")`), discriminated by `kind`. The audit reads them back from the
`.eval` log alone, so everything it needs about the container must be in here.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, Field, TypeAdapter

from ._escape import printable

Printable = Annotated[str, AfterValidator(printable)]
"""Text that may quote what a container reported: kept on one printable line."""

EVIDENCE_SOURCE = "tierlock"
"""`InfoEvent.source` of every tierlock evidence record."""


class ConformanceRecord(BaseModel):
    """The result of reading a container's configuration back and comparing it with its policy."""

    kind: Literal["conformance"] = "conformance"
    container: str
    role: str = "default"  # default | service:<name> | proxy
    policy_name: str
    policy_hash: str
    policy_path: str | None = None
    ok: bool
    mismatches: list[Printable] = Field(default_factory=list)
    unsafe_reason: str | None = None
    unsafe_rules: list[str] = Field(default_factory=list)
    seccomp_sha256: str | None = None
    """SHA-256 of the seccomp profile handed to Docker (None: unconfined, or not recorded)."""
    user: str | None = None
    """The uid:gid the sandbox's commands run as (the policy's user plus its leased slot)."""
    pooled: bool = False
    """Checked ahead of the sample by a warm pool (`sandbox._warm_pool`), which handed the
    container to this sample only (never reused) after re-checking it was unchanged."""
    checked_at: float | None = None
    """When a pooled container was checked (Unix time); None when checked as the sample started."""


class FsChange(BaseModel):
    """One line of `docker diff`: A (added), C (changed) or D (deleted)."""

    path: str
    """The path in `sandbox._escape`'s printable form (when `escaped`, `unescape` it for the
    raw bytes: names may hold newlines, control characters, invalid UTF-8)."""
    change: Literal["A", "C", "D"]
    escaped: bool = False


class ContainerEvidence(BaseModel):
    """What only the container knows, captured before it is removed."""

    kind: Literal["container"] = "container"
    container: str
    role: str = "default"
    policy_hash: str
    exit_code: int | None = None
    oom_killed: bool = False
    running: bool = False
    pids_current: int | None = None
    pids_limit: int | None = None
    pids_limit_hit: bool = False
    changes_outside_writable: list[FsChange] = Field(default_factory=list)
    timeouts: int = 0
    output_limit_hits: int = 0
    collected: bool = True
    """False when the container could not be read (`error` says why): only the host-side
    counters (`timeouts`, `output_limit_hits`) are real; the diff, OOM and pids fields were not
    checked, and an audit reports them as such, never as clean. Logs written before this field
    existed read as collected."""
    error: Printable | None = None


class ProxyRequest(BaseModel):
    """One request the egress proxy saw. The text fields come from the sandbox: they are in
    `sandbox._escape`'s printable form ("" when absent); `escaped` says one needed escaping."""

    seq: int | None = None
    """squid's log sequence number of the line."""
    time: float
    method: str
    host: str
    port: int | None = None
    allowed: bool
    status: int | None = None
    bytes: int = 0
    url: str = ""
    sni: str = ""
    """The TLS server name of a CONNECT tunnel's client hello."""
    host_header: str = ""
    user_agent: str = ""
    escaped: bool = False
    cut: list[str] = Field(default_factory=list)
    """Fields longer than the proxy logs: only their beginning is on the record."""


class ProxyLog(BaseModel):
    """Every request that tried to leave the sandbox through the proxy, allowed or refused."""

    kind: Literal["proxy_log"] = "proxy_log"
    proxy: str
    requests: list[ProxyRequest] = Field(default_factory=list)
    truncated: bool = False
    """The log was longer than tierlock reads: `requests` is its head and tail only."""
    dropped: int = 0
    """Log lines left out between the head and the tail when `truncated`."""
    rejected: int = 0
    """Lines that did not match the proxy's log format exactly: never read as requests."""
    rejected_lines: list[str] = Field(default_factory=list)
    """The first few rejected lines, escaped and cut short."""
    missing: int = 0
    """Lines squid wrote that were gone before tierlock read the log (sequence numbers never
    seen, beyond `dropped`), e.g. rotated away by the log's size cap."""


class ProcessSurvivors(BaseModel):
    """Processes still running after a sandbox's last command returned, under a policy with
    `process.background: allow` (with `forbid` they are killed instead)."""

    kind: Literal["survivors"] = "survivors"
    container: str
    processes: list[Printable] = Field(default_factory=list)
    """Each survivor's command line, escaped (`sandbox._escape`), arguments separated by spaces."""
    more: int = 0
    """Survivors beyond the first `MAX_LISTED`, counted only."""


class TripwireRecord(BaseModel):
    """A critical event seen while the sample ran (`sandbox._tripwire`): what tripped, when, and
    what tierlock did about it (ended the sample, the tier, or only recorded it)."""

    kind: Literal["tripwire"] = "tripwire"
    rule: str
    """`tripwire.<what>`: canary, canary_path, forbidden_path, forbidden_host, escape, egress,
    fs_outside, tier_stopped, error."""
    detail: Printable
    """What tripped it, escaped (it quotes what the model sent or the container reported)."""
    phase: Literal["before", "after"]
    """Seen in the call before it ran (approval), or in what it did (after the command)."""
    action: Literal["end-sample", "end-tier", "record"]
    time: float
    tool_call_id: str | None = None
    function: str | None = None


EvidenceRecord = Annotated[
    ConformanceRecord | ContainerEvidence | ProxyLog | ProcessSurvivors | TripwireRecord,
    Field(discriminator="kind"),
]
EVIDENCE_ADAPTER: TypeAdapter[EvidenceRecord] = TypeAdapter(EvidenceRecord)
"""Parses an InfoEvent's `data` back into a record."""
