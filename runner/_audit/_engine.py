"""The audit itself: observations through the detector pipeline, per sample and per log."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from tierlock.sandbox._evidence import ContainerEvidence

from ._context import SampleContext
from ._coverage import EvidenceSeen, coverage, sandbox_type
from ._detectors import DETECTORS, Detector, Hit
from ._findings import (
    AuditResult,
    Finding,
    LogAudit,
    SampleAudit,
    Severity,
    TimelineEntry,
    clean_json,
)
from ._observe import Obs, Resolver, harness_events, never_ran, observe, timeline_label
from ._reader import LogReader, LogReadError

MAX_TIMELINE = 5000


def audit_events(
    events: Sequence[Mapping[str, Any]],
    *,
    sample_metadata: Mapping[str, Any] | None = None,
    task_metadata: Mapping[str, Any] | None = None,
    attachments: Mapping[str, str] | None = None,
    sample_id: str | int = "?",
    epoch: int = 1,
    log_path: str | None = None,
    detectors: Iterable[Detector] = DETECTORS,
    timeline: bool = False,
    sandbox: str | None = None,
) -> SampleAudit:
    """Audit one sample's events (raw JSON dicts) against what its metadata declares.

    `sandbox` is the sandbox type the log declares for the sample (`tierlock`, `local`...;
    None when it declares none): with the evidence records found, it decides the sample's
    `coverage`, which says what could be checked."""
    ctx = SampleContext.of(
        sample_metadata, task_metadata, sample_id=sample_id, epoch=epoch, log=log_path
    )
    pipeline = tuple(detectors)
    findings: list[Finding] = []
    seen: set[tuple[str, int]] = set()
    ev_list = list(events)
    evidence = EvidenceSeen(
        sandbox_events=any(isinstance(e, Mapping) and e.get("event") == "sandbox" for e in ev_list)
    )
    for obs in observe(ev_list, attachments):
        if obs.kind == "evidence":
            evidence.add(obs.record)
            if isinstance(obs.record, ContainerEvidence) and not obs.record.collected:
                continue  # nothing was read: an empty diff here is not evidence of anything
        for detect in pipeline:
            for hit in detect(obs, ctx):
                key = (hit.rule, obs.index)
                if key in seen:
                    continue
                seen.add(key)
                findings.append(_finding(hit, obs, ctx, log_path))
    audit = SampleAudit(
        id=sample_id,
        epoch=epoch,
        tier=ctx.tier,
        events=len(ev_list),
        coverage=coverage(evidence, sandbox),
        findings=findings,
    )
    if timeline:
        audit.timeline = _timeline(ev_list, attachments, findings)
        audit.records = [clean_json(r.model_dump(mode="json")) for r in evidence.records]
    return audit


def _finding(hit: Hit, obs: Obs, ctx: SampleContext, log_path: str | None) -> Finding:
    explanation, severity = hit.explanation, hit.severity
    if ctx.NO_NETWORK_PHRASE in explanation:  # say which tier, or that there is none
        explanation = explanation.replace(ctx.NO_NETWORK_PHRASE, ctx.no_network_reason)
    if not obs.ran and obs.kind == "call":
        why = never_ran(obs.data) or "it did not execute"
        explanation += f" (attempted only: the call never ran, {why})"
        severity = Severity.LOW
    return Finding(
        rule=hit.rule,
        category=hit.category,
        severity=severity,
        explanation=explanation,
        excerpt=hit.excerpt,
        log=log_path,
        sample_id=ctx.sample_id,
        epoch=ctx.epoch,
        tier=ctx.tier,
        event_index=obs.index,
        event_uuid=obs.uuid,
        event=obs.event,
    )


def _timeline(
    events: Sequence[Mapping[str, Any]],
    attachments: Mapping[str, str] | None,
    findings: list[Finding],
) -> list[TimelineEntry]:
    r = Resolver(attachments)
    harness = harness_events(events)
    flagged: dict[int, list[str]] = {}
    for f in findings:
        if f.event_index is not None:
            flagged.setdefault(f.event_index, []).append(f.rule)
    out: list[TimelineEntry] = []
    for i, ev in enumerate(events):
        label = timeline_label(ev, r)
        if label is None:
            continue
        if len(out) >= MAX_TIMELINE and i not in flagged:
            continue
        out.append(
            TimelineEntry(
                index=i,
                event=str(ev.get("event")),
                label=label,
                rules=flagged.get(i, []),
                harness=i in harness,
            )
        )
    return out


def audit_sample(
    sample: Mapping[str, Any],
    task_metadata: Mapping[str, Any] | None = None,
    **kw: Any,
) -> SampleAudit:
    """Audit one sample as stored in a log (a raw `EvalSample` dict). `sandbox` (keyword) is
    the task's sandbox type; the sample's own sandbox spec, when it has one, wins."""
    own = sandbox_type(sample.get("sandbox"))
    if own is not None:
        kw["sandbox"] = own
    audit = audit_events(
        sample.get("events") or [],
        sample_metadata=sample.get("metadata"),
        task_metadata=task_metadata,
        attachments=sample.get("attachments"),
        sample_id=sample.get("id", "?"),
        epoch=int(sample.get("epoch") or 1),
        **kw,
    )
    err = sample.get("error")
    if isinstance(err, dict) and err.get("message"):
        audit.error = str(err["message"]).splitlines()[0][:500]
    if kw.get("timeline"):
        r = Resolver(sample.get("attachments"))
        audit.prompt = _cap(r.text(sample.get("input")))
        output = sample.get("output")
        answer = ""
        if isinstance(output, Mapping):
            answer = r.text(output.get("completion")) or r.text(
                [
                    ((c or {}).get("message") or {}).get("content")
                    for c in output.get("choices") or []
                ]
            )
        audit.answer = _cap(answer)
    return audit


MAX_TEXT = 20_000
"""Characters of a prompt or answer kept for the HTML report."""


def _cap(text: str) -> str:
    return text if len(text) <= MAX_TEXT else text[:MAX_TEXT] + f"… [{len(text) - MAX_TEXT} more]"


def audit_log(
    path: str | Path,
    expected_sha256: str | None = None,
    *,
    detectors: Iterable[Detector] = DETECTORS,
    timeline: bool = False,
) -> LogAudit:
    """Audit one log file, streaming it sample by sample. Never raises for a bad file: the
    returned `LogAudit` has `error` set (one line) and whatever samples could be read."""
    result = LogAudit(path=str(path), expected_sha256=expected_sha256)
    pipeline = tuple(detectors)
    try:
        with LogReader(path) as reader:
            result.sha256 = reader.sha256
            ev = reader.header.get("eval") or {}
            result.task = ev.get("task")
            result.model = ev.get("model")
            result.status = reader.header.get("status")
            task_metadata = ev.get("metadata") if isinstance(ev.get("metadata"), dict) else None
            sandbox = sandbox_type(ev.get("sandbox"))
            problems: list[str] = []
            for name, sample in reader.samples():
                if isinstance(sample, LogReadError):
                    problems.append(str(sample))
                    continue
                try:
                    result.samples.append(
                        audit_sample(
                            sample,
                            task_metadata,
                            log_path=str(path),
                            detectors=pipeline,
                            timeline=timeline,
                            sandbox=sandbox,
                        )
                    )
                except Exception as e:  # a malformed sample must not hide the others
                    problems.append(f"{name}: cannot audit ({type(e).__name__}: {e})")
            if problems:
                more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
                result.error = problems[0].splitlines()[0] + more
    except LogReadError as e:
        result.error = str(e)
    except (OSError, ValueError, KeyError, TypeError) as e:
        result.error = f"unreadable log ({type(e).__name__}: {e})"
    if result.error is not None:  # fail closed: what cannot be audited cannot be called clean
        result.log_findings.append(
            Finding(
                rule="integrity.unreadable",
                category="integrity",
                severity=Severity.CRITICAL,
                explanation=f"the log could not be (fully) audited: {result.error}",
                log=str(path),
            )
        )
    if expected_sha256 is not None and result.sha256 is not None and not result.integrity_ok:
        result.log_findings.append(
            Finding(
                rule="integrity.sha256",
                category="integrity",
                severity=Severity.CRITICAL,
                explanation="the log changed since it was recorded (SHA-256 differs)",
                excerpt=f"expected {expected_sha256}, found {result.sha256}",
                log=str(path),
            )
        )
    return result


def audit_logs(
    paths: Iterable[str | Path],
    expected: Mapping[str, str] | None = None,
    **kw: Any,
) -> AuditResult:
    """Audit several logs; `expected` maps a path to the SHA-256 the ledger recorded for it."""
    expected = expected or {}
    logs = []
    for p in paths:
        exp = expected.get(str(p)) or expected.get(str(Path(p).resolve()))
        logs.append(audit_log(p, exp, **kw))
    return AuditResult(logs=logs)
