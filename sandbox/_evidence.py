"""Evidence records tierlock writes into a sample's transcript.

Each record is logged as an Inspect `InfoEvent` with `source="tierlock"` and `data` the record's
JSON (`model_dump(mode="json")`), discriminated by `kind`. The audit reads them back from the
`.eval` log alone, so everything it needs about the container must be in here.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, Field, TypeAdapter

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
    mismatches: list[str] = Field(default_factory=list)
    unsafe_reason: str | None = None
    unsafe_rules: list[str] = Field(default_factory=list)


class FsChange(BaseModel):
    """One line of `docker diff`: A (added), C (changed) or D (deleted)."""

    path: str
    change: Literal["A", "C", "D"]


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


class ProxyRequest(BaseModel):
    """One request the egress proxy saw."""

    time: float
    method: str
    host: str
    port: int | None = None
    allowed: bool
    status: int | None = None
    bytes: int = 0
    url: str = ""


class ProxyLog(BaseModel):
    """Every request that tried to leave the sandbox through the proxy, allowed or refused."""

    kind: Literal["proxy_log"] = "proxy_log"
    proxy: str
    requests: list[ProxyRequest] = Field(default_factory=list)
    truncated: bool = False
    """The log was longer than tierlock reads: `requests` is its head and tail only."""
    dropped: int = 0
    """Log lines left out between the head and the tail when `truncated`."""


EvidenceRecord = Annotated[
    ConformanceRecord | ContainerEvidence | ProxyLog, Field(discriminator="kind")
]
EVIDENCE_ADAPTER: TypeAdapter[EvidenceRecord] = TypeAdapter(EvidenceRecord)
"""Parses an InfoEvent's `data` back into a record."""
