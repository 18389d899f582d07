"""Evidence coverage: which of a sample's evidence sources the audit could check.

An audit only speaks for what it saw. A sample run in tierlock's sandbox should carry its
conformance record (the container read back against its policy), the container's evidence
(filesystem diff and resource counters: OOM, pids, timeouts), the proxy log when its policy has
an egress proxy, and each sidecar's evidence. A sample run in another sandbox (Inspect's `local`
or `docker`) has only its transcript: every container-side check is *not checked*. A sample with
no sandbox at all has nothing else to check.

What the sample should have is read from the log itself: the task's sandbox type, and the
conformance records (a `proxy` record promises a proxy log, a `service:*` one that sidecar's
evidence).

A sample on a backend tierlock runs without its own provider (`tierlock run --backend k8s`:
Inspect's `k8s` sandbox, `BACKENDS`) is named as such (`Coverage.backend`): every source only
tierlock's Docker provider collects, and its tripwires, are `absent` with that reason, so the gate
can apply the campaign's `absent_evidence` choice to exactly those samples.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from tierlock.sandbox._evidence import (
    ConformanceRecord,
    ContainerEvidence,
    EvidenceRecord,
    ProxyLog,
)

from ._findings import Coverage, SourceCoverage, SourceStatus

SOURCES: dict[str, str] = {
    "transcript": "the transcript (tool calls, their results, model output)",
    "conformance": "tierlock's conformance record (the container read back against its policy)",
    "filesystem": "the container's filesystem diff",
    "resources": "resource counters (OOM kills, pids limit, command timeouts)",
    "proxy": "the egress proxy's request log",
    "sidecars": "sidecar containers' evidence",
    "tripwire": "tierlock's tripwires (a critical event ends the sample while it runs)",
}
"""Evidence sources, in report order, with what each is."""

CHECKS: tuple[tuple[str, str], ...] = (
    ("transcript", "commands and tool calls: rules, declared paths, hosts, processes, canaries"),
    ("transcript", "tool results and sample limits"),
    ("conformance", "the sandbox matched its policy"),
    ("filesystem", "writes outside the writable paths, tampering with protected paths"),
    ("resources", "OOM kills, pids-limit hits, command timeouts"),
    ("proxy", "egress requests (refused and allowed) and canaries in them"),
    ("sidecars", "sidecars' state and changes outside their writable paths"),
    ("tripwire", "critical events ending the sample while it ran"),
)
"""The audit's checks and the source each needs: a check runs only on a checked source."""

TIERLOCK = "tierlock"
BACKENDS: dict[str, str] = {"k8s": "the k8s backend (inspect-k8s-sandbox)"}
"""Sandbox types tierlock runs samples in without its own provider, and what to call them."""
PROVIDER_ONLY = ("conformance", "filesystem", "resources", "proxy", "sidecars", "tripwire")
"""What only tierlock's Docker provider collects or does: absent on a `BACKENDS` sandbox."""


@dataclass
class EvidenceSeen:
    """The tierlock evidence records of one sample, gathered while it is observed."""

    records: list[EvidenceRecord] = field(default_factory=list)
    invalid: int = 0
    """tierlock info events that did not parse as a record."""
    sandbox_events: bool = False
    """Whether the transcript shows any sandbox use (Inspect's `sandbox` events)."""

    def add(self, record: EvidenceRecord | None) -> None:
        if record is None:
            self.invalid += 1
        else:
            self.records.append(record)


def sandbox_type(spec: Any) -> str | None:
    """The sandbox type of an Inspect sandbox spec as logged (`{"type": ..., "config": ...}`, a
    `[type, config]` pair or a bare type), None when there is none."""
    if isinstance(spec, Mapping):
        spec = spec.get("type")
    elif isinstance(spec, list | tuple) and spec:
        spec = spec[0]
    return str(spec) if isinstance(spec, str) and spec else None


def _status(out: list[SourceCoverage], source: str, status: SourceStatus, detail: str = "") -> None:
    out.append(SourceCoverage(source=source, status=status, detail=detail))


def coverage(seen: EvidenceSeen, declared_sandbox: str | None) -> Coverage:
    """What the audit of a sample could check, from its evidence records and the sandbox type
    its log declares (None: unknown or none)."""
    conf = [r for r in seen.records if isinstance(r, ConformanceRecord)]
    boxes = [r for r in seen.records if isinstance(r, ContainerEvidence)]
    proxies = [r for r in seen.records if isinstance(r, ProxyLog)]
    kind: Literal["tierlock", "other", "none"]
    if conf or boxes or proxies or declared_sandbox == TIERLOCK:
        kind = "tierlock"
    elif declared_sandbox is not None or seen.sandbox_events:
        kind = "other"
    else:
        kind = "none"
    out: list[SourceCoverage] = []
    _status(out, "transcript", "checked")
    if kind == "none":
        for source in ("conformance", "filesystem", "resources", "proxy", "sidecars"):
            _status(out, source, "not-applicable", "the sample had no sandbox")
    elif kind == "other" and declared_sandbox in BACKENDS:
        why = f"not collected on {BACKENDS[declared_sandbox]}: only tierlock's provider has it"
        for source in PROVIDER_ONLY:
            _status(out, source, "absent", why)
    elif kind == "other":
        why = f"no tierlock evidence ({declared_sandbox or 'unknown'} sandbox)"
        for source in ("conformance", "filesystem", "resources", "proxy"):
            _status(out, source, "absent", why)
        _status(out, "sidecars", "not-applicable")
    else:
        _tierlock(out, seen, conf, boxes, proxies)
    if seen.invalid:
        out[0] = SourceCoverage(
            source="transcript",
            status="partial",
            detail=f"{seen.invalid} tierlock record(s) did not parse and were not checked",
        )
    checked = {s.source for s in out if s.status in ("checked", "partial")}
    applicable = {s.source for s in out if s.status != "not-applicable"}
    ran = [name for source, name in CHECKS if source in checked]
    not_checked = [name for source, name in CHECKS if source in applicable - checked]
    return Coverage(
        sandbox=kind,
        complete=all(s.status in ("checked", "not-applicable") for s in out),
        transcript_only=kind == "other",
        backend=declared_sandbox if kind == "other" and declared_sandbox in BACKENDS else None,
        sources=out,
        ran=ran,
        not_checked=not_checked,
    )


def _tierlock(
    out: list[SourceCoverage],
    seen: EvidenceSeen,
    conf: list[ConformanceRecord],
    boxes: list[ContainerEvidence],
    proxies: list[ProxyLog],
) -> None:
    default_conf = [r for r in conf if r.role == "default"]
    if not default_conf:
        _status(out, "conformance", "absent", "no conformance record of the sandbox")
    else:
        bad = [r for r in default_conf if not r.ok]
        _status(out, "conformance", "checked", "mismatch (a finding)" if bad else "")
    box = next((r for r in reversed(boxes) if r.role == "default"), None)
    if box is None:
        for source in ("filesystem", "resources"):
            _status(out, source, "absent", "no container evidence was recorded")
    elif not box.collected:
        why = "the container could not be read" + (f": {box.error}" if box.error else "")
        for source in ("filesystem", "resources"):
            _status(out, source, "absent", why)
    elif not box.running:
        why = "the sandbox was not running at sample end: its counters and diff may be incomplete"
        for source in ("filesystem", "resources"):
            _status(out, source, "partial", why)
    else:
        n = len(box.changes_outside_writable)
        _status(out, "filesystem", "checked", f"{n} change(s) outside the writable paths")
        _status(out, "resources", "checked")
    if not any(r.role == "proxy" for r in conf):
        _status(out, "proxy", "not-applicable", "the policy has no egress proxy")
    elif not proxies:
        _status(out, "proxy", "absent", "the policy has an egress proxy; no proxy log recorded")
    else:
        p = proxies[-1]
        problems = _proxy_problems(p)
        detail = f"{len(p.requests)} request(s)" + (f"; {', '.join(problems)}" if problems else "")
        _status(out, "proxy", "partial" if problems else "checked", detail)
    _sidecars(out, conf, boxes)


def _proxy_problems(p: ProxyLog) -> list[str]:
    problems = []
    if p.truncated:
        problems.append(f"truncated ({p.dropped} line(s) dropped)")
    if p.missing:
        problems.append(f"{p.missing} line(s) lost")
    if p.rejected:
        problems.append(f"{p.rejected} line(s) rejected")
    return problems


def _sidecars(
    out: list[SourceCoverage], conf: Iterable[ConformanceRecord], boxes: list[ContainerEvidence]
) -> None:
    expected = sorted({r.role for r in conf if r.role.startswith("service:") or r.role == "proxy"})
    if not expected:
        _status(out, "sidecars", "not-applicable", "the sample had no sidecars")
        return
    have = {r.role for r in boxes if r.collected}
    missing = [role for role in expected if role not in have]
    if not missing:
        _status(out, "sidecars", "checked", ", ".join(expected))
    elif len(missing) == len(expected):
        _status(out, "sidecars", "absent", "no evidence of " + ", ".join(missing))
    else:
        _status(out, "sidecars", "partial", "no evidence of " + ", ".join(missing))


def summary(cov: Coverage | None) -> str:
    """One line for people: what was checked and what was not."""
    if cov is None:
        return "evidence coverage not recorded"
    if cov.sandbox == "none":
        return "no sandbox: the transcript is the whole record (checked)"
    if cov.complete:
        return "all evidence checked"
    by_reason: dict[str, list[str]] = {}
    for s in cov.sources:
        if s.status in ("absent", "partial"):
            reason = s.status + (f": {s.detail}" if s.detail else "")
            by_reason.setdefault(reason, []).append(s.source)
    gaps = "; ".join(f"{', '.join(sources)} {reason}" for reason, sources in by_reason.items())
    if cov.backend is not None:
        return f"ABSENT on the {cov.backend} backend: {gaps}"
    if cov.transcript_only:
        return f"transcript only (made without tierlock's sandbox): {gaps}"
    return f"NOT CHECKED: {gaps}"
