"""Reports of an `AuditResult`: a terminal summary (rich), JSON, and a self-contained HTML page."""

from __future__ import annotations

import html
from collections import Counter
from datetime import UTC, datetime
from typing import IO

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from ._findings import CATEGORIES, AuditResult, Finding, LogAudit, SampleAudit, Severity

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
    findings = result.findings()
    if not findings:
        console.print("[green]no findings[/]")
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
    for col in ("log", "sample", "epoch", "tier", "worst", "findings"):
        worst.add_column(col)
    for log, s in _worst_samples(result):
        worst.add_row(
            log.task or log.path,
            str(s.id),
            str(s.epoch),
            s.tier or "-",
            s.worst.value if s.worst else "-",
            str(len(s.findings)),
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


def render_json(result: AuditResult) -> str:
    """The machine-readable report (schema `tierlock.audit/1`)."""
    return result.to_json()


_CSS = """
body{font-family:system-ui,sans-serif;margin:2em;color:#222;max-width:1200px}
h1{font-size:1.5em}h2{font-size:1.2em;border-bottom:1px solid #ccc;margin-top:2em}
code,.mono{font-family:ui-monospace,monospace;font-size:.9em}
table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ccc;padding:.2em .6em;text-align:left}
.err{color:#b00;font-weight:bold}.ok{color:#070}
.sev-low{background:#eef6ff}.sev-medium{background:#fff6d6}.sev-high{background:#ffe1cc}
.sev-critical{background:#ffc9c9}
ol.timeline{list-style:none;padding-left:0}ol.timeline li{padding:.15em .4em;border-left:3px solid #ddd;margin:.1em 0;font-family:ui-monospace,monospace;font-size:.85em;white-space:pre-wrap;word-break:break-all}
ol.timeline li.flag{border-left:6px solid #c00}
.finding{font-family:system-ui,sans-serif;margin:.3em 0 .3em 1.5em}
blockquote{margin:.2em 0 .2em 1em;padding:.2em .6em;border-left:3px solid #999;background:#fafafa;white-space:pre-wrap;word-break:break-all}
details{margin:.4em 0}summary{cursor:pointer}
"""


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def _finding_html(f: Finding) -> str:
    return (
        f'<div class="finding sev-{f.severity.value}" data-rule="{_e(f.rule)}">'
        f"<b>{_e(f.severity.value.upper())}</b> {_e(f.category)} <code>{_e(f.rule)}</code>: "
        f"{_e(f.explanation)}<blockquote>{_e(f.excerpt)}</blockquote></div>"
    )


def _sample_html(s: SampleAudit) -> str:
    by_event: dict[int, list[Finding]] = {}
    for f in s.findings:
        by_event.setdefault(f.event_index if f.event_index is not None else -1, []).append(f)
    worst = s.worst.value if s.worst else "none"
    parts = [
        f'<details class="sample" id="sample-{_e(s.id)}-{s.epoch}"{" open" if s.findings else ""}>'
        f"<summary>sample <b>{_e(s.id)}</b> epoch {s.epoch} · tier {_e(s.tier or '-')} · "
        f'{len(s.findings)} finding(s) · worst <span class="sev-{worst}">{_e(worst)}</span>'
        f"{' · <span class=err>error: ' + _e(s.error) + '</span>' if s.error else ''}</summary>"
    ]
    if s.timeline is not None:
        parts.append('<ol class="timeline">')
        for entry in s.timeline:
            fs = by_event.get(entry.index, [])
            if fs:
                sev = max((f.severity for f in fs), key=lambda x: x.rank).value
                parts.append(
                    f'<li class="flag sev-{sev}" id="ev-{_e(s.id)}-{s.epoch}-{entry.index}">'
                    f"[{entry.index}] {_e(entry.label)}"
                    + "".join(_finding_html(f) for f in fs)
                    + "</li>"
                )
            else:
                parts.append(f"<li>[{entry.index}] {_e(entry.label)}</li>")
        parts.append("</ol>")
    else:
        parts.extend(_finding_html(f) for f in s.findings)
    parts.append("</details>")
    return "".join(parts)


def render_html(result: AuditResult) -> str:
    """A self-contained HTML report (no scripts, no external assets): per log, its SHA-256 and
    summary; per sample, its timeline with flagged events highlighted and their evidence quoted."""
    findings = result.findings()
    out = [
        "<!DOCTYPE html><html lang=en><head><meta charset=utf-8>"
        "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'\">"
        f"<title>tierlock audit</title><style>{_CSS}</style></head><body>",
        f"<h1>tierlock audit</h1><p>{len(result.logs)} log(s), {len(findings)} finding(s); "
        f"generated {_e(datetime.now(UTC).isoformat(timespec='seconds'))}</p>",
    ]
    if findings:
        out.append(
            "<table id=summary><tr><th>tier</th><th>category</th>"
            + "".join(f"<th>{s.value}</th>" for s in SEVERITIES)
            + "<th>total</th></tr>"
        )
        for (tier, cat), c in sorted(_counts(findings).items()):
            out.append(
                f"<tr><td>{_e(tier)}</td><td>{_e(cat)}</td>"
                + "".join(
                    f'<td class="sev-{s.value}">{c.get(s.value, 0) or ""}</td>' for s in SEVERITIES
                )
                + f"<td>{sum(c.values())}</td></tr>"
            )
        out.append("</table>")
    else:
        out.append('<p class="ok" id="summary">No findings.</p>')
    for log in result.logs:
        out.append(f"<section class=log><h2>{_e(log.path)}</h2>")
        out.append(f"<p class=mono>sha256 {_e(log.sha256 or '-')}</p>")
        if log.integrity_ok is False:
            out.append(
                f'<p class="err">SHA-256 mismatch: expected {_e(log.expected_sha256)}; '
                "the log changed since it was recorded.</p>"
            )
        elif log.integrity_ok:
            out.append('<p class="ok">SHA-256 matches the recorded hash.</p>')
        if log.error:
            out.append(f'<p class="err">error: {_e(log.error)}</p>')
        out.append(
            f"<p>task {_e(log.task)} · model {_e(log.model)} · status {_e(log.status)} · "
            f"{len(log.samples)} sample(s)</p>"
        )
        out.extend(_finding_html(f) for f in log.log_findings)
        out.extend(_sample_html(s) for s in log.samples)
        out.append("</section>")
    out.append("</body></html>")
    return "\n".join(out)
