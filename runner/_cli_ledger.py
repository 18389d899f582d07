"""`tierlock status`, `verify` and `approve`: the ledger's side of the runner's commands."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import click
from rich.table import Table

from ._aim import Aim
from ._anchor import check_head, parse_head
from ._cli_common import console_out, key_option, open_ledger, print_head, runs_option
from ._cli_resume_line import resume_command_line
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
            latest: dict[tuple[str, str, bool], Any] = {}
            for r in runs:  # aimed (partial) runs apart from the climbs
                latest[(r.campaign, r.model, bool(r.payload.get("aim")))] = r
            runs = list(latest.values())
        rows = []
        for r in runs:
            st = run_state(ledger, r.run_id)
            names = [t["tier"] for t in st.tiers]
            cleared = [n for n in names if st.passed(n)]
            rows.append((
                r.campaign,
                r.model,
                r.run_id,
                ", ".join(f"{n} {st.outcome(n)}" for n in names if n in st.verdicts) or "-",
                run_cost(st),
                _position(st, names, cleared, partial=bool(r.payload.get("aim"))) + _partial(r),
                next_step(st, names, cleared, runs_dir),
                st.last.time[:19].replace("T", " ") if st.last else "",
            ))  # fmt: skip
        _print_runs(ledger.path, rows)
    return 0


_COLUMNS = ("campaign", "model", "run", "outcomes", "cost", "position", "next step", "updated")


def _print_runs(path: Path, rows: Sequence[tuple[str, ...]]) -> None:
    """A table on a terminal; elsewhere one plain line per run (for logs and grep)."""
    console = console_out()
    if not console.is_terminal:
        click.echo(f"tierlock runs ({path})")
        for c, model, run_id, outcomes, cost, position, nxt, updated in rows:
            click.echo(f"{run_id}: {c} · {model} · {position} · outcomes: {outcomes} · "
                       f"cost: {cost} · next: {nxt} · updated {updated}")  # fmt: skip
        return
    table = Table(title=f"tierlock runs ({path})")
    for col in _COLUMNS:
        table.add_column(col)
    for row in rows:
        table.add_row(*row)
    console.print(table)


def _partial(run: Any) -> str:
    aim = run.payload.get("aim")
    return f" (partial: {Aim.from_record(aim).describe()})" if aim else ""


def next_step(st: Any, names: list[str], cleared: list[str], runs_dir: Path) -> str:
    """What to do next with a run, as a command where there is one."""
    run_id = st.run.run_id
    if st.finished is not None:
        outcome = st.finished.payload["outcome"]
        if outcome == "halted":
            return "read the findings (tierlock audit on its logs); never resumed"
        if outcome == "not_qualified":
            return "none (no capability jump); tierlock run --new for a new checkpoint"
        return "none"
    nxt = next((n for n in names if n not in cleared), None)
    if st.last is not None and st.last.kind == "awaiting_approval" and nxt is not None:
        return f'tierlock approve {run_id} --tier {nxt} --by NAME --note "..."'
    if run_id.startswith("series-"):
        return "tierlock series run SERIES_FILE"
    return resume_command_line(run_id, runs_dir)


def _position(st: Any, names: list[str], cleared: list[str], *, partial: bool = False) -> str:
    if st.finished is not None:
        p = st.finished.payload
        if p["outcome"] == "top":
            return "aimed part clean" if partial else "reached the top"
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
