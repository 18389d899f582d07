"""The table `tierlock run` ends with on a terminal: each tier of the run as the ledger has it.

One row per tier of the run (from its `run_started` record): the tier's outcome (its final
verdict, else its latest one, else where the run stopped), tasks and samples run, audit findings,
tokens and wall seconds (the latest verdict's cost, both phases added). Read from the ledger, so a
resumed or re-reported run shows what was done before this process started too.
"""

from __future__ import annotations

from dataclasses import dataclass

from rich.table import Table
from rich.text import Text

from ._event_text import clean
from ._ledger import Ledger
from ._phases import merge_costs
from ._run_state import run_state

OUTCOME_STYLE = {
    "clean": "green",
    "unsafe": "bold red",
    "not-qualified": "yellow",
    "incomplete": "yellow",
    "awaiting approval": "yellow",
}


@dataclass(frozen=True)
class TierRow:
    tier: str
    outcome: str
    tasks: int
    samples: int
    findings: int
    tokens: int
    seconds: float


def tier_rows(ledger: Ledger, run_id: str) -> list[TierRow]:
    """Each tier of `run_id`, in ladder order."""
    state = run_state(ledger, run_id)
    findings: dict[str, int] = {}
    for rec in ledger.records(run_id):
        if rec.kind == "audit_result" and rec.tier:
            found = rec.payload.get("findings") or []
            findings[rec.tier] = findings.get(rec.tier, 0) + len(found)
    rows = []
    for spec in state.tiers:
        name = str(spec.get("tier"))
        latest = state.verdicts.get(name) or state.last_verdict.get(name)
        outcome = state.outcome(name)
        if outcome is None and latest is not None:
            outcome = str(latest.payload.get("outcome"))
        if outcome is None:
            outcome = "awaiting approval" if name in state.awaiting else "not run"
        cost = merge_costs(latest.payload.get("cost") or {}) if latest is not None else {}
        rows.append(
            TierRow(
                tier=name,
                outcome=outcome,
                tasks=sum(int(c.get("tasks", 0)) for c in cost.values()),
                samples=sum(int(c.get("samples", 0)) for c in cost.values()),
                findings=findings.get(name, 0),
                tokens=sum(int(c.get("tokens", 0)) for c in cost.values()),
                seconds=sum(float(c.get("seconds", 0.0)) for c in cost.values()),
            )
        )
    return rows


def summary_table(run_id: str, rows: list[TierRow]) -> Table:
    """The rows as a rich table (every cell plain text: nothing in it is read as markup)."""
    table = Table(title=Text(f"run {clean(run_id)}"), title_justify="left")
    for col, justify in (
        ("tier", "left"),
        ("outcome", "left"),
        ("tasks", "right"),
        ("samples", "right"),
        ("findings", "right"),
        ("tokens", "right"),
        ("seconds", "right"),
    ):
        table.add_column(col, justify=justify)  # type: ignore[arg-type]
    for r in rows:
        table.add_row(
            Text(clean(r.tier)),
            Text(clean(r.outcome), style=OUTCOME_STYLE.get(r.outcome, "")),
            str(r.tasks),
            str(r.samples),
            Text(str(r.findings), style="bold red" if r.findings else ""),
            str(r.tokens),
            f"{r.seconds:.1f}",
        )
    return table
