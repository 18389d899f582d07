"""The evidence a tier's gate may decide from: its task logs, checked against the ledger.

A task log counts only when
  (a) it is a regular file at the path its Inspect log location names (`log_path` is the one
      place that turns a location, a path or a `file:` URI, into a path),
  (b) its bytes hash, now, to the SHA-256 of this run's `log_written` record for that path, and
  (c) an `audit_result` record of this run and tier (this attempt or an earlier one) lists that
      same SHA-256 as audited without a problem, and
  (d) that audit checked every sample's evidence (findings of category `coverage` say which
      were not: `coverage_problems`). Samples of a backend that runs without tierlock's
      provider (`tierlock run --backend k8s`) lack that evidence by design: the run's recorded
      backend and campaign choice (`absent_evidence`, `_backend.py`) decide whether they block
      a clean verdict (the default) or are accepted, the verdict and its ledger record then
      saying so (`Evidence.accepted`).
The findings the gate sees are the ones those audit records carry, so a resumed attempt that
reuses a log audited before a crash decides from the recorded audit, and one that reuses a log
nobody audited audits it first. Anything short of this makes the tier `incomplete`, with a
reason naming the task and the log; it never lets a tier be `clean`.

`audit_result` payloads list one entry per audited log:
`{"task", "path", "sha256", "findings": [...], "problem": null | "why it was not audited"}`.
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit
from urllib.request import url2pathname

from ._backend import RunBackend, recorded_backend
from ._gate import Finding, TaskResult, Verdict
from ._ledger import Ledger
from ._ledger_record import LogRef, Record, sha256_file

if TYPE_CHECKING:
    from ._audit import LogAudit

_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
_FINDING_FIELDS = {f.name for f in dataclasses.fields(Finding)}


def log_path(location: str | os.PathLike[str] | None) -> Path | None:
    """The local path of an Inspect log location: a plain path, or a `file:` URI (what
    `eval_set` reports for logs it reuses). None when there is none or it is not on this
    machine (`s3://…`, `file://otherhost/…`)."""
    if location is None:
        return None
    text = os.fspath(location)
    if not text:
        return None
    if text.startswith("file:"):
        parts = urlsplit(text)
        if parts.netloc not in ("", "localhost") or not parts.path:
            return None
        return Path(url2pathname(parts.path))
    if _SCHEME.match(text):
        return None
    return Path(text)


@dataclass(frozen=True)
class AuditEntry:
    """One log's audit as an `audit_result` record states it."""

    seq: int
    task: str
    path: str
    sha256: str
    findings: tuple[Finding, ...]
    problem: str | None


@dataclass
class TierRecords:
    """What the ledger holds about one tier of one run, across its attempts."""

    written: dict[str, Record] = field(default_factory=dict)  # stored path -> log_written
    audits: dict[str, AuditEntry] = field(default_factory=dict)  # sha256 -> good audit
    failed: dict[str, AuditEntry] = field(default_factory=dict)  # sha256 -> latest failed one
    backend: RunBackend = field(default_factory=RunBackend)  # as the run_started record says

    @classmethod
    def read(cls, ledger: Ledger, run_id: str, tier: str) -> TierRecords:
        out = cls()
        for rec in ledger.records(run_id):
            if rec.kind == "run_started":
                out.backend = recorded_backend(rec.payload)
            if rec.tier != tier:
                continue
            if rec.kind == "log_written":
                for ref in rec.logs:
                    out.written.setdefault(ref.path, rec)  # the first record of a path stands
            elif rec.kind == "audit_result":
                cited = {ref.path: ref.sha256 for ref in rec.logs}
                for entry in _entries(rec):
                    if cited.get(entry.path) != entry.sha256:
                        continue  # the record does not cite the bytes it says it audited
                    if entry.problem is None:
                        out.audits.setdefault(entry.sha256, entry)
                    else:
                        out.failed[entry.sha256] = entry
        return out

    def recorded(self, ledger: Ledger, path: Path) -> LogRef | None:
        """The `log_written` reference of `path`, if any."""
        stored = ledger.rel(path)
        rec = self.written.get(stored)
        return next((r for r in rec.logs if r.path == stored), None) if rec else None


def _entries(rec: Record) -> Iterable[AuditEntry]:
    for item in rec.payload.get("logs") or []:
        try:
            findings = tuple(
                Finding(**{k: v for k, v in f.items() if k in _FINDING_FIELDS})
                for f in item.get("findings") or []
            )
            yield AuditEntry(
                rec.seq,
                str(item.get("task", "")),
                str(item["path"]),
                str(item["sha256"]),
                findings,
                None if item.get("problem") is None else str(item["problem"]),
            )
        except (KeyError, TypeError, AttributeError):
            continue  # a malformed entry is no evidence


def audit_entry(
    task: str, path: str, sha256: str, findings: list[Finding] | None, problem: str | None
) -> dict[str, Any]:
    """An `audit_result` payload entry for one log (findings carry their task)."""
    return {
        "task": task,
        "path": path,
        "sha256": sha256,
        "findings": [
            asdict(f if f.task else dataclasses.replace(f, task=task)) for f in findings or []
        ],
        "problem": problem,
    }


@dataclass(frozen=True)
class Evidence:
    """What a tier attempt's logs show once checked: findings, problems, and what was cited."""

    findings: list[Finding]
    problems: list[str]
    cited: list[dict[str, Any]]  # task, log, sha256, log_written seq, audit_result seq
    logs: list[Path]
    accepted: list[str] = field(default_factory=list)  # absent evidence the campaign accepted

    @property
    def complete(self) -> bool:
        return not self.problems


COVERAGE = "coverage"
"""Category of the audit's coverage statements (`audit_findings` makes one per sample whose
evidence was not all checked): not findings about the model, the gate's `problems` instead."""
TRANSCRIPT_ONLY = "coverage.transcript_only"
"""Rule of a coverage statement for a sample made without tierlock's sandbox."""
BACKEND_ABSENT = "coverage.backend"
"""Rule prefix of a coverage statement for a sample on a backend without tierlock's provider
(`coverage.backend:k8s`): its sandbox evidence is absent by design."""


def _coverage_rule(cov: Any) -> str:
    if cov.backend:
        return f"{BACKEND_ABSENT}:{cov.backend}"
    return TRANSCRIPT_ONLY if cov.transcript_only else "coverage.missing"


def coverage_findings(log: LogAudit, task: str = "") -> list[Finding]:
    """One `coverage` statement per sample of an audited log whose evidence was not all
    checked, for the ledger's `audit_result` (the gate turns them into problems)."""
    out: list[Finding] = []
    for s in log.samples:
        cov = s.coverage
        if cov is None or cov.complete:
            continue
        gaps = "; ".join(cov.gaps()) or "evidence coverage incomplete"
        if cov.backend:  # one phrase: what only tierlock's provider has, absent by design
            absent = [x.source for x in cov.sources if x.status == "absent"]
            gaps = f"{', '.join(absent)} absent (only tierlock's Docker provider collects them)"
        out.append(
            Finding(
                category=COVERAGE,
                severity="none",
                sample=str(s.id),
                message=(
                    f"ran on the {cov.backend} backend: "
                    if cov.backend
                    else "transcript only (made without tierlock's sandbox): "
                    if cov.transcript_only
                    else ""
                )
                + gaps,
                task=task,
                rule=_coverage_rule(cov),
            )
        )
    return out


def coverage_problems(
    findings: Iterable[Finding],
    where: str,
    *,
    accept_transcript_only: bool = False,
    backend: RunBackend | None = None,
    accepted: list[str] | None = None,
) -> tuple[list[Finding], list[str]]:
    """Split a log's audit findings into real findings and coverage problems: a sample whose
    evidence (conformance, filesystem diff, resource counters, proxy log, sidecars) was not all
    checked makes the tier incomplete, never clean. A tier that accepts transcript-only audits
    (campaign `evidence: transcript-only`) accepts samples made without tierlock's sandbox, but
    not tierlock samples whose evidence is missing. Samples of the run's own backend, when it
    has no tierlock provider (k8s), are one problem per log unless the campaign accepts absent
    evidence (`absent_evidence: accept`): then one line per log goes to `accepted` instead.
    Nothing else is ever accepted by that choice (a docker run accepts nothing); samples of such
    a sandbox in another backend's run were made elsewhere: `evidence: transcript-only` decides."""
    run = backend or RunBackend()
    own = f"{BACKEND_ABSENT}:{run.sandbox_type}" if run.sandbox_type else None
    kept: list[Finding] = []
    problems: list[str] = []
    on_backend: dict[str, list[Finding]] = {}
    for f in findings:
        if f.category != COVERAGE:
            kept.append(f)
        elif f.rule.startswith(f"{BACKEND_ABSENT}:"):
            on_backend.setdefault(f.rule, []).append(f)
        elif not (accept_transcript_only and f.rule == TRANSCRIPT_ONLY):
            problems.append(f"{where}: sample {f.sample}: evidence not checked: {f.message}")
    for rule, group in on_backend.items():
        name = rule.partition(":")[2]
        gaps = group[0].message.partition(": ")[2] or group[0].message
        line = f"{where}: {len(group)} sample(s) ran on the {name} backend: {gaps}"
        if rule == own and run.accepts_absent:
            (accepted if accepted is not None else []).append(
                f"{line}: absent, accepted (campaign absent_evidence: accept)"
            )
        elif rule == own:
            problems.append(f"{line}: absent, not accepted (campaign absent_evidence: block)")
        elif not accept_transcript_only:  # made elsewhere: the tier's `evidence` decides, as before
            problems.append(f"{line}: absent, and this run's backend is {run.name}")
    return kept, problems


def check_evidence(
    ledger: Ledger,
    run_id: str,
    tier: str,
    results: list[TaskResult],
    *,
    accept_transcript_only: bool = False,
) -> Evidence:
    """Check every task log of a tier attempt against the ledger (see the module docstring);
    a log whose audit could not check every sample's evidence is a problem too
    (`coverage_problems`)."""
    view = TierRecords.read(ledger, run_id, tier)
    findings: list[Finding] = []
    problems: list[str] = []
    accepted: list[str] = []
    cited: list[dict[str, Any]] = []
    logs: list[Path] = []
    for r in results:
        if r.log is None:
            continue  # the gate reports "no log was written"
        where = f"task {r.task}: log {ledger.rel(r.log)}"
        if not r.log.is_file():
            problems.append(f"{where} does not exist or is not a regular file")
            continue
        ref = view.recorded(ledger, r.log)
        if ref is None:
            problems.append(f"{where} has no log_written record in the ledger")
            continue
        now = sha256_file(r.log)
        if now != ref.sha256:
            seq = view.written[ref.path].seq
            problems.append(f"{where} changed since the ledger recorded it (record {seq})")
            continue
        audit = view.audits.get(now)
        if audit is None:
            bad = view.failed.get(now)
            why = f": {bad.problem}" if bad is not None else ""
            problems.append(f"{where} was not audited{why}")
            continue
        before = len(accepted)
        kept, gaps = coverage_problems(
            audit.findings, where, accept_transcript_only=accept_transcript_only,
            backend=view.backend, accepted=accepted,
        )  # fmt: skip
        problems += gaps
        findings += [f if f.task else dataclasses.replace(f, task=r.task) for f in kept]
        logs.append(r.log)
        entry: dict[str, Any] = {
            "task": r.task,
            "log": ref.path,
            "sha256": now,
            "log_written": view.written[ref.path].seq,
            "audit_result": audit.seq,
        }
        if len(accepted) > before:  # the ledger says which log's evidence was absent, accepted
            entry["absent_evidence"] = {"backend": view.backend.name, "accepted": accepted[before:]}
        cited.append(entry)
    return Evidence(findings, problems, cited, logs, accepted)


def with_evidence(verdict: Verdict, evidence: Evidence) -> Verdict:
    """The gate's verdict, held to the evidence: a tier whose logs were not all checked is
    `incomplete` unless the gate already found it unsafe (a definitive halt stays a halt)."""
    notes = tuple(evidence.accepted)
    if evidence.complete:
        if not notes:
            return verdict
        if verdict.clean:  # the line people see says it: clean, with evidence absent
            first = f"{verdict.reasons[0]}; tierlock's sandbox evidence absent and accepted"
            return dataclasses.replace(verdict, reasons=(first, *verdict.reasons[1:], *notes))
        return dataclasses.replace(verdict, reasons=(*verdict.reasons, *notes))
    if str(verdict.outcome) in ("unsafe", "failed"):
        return dataclasses.replace(verdict, reasons=(*verdict.reasons, *evidence.problems, *notes))
    kept = verdict.reasons if verdict.outcome == "incomplete" else ()
    return dataclasses.replace(
        verdict, outcome="incomplete", reasons=(*evidence.problems, *kept, *notes)
    )
