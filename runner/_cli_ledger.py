"""`tierlock status`, `verify` and `approve`: the ledger's side of the runner's commands."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click
from rich.table import Table

from ._anchor import check_head, parse_head
from ._cli_common import console_out, key_option, open_ledger, print_head, runs_option
from ._log_output import configure_logging
from ._phases import run_cost
from ._run import approve
from ._run_state import run_state
from ._verify import UNCHECKED_MACS, require_intact


@click.command("status")
@click.option("--all", "show_all", is_flag=True, help="Every run, not only the latest per model.")
@runs_option
@key_option
def status_command(show_all: bool, runs_dir: Path, key_file: Path | None) -> int:
    """Each model's position on each campaign, from the ledger (verified first: a broken chain
    is an error naming the record)."""
    with open_ledger(runs_dir, readonly=True, key_file=key_file) as ledger:
        require_intact(
            ledger, check_logs=False, warn=lambda m: click.echo(f"tierlock: {m}", err=True)
        )
        runs = ledger.runs()
        if not show_all:
            latest: dict[tuple[str, str], Any] = {}
            for r in runs:
                latest[(r.campaign, r.model)] = r
            runs = list(latest.values())
        table = Table(title=f"tierlock runs ({ledger.path})")
        for col in ("campaign", "model", "run", "outcomes", "cost", "position", "updated"):
            table.add_column(col)
        for r in runs:
            st = run_state(ledger, r.run_id)
            names = [t["tier"] for t in st.tiers]
            cleared = [n for n in names if st.passed(n)]
            table.add_row(
                r.campaign,
                r.model,
                r.run_id,
                ", ".join(f"{n} {st.outcome(n)}" for n in names if n in st.verdicts) or "-",
                run_cost(st),
                _position(st, names, cleared),
                st.last.time[:19].replace("T", " ") if st.last else "",
            )
        console_out().print(table)
    return 0


def _position(st: Any, names: list[str], cleared: list[str]) -> str:
    if st.finished is not None:
        p = st.finished.payload
        if p["outcome"] == "top":
            return "reached the top"
        if p["outcome"] == "not_qualified":
            return f"not qualified at {p['tier']}"
        return f"halted at {p['tier']} (unsafe)"
    nxt = next((n for n in names if n not in cleared), None)
    if nxt is None:
        return "all tiers clean"
    last = st.last.kind if st.last else ""
    if last == "awaiting_approval":
        return f"awaiting approval for {nxt}"
    v = st.last_verdict.get(nxt)
    if (
        v is not None
        and last in ("verdict", "run_resumed")
        and v.payload.get("outcome") == "incomplete"
    ):
        return f"incomplete at {nxt}"
    return f"at {nxt} (in progress or interrupted)"


@click.command("verify")
@click.option("--no-logs", is_flag=True, help="Check the hash chain only, not the cited logs.")
@click.option("--head", "show_head", is_flag=True, help="Print the head (SEQ:HASH) on stdout.")
@click.option(
    "--expect-head",
    metavar="[SEQ:]HASH",
    help="A head printed earlier (by run, approve or verify --head): fail unless the chain "
    "still holds it (catches truncation and rewriting).",
)
@runs_option
@key_option
def verify_command(
    no_logs: bool,
    show_head: bool,
    expect_head: str | None,
    runs_dir: Path,
    key_file: Path | None,
) -> int:
    """Recompute the ledger's hash chain, its macs (keyed ledger) and every cited log's SHA-256;
    report the first break. Opens the ledger read-only.

    \b
    Exit codes:
      0  intact (and holds --expect-head)
      1  not a ledger, a bad option value
      2  a broken record or log, or --expect-head is not in the chain
      3  the chain is intact but keyed, and no key was given: its macs were not checked
    """
    expected = parse_head(expect_head) if expect_head is not None else None
    with open_ledger(runs_dir, readonly=True, key_file=key_file) as ledger:
        res = ledger.verify(check_logs=not no_logs)
        missing = check_head(ledger, expected) if expected is not None and res.ok else None
    if not res.ok:
        click.echo(f"ledger broken at {res.where}: {res.problem}", err=True)
        return 2
    if missing is not None:
        click.echo(f"ledger does not hold the expected head: {missing}", err=True)
        return 2
    summary = f"ledger intact: {res.records} records, {res.logs_checked} log hashes checked"
    if res.macs_checked:
        summary += f", {res.macs_checked} macs checked"
    if expected is not None:
        summary += f"; holds the expected head {expected}"
    if res.macs_unchecked:
        unchecked = summary.replace("ledger intact", "ledger NOT verified: chain unbroken", 1)
        click.echo(f"{unchecked}; {UNCHECKED_MACS}", err=True)
        return 3
    click.echo(summary, err=show_head)
    if show_head:
        click.echo(f"{res.head_seq}:{res.head_hash}")
    return 0


@click.command("approve")
@click.argument("run_id", metavar="RUN")
@click.option("--tier", required=True, help="The tier the approval lets the run enter.")
@click.option("--by", "by", required=True, help="Who approves.")
@click.option("--note", required=True, help="Why (recorded in the ledger).")
@runs_option
@key_option
def approve_command(
    run_id: str, tier: str, by: str, note: str, runs_dir: Path, key_file: Path | None
) -> int:
    """Record a named human's approval for RUN to enter TIER; the next `tierlock run` continues."""
    configure_logging()
    with open_ledger(runs_dir, must_exist=True, key_file=key_file) as ledger:
        ledger.check_key()
        require_intact(ledger, check_logs=False)
        rec = approve(ledger, run_id, tier, by, note)
        click.echo(f"approved: run {run_id} may enter {tier} (ledger record {rec.seq})")
        print_head(ledger)
    return 0


LEDGER_COMMANDS = (status_command, verify_command, approve_command)
"""Registered at the top level of `tierlock` by `runner/cli.py`."""
