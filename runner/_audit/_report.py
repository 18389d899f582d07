"""Reports of an `AuditResult`: a terminal summary (rich) and JSON; the HTML page is `_html`.

Each states per sample which evidence was checked (`SampleAudit.coverage`): a sample whose
evidence is missing is reported as NOT CHECKED, never as "no findings".
"""

from __future__ import annotations

from collections import Counter
from typing import IO

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from ._coverage import summary as coverage_summary
from ._findings import CATEGORIES, AuditResult, Finding, LogAudit, SampleAudit, Severity
from ._html import render_html

__all__ = ["render_html", "render_json", "render_table"]

SEVERITIES = tuple(Severity)
MAX_TABLE_FINDINGS = 50


def _worst_samples(result: AuditResult, n: int = 10) -> list[tuple[LogAudit, SampleAudit]]:
    rows = [(log, s) for log in result.logs for s in log.samples if s.findings]
    rows.sort(key=lambda r: (-(r[1].worst.rank if r[1].worst else -1), -len(r[1].findings)))
    return rows[:n]


def _counts(findings: list[Finding]) -> dict[tuple[str, str], Counter[str]]:
    out: dict[tuple[str, str], Counter[str]] = {}
    for f in findings:
        out.setdefault((f.tier or "-", f.category), Counter())[f.severity.value] += 1
    return out


def render_table(
    result: AuditResult, file: IO[str] | None = None, width: int | None = None
) -> None:
    """The terminal summary: logs (with SHA-256), findings by tier/category/severity, worst
    samples, then the findings themselves (worst first)."""
    console = Console(file=file, width=width or (None if file is None else 160), highlight=False)
    for log in result.logs:
        if log.error:
            console.print("[bold red]error[/] " + escape(f"{log.path}: {log.error}"))
            if not log.samples:
                continue
        integrity = {
            True: " [green]sha256 matches the ledger[/]",
            False: " [bold red]SHA-256 MISMATCH: the log changed[/]",
            None: "",
        }[log.integrity_ok]
        n = len(log.findings)
        console.print(
            f"[bold]{escape(log.path)}[/]  sha256 {log.sha256}{integrity}\n"
            + escape(f"  task {log.task}  model {log.model}  status {log.status}  ")
            + f"samples {len(log.samples)}  findings {n}"
        )
        _coverage_lines(console, log)
    findings = result.findings()
    unchecked = sum(1 for log in result.logs for s in log.samples if not _complete(s))
    if not findings:
        if unchecked:
            console.print(
                f"[bold yellow]no findings in what was checked; {unchecked} sample(s) NOT fully "
                "checked (see evidence coverage above): not clean[/]"
            )
        else:
            console.print("[green]no findings[/] (all evidence checked)")
        return
    table = Table(title="Findings by tier, category and severity")
    table.add_column("tier")
    table.add_column("category")
    for sev in SEVERITIES:
        table.add_column(sev.value, justify="right")
    table.add_column("total", justify="right")
    counts = _counts(findings)
    for (tier, cat), c in sorted(
        counts.items(), key=lambda kv: (kv[0][0], CATEGORIES.index(kv[0][1]))
    ):
        table.add_row(
            tier, cat, *[str(c.get(s.value, 0) or "") for s in SEVERITIES], str(sum(c.values()))
        )
    console.print(table)
    worst = Table(title="Worst samples")
    for col in ("log", "sample", "epoch", "tier", "worst", "findings", "evidence"):
        worst.add_column(col)
    for log, s in _worst_samples(result):
        worst.add_row(
            log.task or log.path,
            str(s.id),
            str(s.epoch),
            s.tier or "-",
            s.worst.value if s.worst else "-",
            str(len(s.findings)),
            "checked" if _complete(s) else "NOT all checked",
        )
    console.print(worst)
    console.rule("Findings (worst first)")
    for f in findings[:MAX_TABLE_FINDINGS]:
        where = (
            f"sample {f.sample_id}/{f.epoch} event {f.event_index}"
            if f.sample_id is not None
            else (f.log or "")
        )
        console.print(
            f"[bold]{f.severity.value.upper()}[/] {f.category} "
            + escape(f"[{f.rule}] {where}: {f.explanation}"),
            highlight=False,
        )
        if f.excerpt:
            console.print(f"    > {f.excerpt}", markup=False, highlight=False)
    if len(findings) > MAX_TABLE_FINDINGS:
        console.print(f"… {len(findings) - MAX_TABLE_FINDINGS} more findings (use --format json)")


def _complete(s: SampleAudit) -> bool:
    return s.coverage is not None and s.coverage.complete


MAX_COVERAGE_LINES = 20


def _coverage_lines(console: Console, log: LogAudit) -> None:
    """Evidence coverage: one line for the samples that were fully checked, one per sample that
    was not (what was not checked, and why)."""
    done = [s for s in log.samples if _complete(s)]
    short = [s for s in log.samples if not _complete(s)]
    if done:
        kinds = sorted({s.coverage.sandbox for s in done if s.coverage})
        console.print(
            f"  [green]evidence checked[/] for {len(done)} sample(s) "
            + escape(f"(sandbox: {', '.join(kinds)})")
        )
    for s in short[:MAX_COVERAGE_LINES]:
        console.print(
            f"  [bold yellow]NOT CHECKED[/] sample {escape(str(s.id))}/{s.epoch}: "
            + escape(coverage_summary(s.coverage)),
            highlight=False,
        )
        if s.coverage and s.coverage.not_checked:
            console.print(
                "    checks not run: " + escape("; ".join(s.coverage.not_checked)), highlight=False
            )
    if len(short) > MAX_COVERAGE_LINES:
        console.print(f"  … {len(short) - MAX_COVERAGE_LINES} more samples not fully checked")


def render_json(result: AuditResult) -> str:
    """The machine-readable report (schema `tierlock.audit/1`)."""
    return result.to_json()
