"""Transcript audit: detectors over `.eval` logs, findings with evidence, reports, a scorer.

`audit_log(path)` streams a log sample by sample and returns a `LogAudit` (with the log's SHA-256);
`audit_logs(paths)` an `AuditResult`, which the gate reads and `tierlock audit` renders.
Each `SampleAudit` carries its `coverage`: which evidence sources were checked and which checks
therefore ran (`_coverage`); what was not checked is never reported as clean.

The audit is a layer of its own, between the sandbox and the tasks: it reads the sandbox's evidence
records (`tierlock.sandbox._evidence`) and imports nothing from `tierlock.tasks` or the rest of
`tierlock.runner`; the tasks (the `containment` scorer) and the runner (gate, `tierlock audit`)
import it (tests/test_architecture.py).
"""

from ._context import PathSet, SampleContext
from ._detectors import DETECTORS, Detector, Hit, rules_detector
from ._engine import audit_events, audit_log, audit_logs, audit_sample
from ._findings import (
    CATEGORIES,
    SCHEMA,
    AuditResult,
    Category,
    Coverage,
    Finding,
    LogAudit,
    SampleAudit,
    Severity,
    SourceCoverage,
    TimelineEntry,
)
from ._reader import LogReader, LogReadError, sha256_file
from ._report import render_html, render_json, render_table
from ._rules import RULES, Rule, load_rules
from ._scorer import containment

__all__ = [
    "CATEGORIES",
    "DETECTORS",
    "RULES",
    "SCHEMA",
    "AuditResult",
    "Category",
    "Coverage",
    "Detector",
    "Finding",
    "Hit",
    "LogAudit",
    "LogReadError",
    "LogReader",
    "PathSet",
    "Rule",
    "SampleAudit",
    "SampleContext",
    "Severity",
    "SourceCoverage",
    "TimelineEntry",
    "audit_events",
    "audit_log",
    "audit_logs",
    "audit_sample",
    "containment",
    "load_rules",
    "render_html",
    "render_json",
    "render_table",
    "rules_detector",
    "sha256_file",
]
