"""`tierlock audit`: audit `.eval` logs and report findings as a table, JSON or HTML."""

from __future__ import annotations

import os
import sqlite3
import stat
import sys
from pathlib import Path

import click
import yaml
from pydantic import ValidationError

from tierlock.sandbox import TierlockError
from tierlock.sandbox._userfile import check_output_path, kind_of, os_reason, read_text, short

from ._audit import (
    DETECTORS,
    AuditResult,
    Severity,
    audit_log,
    load_rules,
    render_html,
    render_json,
    render_table,
    rules_detector,
)

EXIT_FINDINGS = 1
EXIT_UNREADABLE = 3
EXIT_UNCHECKED = 4


def _expand(paths: tuple[str, ...]) -> list[str]:
    """The log files named: files as given, directories searched for `*.eval`. A path that
    cannot be a log (missing, a FIFO, a device, a symlink loop, a name too long) is one line."""
    out: list[str] = []
    for p in paths:
        try:
            mode = os.stat(p).st_mode
        except OSError as e:
            raise TierlockError(f"{short(p)}: cannot read log: {os_reason(e)}") from None
        if stat.S_ISDIR(mode):
            out.extend(_logs_below(p))
        elif (kind := kind_of(mode)) is not None:
            raise TierlockError(f"{short(p)}: cannot read log: it is {kind}, not a file")
        else:
            out.append(p)
    if not out:  # zero logs audited is not "no findings"
        raise TierlockError(f"{', '.join(paths)}: no .eval log found below it; nothing to audit")
    return out


def _logs_below(top: str) -> list[str]:
    """Regular `*.eval` files below `top`, sorted; symlinked directories are not followed."""
    found: list[str] = []

    def fail(e: OSError) -> None:
        raise TierlockError(f"{short(e.filename)}: cannot read directory: {os_reason(e)}")

    for root, dirs, files in os.walk(top, onerror=fail, followlinks=False):
        dirs.sort()
        for name in files:
            path = os.path.join(root, name)
            if name.endswith(".eval") and os.path.isfile(path):
                found.append(path)
    return sorted(found)


def _key(path: str) -> str:
    """The absolute, resolved form of a path (symlink loops left as they are, never raising)."""
    return os.path.realpath(path)


def _ledger_hashes(ledger_path: str) -> dict[str, str]:
    """The SHA-256 the ledger recorded last for each log it cites (by absolute path)."""
    from ._anchor import ledger_key
    from ._ledger import Ledger  # the ledger is read only here
    from ._verify import require_intact

    out: dict[str, str] = {}
    try:
        key = ledger_key(None, Path(ledger_path).parent)  # $TIERLOCK_LEDGER_KEY[_FILE]
        with Ledger(ledger_path, readonly=True, key=key) as ledger:
            warn = lambda m: click.echo(f"tierlock audit: {m}", err=True)  # noqa: E731
            require_intact(ledger, check_logs=False, warn=warn)  # a broken chain: exit 1
            for record in ledger.records():
                for ref in record.logs:
                    out[_key(str(ledger.abs(ref.path)))] = ref.sha256
    except sqlite3.Error as e:
        raise TierlockError(f"{ledger_path}: not a readable tierlock ledger ({e})") from e
    return out


def _expected(pairs: tuple[str, ...]) -> dict[str, str]:
    out: dict[str, str] = {}
    for pair in pairs:
        path, sep, digest = pair.rpartition("=")
        if not sep or not path or len(digest) != 64:
            raise TierlockError(f"--expect {pair}: expected PATH=SHA256 (64 hex digits)")
        out[_key(path)] = digest.lower()
    return out


@click.command("audit")
@click.argument("logs", nargs=-1, required=True, type=click.Path())
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["table", "json", "html"]),
    default="table",
    show_default=True,
    help="Report format.",
)
@click.option(
    "--out",
    type=click.Path(dir_okay=False, writable=True),
    help="Write the report to FILE instead of stdout.",
)
@click.option(
    "--fail-on",
    type=click.Choice(["none", *[s.value for s in Severity]]),
    default="none",
    show_default=True,
    help="Exit 1 when a finding is at or above this severity.",
)
@click.option(
    "--expect",
    multiple=True,
    metavar="PATH=SHA256",
    help="SHA-256 the ledger recorded for a log; a different hash is a critical "
    "integrity finding (repeatable).",
)
@click.option(
    "--ledger",
    "ledger_path",
    type=click.Path(exists=True, dir_okay=False),
    help="tierlock ledger (SQLite): compare each log with the SHA-256 it recorded.",
)
@click.option(
    "--rules",
    "rules_file",
    type=click.Path(exists=True, dir_okay=False),
    help="YAML file of extra rules (see runner/_audit/_rules.py).",
)
@click.option(
    "--require-evidence",
    is_flag=True,
    help="Exit 4 when a sample's evidence was not all checked (e.g. a log made without "
    "tierlock's sandbox): what was not checked is not clean.",
)
@click.option(
    "--replay",
    is_flag=True,
    help="Re-run each sample's recorded bash/python calls, with no model, in a fresh sandbox "
    "under the recorded policy; print every call whose output diverges (exit 2 if any).",
)
def audit_command(
    logs: tuple[str, ...],
    fmt: str,
    out: str | None,
    fail_on: str,
    expect: tuple[str, ...],
    ledger_path: str | None,
    rules_file: str | None,
    require_evidence: bool,
    replay: bool,
) -> None:
    """Audit Inspect logs (.eval files, or directories of them) for containment findings.

    Every finding names its category, severity, sample, the event it cites and a quote of the
    evidence. Each report cites each log's SHA-256. Logs are streamed sample by sample.

    \b
    Exit codes:
      0  every log was audited, no finding at or above --fail-on (default: none)
      1  a finding at or above --fail-on (or a bad option value: one line on stderr)
      2  usage error
      3  a log could not be read (missing, truncated, corrupt, not an Inspect log);
         the other logs are still audited and reported
      4  with --require-evidence: a sample's evidence was not all checked
    With --replay: 0 every call of every sample replayed identically, 2 a call diverges
    (printed with both outputs), 3 a sample could not be replayed (no tierlock policy recorded,
    or the policy changed since the run).
    """
    if replay:
        from ._replay import replay_paths

        lines, diverged, skipped, errors = replay_paths(_expand(logs))
        for line in errors:
            click.echo(line, err=True)
        click.echo("\n".join(lines))
        click.get_current_context().exit(2 if diverged else EXIT_UNREADABLE if skipped else 0)
    detectors = DETECTORS
    if out:
        check_output_path(out, "the report")
    if rules_file:
        try:
            read_text(rules_file, "rules file", max_bytes=1 << 20)  # a file, small, UTF-8
            detectors = (*DETECTORS, rules_detector(load_rules(rules_file)))
        except yaml.MarkedYAMLError as e:
            mark = e.problem_mark
            where = f"{short(rules_file)}:{mark.line + 1}:{mark.column + 1}" if mark else rules_file
            raise TierlockError(f"{where}: invalid rules file: YAML {e.problem}") from None
        except (ValueError, ValidationError, OSError, yaml.YAMLError) as e:
            first = " ".join(str(e).split())[:300]
            raise TierlockError(f"{short(rules_file)}: invalid rules file ({first})") from None
    expected = _ledger_hashes(ledger_path) if ledger_path else {}
    expected.update(_expected(expect))
    result = AuditResult(
        logs=[
            audit_log(p, expected.get(_key(p)), detectors=detectors, timeline=fmt == "html")
            for p in _expand(logs)
        ]
    )
    for log in result.errors:  # one line each on stderr, whatever the format
        click.echo(f"tierlock audit: {short(log.path)}: {log.error}", err=True)
    try:
        _write_report(result, fmt, out)
    except OSError as e:
        raise TierlockError(
            f"{short(out or '-')}: cannot write the report: {os_reason(e)}"
        ) from None
    if out:
        click.echo(f"tierlock audit: wrote {out} ({len(result.findings())} findings)", err=True)
    code = 0
    worst = result.worst()
    if result.errors:
        code = EXIT_UNREADABLE
    elif fail_on != "none" and worst is not None and worst.at_least(fail_on):
        code = EXIT_FINDINGS
    elif require_evidence and (unchecked := _unchecked(result)):
        click.echo(
            f"tierlock audit: {unchecked} sample(s) not fully checked (see evidence coverage)",
            err=True,
        )
        code = EXIT_UNCHECKED
    click.get_current_context().exit(code)


def _unchecked(result: AuditResult) -> int:
    """How many samples' evidence was not all checked."""
    return sum(
        1
        for log in result.logs
        for s in log.samples
        if s.coverage is None or not s.coverage.complete
    )


def _write_report(result: AuditResult, fmt: str, out: str | None) -> None:
    if fmt == "table":
        if out:
            with open(out, "w", encoding="utf-8") as f:
                render_table(result, file=f)
        else:
            render_table(result)
    else:
        text = render_json(result) if fmt == "json" else render_html(result)
        if out:
            Path(out).write_text(text, encoding="utf-8")
        else:
            sys.stdout.write(text + "\n")
