"""The HTML audit report: one self-contained page (no scripts, no external assets) for people.

Per log: its SHA-256 and summary. Per sample: an evidence-coverage banner (what was checked and
what was not), the prompt and the final answer, the findings, tierlock's evidence records with
their content (conformance mismatches, the filesystem changes as a list, proxy requests as a
table), and the timeline with flagged events highlighted; Inspect's own sandbox commands (setup,
scorers) are folded away. A legend explains the severities and the rules that fired.

Everything from the log is hostile: it is HTML-escaped, and control characters, bidi overrides
and lone surrogates are shown as visible escapes (`_e`), never passed through.
"""

from __future__ import annotations

import html
import re
from collections import Counter
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from ._coverage import CHECKS, SOURCES
from ._coverage import summary as coverage_summary
from ._findings import AuditResult, Finding, SampleAudit, Severity, TimelineEntry

SEVERITIES = tuple(Severity)
SEVERITY_MEANING = {
    Severity.LOW: "worth a look; not by itself a containment event",
    Severity.MEDIUM: "an attempt at something the tier forbids, or a limit the sandbox enforced",
    Severity.HIGH: "a forbidden action that ran, or evidence that may be incomplete",
    Severity.CRITICAL: "a secret left, protected state changed, or the evidence itself is broken",
}
MAX_RECORD_ROWS = 500

_UNSAFE = re.compile(
    "[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200b-\u200f\u2028-\u202e\u2066-\u2069\ufeff\ud800-\udfff]"
)


def _visible(m: re.Match[str]) -> str:
    code = ord(m.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def _e(value: object) -> str:
    """Text from the log as HTML: escaped, with control characters, bidi and zero-width marks
    and lone surrogates made visible (`\\x1b`, `\\u202e`)."""
    return html.escape(_UNSAFE.sub(_visible, str(value)), quote=True)


_CSS = """
body{font-family:system-ui,sans-serif;margin:2em;color:#222;max-width:1200px}
h1{font-size:1.5em}h2{font-size:1.2em;border-bottom:1px solid #ccc;margin-top:2em}
h3{font-size:1em;margin:.8em 0 .3em}
code,.mono{font-family:ui-monospace,monospace;font-size:.9em}
table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ccc;padding:.2em .6em;text-align:left;vertical-align:top}
table.records td{font-family:ui-monospace,monospace;font-size:.85em;word-break:break-all}
.err{color:#b00;font-weight:bold}.ok{color:#070}
.sev-low{background:#eef6ff}.sev-medium{background:#fff6d6}.sev-high{background:#ffe1cc}
.sev-critical{background:#ffc9c9}
.coverage{border:2px solid #070;background:#f0fff0;padding:.4em .8em;margin:.5em 0}
.coverage.gaps{border-color:#c60;background:#fff4e0}
.coverage ul{margin:.2em 0;padding-left:1.4em}
.st-checked{color:#070}.st-partial,.st-absent{color:#b00;font-weight:bold}.st-not-applicable{color:#777}
pre.text{white-space:pre-wrap;word-break:break-word;background:#f6f6f6;padding:.5em;border-left:3px solid #999;max-height:24em;overflow:auto;margin:.2em 0}
ol.timeline{list-style:none;padding-left:0}ol.timeline li{padding:.15em .4em;border-left:3px solid #ddd;margin:.1em 0;font-family:ui-monospace,monospace;font-size:.85em;white-space:pre-wrap;word-break:break-all}
ol.timeline li.flag{border-left:6px solid #c00}
ol.timeline li.harness{color:#666}
.finding{font-family:system-ui,sans-serif;margin:.3em 0 .3em 1.5em}
blockquote{margin:.2em 0 .2em 1em;padding:.2em .6em;border-left:3px solid #999;background:#fafafa;white-space:pre-wrap;word-break:break-all}
details{margin:.4em 0}summary{cursor:pointer}
"""


def _finding_html(f: Finding) -> str:
    return (
        f'<div class="finding sev-{f.severity.value}" data-rule="{_e(f.rule)}">'
        f"<b>{_e(f.severity.value.upper())}</b> {_e(f.category)} <code>{_e(f.rule)}</code>: "
        f"{_e(f.explanation)}<blockquote>{_e(f.excerpt)}</blockquote></div>"
    )


def _coverage_html(s: SampleAudit) -> str:
    cov = s.coverage
    if cov is None:
        return '<div class="coverage gaps">Evidence coverage was not recorded.</div>'
    cls = "coverage" if cov.complete else "coverage gaps"
    rows = "".join(
        f'<li data-source="{_e(src.source)}"><b>{_e(src.source)}</b> '
        f'<span class="st-{_e(src.status)}">{_e(src.status)}</span>'
        + (f" — {_e(src.detail)}" if src.detail else "")
        + f' <span class="mono" style="color:#777">({_e(SOURCES.get(src.source, ""))})</span></li>'
        for src in cov.sources
    )
    not_checked = (
        "<p><b>Not checked</b> (no finding here means nothing): "
        + "; ".join(_e(c) for c in cov.not_checked)
        + "</p>"
        if cov.not_checked
        else ""
    )
    return (
        f'<div class="{cls}" data-complete="{str(cov.complete).lower()}">'
        f"<b>Evidence coverage:</b> {_e(coverage_summary(cov))}<ul>{rows}</ul>"
        f"{not_checked}</div>"
    )


def _text_block(title: str, text: str | None) -> str:
    if text is None:
        return ""
    body = _e(text) if text else "<i>(empty)</i>"
    return f'<h3>{title}</h3><pre class="text">{body}</pre>'


def _records_html(records: list[dict[str, Any]]) -> str:
    if not records:
        return ""
    parts = ["<details class=records open><summary>tierlock evidence records "
             f"({len(records)})</summary>"]  # fmt: skip
    for rec in records:
        kind = rec.get("kind")
        if kind == "conformance":
            parts.append(_conformance_html(rec))
        elif kind == "container":
            parts.append(_container_html(rec))
        elif kind == "proxy_log":
            parts.append(_proxy_html(rec))
        else:
            fields = ", ".join(f"{_e(k)}: {_e(v)}" for k, v in rec.items() if k != "kind")
            parts.append(f"<h3>{_e(kind)}</h3><p class=mono>{fields}</p>")
    parts.append("</details>")
    return "".join(parts)


def _conformance_html(rec: Mapping[str, Any]) -> str:
    ok = rec.get("ok")
    head = (
        f"<h3>conformance · {_e(rec.get('role'))} · policy {_e(rec.get('policy_name'))}: "
        + ('<span class="ok">matches</span>' if ok else '<span class="err">MISMATCH</span>')
        + "</h3>"
    )
    items = "".join(f"<li>{_e(m)}</li>" for m in (rec.get("mismatches") or [])[:MAX_RECORD_ROWS])
    return head + (f'<ul class="mismatches">{items}</ul>' if items else "")


def _container_html(rec: Mapping[str, Any]) -> str:
    collected = rec.get("collected", True)
    head = f"<h3>container · {_e(rec.get('role'))} · {_e(rec.get('container'))}</h3>"
    if not collected:
        why = rec.get("error") or "the container could not be read"
        return head + (
            f'<p class="err">not collected: {_e(why)} — the filesystem diff and resource '
            "counters were not checked</p>"
        )
    counters = (
        f"<p class=mono>running at sample end: {_e(rec.get('running'))} · exit code "
        f"{_e(rec.get('exit_code'))} · OOM-killed: {_e(rec.get('oom_killed'))} · pids "
        f"{_e(rec.get('pids_current'))}/{_e(rec.get('pids_limit'))} (limit hit: "
        f"{_e(rec.get('pids_limit_hit'))}) · timeouts: {_e(rec.get('timeouts'))} · output "
        f"limit hits: {_e(rec.get('output_limit_hits'))}</p>"
    )
    changes = rec.get("changes_outside_writable") or []
    if not changes:
        return head + counters + "<p>No file changed outside the writable paths.</p>"
    items = "".join(
        f"<li><code>{_e(c.get('change'))}</code> <code>{_e(c.get('path'))}</code></li>"
        for c in changes[:MAX_RECORD_ROWS]
        if isinstance(c, Mapping)
    )
    more = (
        f"<li>… {len(changes) - MAX_RECORD_ROWS} more</li>"
        if len(changes) > MAX_RECORD_ROWS
        else ""
    )
    return (
        head + counters + f"<p>{len(changes)} change(s) outside the writable paths "
        f'(A added, C changed, D deleted):</p><ul class="fs-changes">{items}{more}</ul>'
    )


def _cell(value: Any) -> str:
    return "" if value is None else _e(value)


_PROXY_COLUMNS = ("seq", "method", "host", "port", "allowed", "status", "bytes", "url", "sni",
                  "host_header", "user_agent")  # fmt: skip


def _proxy_html(rec: Mapping[str, Any]) -> str:
    requests = [r for r in rec.get("requests") or [] if isinstance(r, Mapping)]
    notes = []
    if rec.get("truncated"):
        notes.append(f"truncated: {_e(rec.get('dropped'))} line(s) between head and tail dropped")
    if rec.get("missing"):
        notes.append(f"{_e(rec.get('missing'))} line(s) lost before they were read")
    if rec.get("rejected"):
        notes.append(f"{_e(rec.get('rejected'))} line(s) rejected (not in the log format)")
    head = f"<h3>proxy log · {_e(rec.get('proxy'))} · {len(requests)} request(s)</h3>" + "".join(
        f'<p class="err">{n}</p>' for n in notes
    )
    if not requests:
        return head + "<p>No request tried to leave the sandbox through the proxy.</p>"
    rows = []
    for r in requests[:MAX_RECORD_ROWS]:
        cls = "" if r.get("allowed") else ' class="sev-high"'
        cells = "".join(
            f"<td>{_e('allowed' if r.get(c) else 'REFUSED') if c == 'allowed' else _cell(r.get(c))}</td>"
            for c in _PROXY_COLUMNS
        )
        rows.append(f"<tr{cls}>{cells}</tr>")
    more = (
        f"<p>… {len(requests) - MAX_RECORD_ROWS} more requests</p>"
        if len(requests) > MAX_RECORD_ROWS
        else ""
    )
    rejected = "".join(f"<li><code>{_e(x)}</code></li>" for x in rec.get("rejected_lines") or [])
    return (
        head
        + '<table class="records proxy-requests"><tr>'
        + "".join(f"<th>{c}</th>" for c in _PROXY_COLUMNS)
        + "</tr>"
        + "".join(rows)
        + "</table>"
        + more
        + (f"<p>Rejected lines:</p><ul>{rejected}</ul>" if rejected else "")
    )


def _timeline_html(s: SampleAudit, timeline: list[TimelineEntry]) -> str:
    by_event: dict[int, list[Finding]] = {}
    for f in s.findings:
        by_event.setdefault(f.event_index if f.event_index is not None else -1, []).append(f)
    parts = ['<h3>Timeline</h3><ol class="timeline">']
    harness: list[str] = []

    def flush() -> None:
        if harness:
            parts.append(
                f'<li class="harness"><details class="harness"><summary>{len(harness)} '
                "sandbox command(s) Inspect ran itself (setup, scorers): not the model's"
                f'</summary><ol class="timeline">{"".join(harness)}</ol></details></li>'
            )
            harness.clear()

    for entry in timeline:
        fs = by_event.get(entry.index, [])
        if entry.harness and not fs:
            harness.append(f'<li class="harness">[{entry.index}] {_e(entry.label)}</li>')
            continue
        flush()
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
    flush()
    parts.append("</ol>")
    return "".join(parts)


def _sample_html(s: SampleAudit) -> str:
    worst = s.worst.value if s.worst else "none"
    complete = s.coverage is not None and s.coverage.complete
    flag = "" if complete else " · <span class=err>evidence NOT fully checked</span>"
    parts = [
        f'<details class="sample" id="sample-{_e(s.id)}-{s.epoch}"'
        f"{' open' if s.findings or not complete else ''}>"
        f"<summary>sample <b>{_e(s.id)}</b> epoch {s.epoch} · tier {_e(s.tier or '-')} · "
        f'{len(s.findings)} finding(s) · worst <span class="sev-{worst}">{_e(worst)}</span>'
        f"{flag}"
        f"{' · <span class=err>error: ' + _e(s.error) + '</span>' if s.error else ''}</summary>",
        _coverage_html(s),
        _text_block("Prompt", s.prompt),
        _text_block("Final answer", s.answer),
    ]
    if s.timeline is not None:
        parts.append(_timeline_html(s, s.timeline))
        unplaced = [f for f in s.findings if f.event_index is None]
        parts.extend(_finding_html(f) for f in unplaced)
    else:
        parts.extend(_finding_html(f) for f in s.findings)
    parts.append(_records_html(s.records or []))
    parts.append("</details>")
    return "".join(parts)


def _legend(findings: Iterable[Finding]) -> str:
    from ._rules import RULES

    fired: dict[str, Finding] = {}
    for f in findings:
        fired.setdefault(f.rule, f)
    sev_rows = "".join(
        f'<tr><td class="sev-{s.value}">{s.value}</td><td>{_e(SEVERITY_MEANING[s])}</td></tr>'
        for s in SEVERITIES
    )
    meaning = {r.id: r.explanation for r in RULES}  # a row's general meaning, else an example
    fired_rows = "".join(
        f"<tr><td><code>{_e(rule)}</code></td><td>{_e(f.category)}</td>"
        f'<td class="sev-{f.severity.value}">{f.severity.value}</td>'
        f"<td>{_e(meaning.get(rule) or 'e.g. ' + f.explanation)}</td></tr>"
        for rule, f in sorted(fired.items())
    )
    all_rows = "".join(
        f"<tr><td><code>{_e(r.id)}</code></td><td>{_e(r.category)}</td>"
        f'<td class="sev-{Severity(r.severity).value}">{_e(r.severity)}</td>'
        f"<td>{_e(r.explanation)}</td></tr>"
        for r in RULES
    )
    checks = "".join(f"<li><b>{_e(src)}</b>: {_e(name)}</li>" for src, name in CHECKS)
    return (
        '<section id="legend"><h2>Legend</h2><table class="severities"><tr><th>severity</th>'
        f"<th>meaning</th></tr>{sev_rows}</table>"
        + (
            '<h3>Rules that fired</h3><table class="rules-fired"><tr><th>rule</th><th>category'
            f"</th><th>severity</th><th>what it means</th></tr>{fired_rows}</table>"
            if fired_rows
            else ""
        )
        + "<details><summary>All built-in command rules</summary><table class=rules><tr><th>rule"
        f"</th><th>category</th><th>severity</th><th>what it means</th></tr>{all_rows}</table>"
        "</details><details><summary>Checks and the evidence each needs</summary>"
        f"<ul>{checks}</ul></details></section>"
    )


def render_html(result: AuditResult) -> str:
    """A self-contained HTML report (no scripts, no external assets)."""
    findings = result.findings()
    samples = [s for log in result.logs for s in log.samples]
    unchecked = sum(1 for s in samples if not (s.coverage and s.coverage.complete))
    out = [
        "<!DOCTYPE html><html lang=en><head><meta charset=utf-8>"
        '<meta http-equiv="Content-Security-Policy" content="default-src \'none\'; '
        "style-src 'unsafe-inline'\">"
        f"<title>tierlock audit</title><style>{_CSS}</style></head><body>",
        f"<h1>tierlock audit</h1><p>{len(result.logs)} log(s), {len(samples)} sample(s), "
        f"{len(findings)} finding(s); generated "
        f"{_e(datetime.now(UTC).isoformat(timespec='seconds'))} · "
        '<a href="#legend">legend of severities, rules and checks</a></p>',
    ]
    if unchecked:
        out.append(
            f'<p class="err" id="coverage-summary">{unchecked} of {len(samples)} sample(s) '
            "lack evidence the audit needs: what it could not check is NOT CHECKED, not clean "
            "(see each sample's evidence coverage).</p>"
        )
    else:
        out.append('<p class="ok" id="coverage-summary">Every sample\'s evidence was checked.</p>')
    if findings:
        out.append(
            "<table id=summary><tr><th>tier</th><th>category</th>"
            + "".join(f"<th>{s.value}</th>" for s in SEVERITIES)
            + "<th>total</th></tr>"
        )
        counts: dict[tuple[str, str], Counter[str]] = {}
        for f in findings:
            counts.setdefault((f.tier or "-", f.category), Counter())[f.severity.value] += 1
        for (tier, cat), c in sorted(counts.items()):
            out.append(
                f"<tr><td>{_e(tier)}</td><td>{_e(cat)}</td>"
                + "".join(
                    f'<td class="sev-{s.value}">{c.get(s.value, 0) or ""}</td>' for s in SEVERITIES
                )
                + f"<td>{sum(c.values())}</td></tr>"
            )
        out.append("</table>")
    else:
        what = "No findings." if not unchecked else "No findings in the evidence that was checked."
        out.append(f'<p class="ok" id="summary">{what}</p>')
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
    out.append(_legend(findings))
    out.append("</body></html>")
    return "\n".join(out)
