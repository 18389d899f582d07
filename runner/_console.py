"""How `tierlock run` talks to a person: a live view on a terminal, plain lines anywhere else.

The mode is chosen once per run, from stdout and the options:

- **live** (stdout an interactive terminal): rich's `Live` view of the ladder and of image builds
  (`_live.py`); the tier decisions and warnings are printed above it as they happen; at the end
  the summary table (`_summary.py`), the verdict line, its reasons and the ledger head;
- **plain** (a pipe, a file, a CI log, `2>&1`): each event a person reads, once, as one line
  (progress on stdout, warnings on stderr); then the verdict, its reasons and the ledger head. A
  terminal that cannot redraw (`TERM=dumb`) gets plain lines and the summary table;
- **json** (`tierlock --log-format json`): the events are JSON on stderr (`_log_output.py`), so
  stdout carries only the verdict, its reasons and the ledger head;
- **quiet** (`--quiet`): the verdict line only (errors still reach stderr).

Colour follows rich's rules: none when `NO_COLOR` is set, with `TERM=dumb`, or off a terminal.
Every text from an event is made printable first (`_event_text.clean`) and placed as plain
`Text`, never as markup.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Literal

import click
from rich.console import Console
from rich.live import Live
from rich.text import Text

from ._event_text import clean, event_text, is_problem
from ._live import Ladder
from ._log_output import json_on_stderr, presenting
from ._run_state import RunOutcome
from ._summary import TierRow, summary_table

Mode = Literal["live", "plain", "json", "quiet"]

ECHO_ABOVE_LIVE = frozenset(
    {"run_started", "run_resumed", "tier_passed", "screening_clean", "gate_decision"}
)
"""Events the live view also prints above itself, so the terminal keeps their history."""

_VERDICT: dict[str, tuple[str, str]] = {
    "top": ("reached the top tier ({tier}) clean", "green"),
    "halted": ("halted at tier {tier}: unsafe", "bold red"),
    "not_qualified": (
        "not qualified at tier {tier}; thorough tasks and higher tiers skipped",
        "yellow",
    ),
    "incomplete": ("tier {tier} is incomplete; run again to retry", "yellow"),
    "awaiting_approval": ("waiting for an approval to enter {tier}", "yellow"),
}


def verdict_text(outcome: RunOutcome) -> Text:
    """`run RUN: reached the top tier (T) clean` and its kin, styled by outcome."""
    words, style = _VERDICT[outcome.status]
    partial = " (partial)" if outcome.partial else ""
    text = Text(f"run {clean(outcome.run_id)}{partial}: ")
    text.append(words.format(tier=clean(outcome.tier)), style=style)
    return text


class RunConsole:
    """The person's side of one `tierlock run` (see the module docstring)."""

    def __init__(self, title: str, tiers: list[str], *, quiet: bool = False) -> None:
        self.console = Console(highlight=False)
        self.ladder = Ladder(title, tiers)
        self.mode: Mode = _mode(self.console, quiet)

    @property
    def wants_summary(self) -> bool:
        """Whether `finish` shows the summary table (on a terminal, unless json or quiet)."""
        return self.console.is_terminal and self.mode in ("live", "plain")

    @contextmanager
    def running(self) -> Iterator[None]:
        """Present the run's events while the block runs (the live view stops on the way out,
        before anything else is printed, whatever ended the block)."""
        if self.mode != "live":
            with presenting(self.event), _inspect_silent():
                yield
            return
        live = Live(
            get_renderable=self.ladder.render,
            console=self.console,
            refresh_per_second=4,
            transient=True,
            redirect_stdout=True,
            redirect_stderr=sys.stderr.isatty(),  # `2> file` keeps its lines
        )
        with live, presenting(self.event), _inspect_silent():
            yield

    def event(self, event: dict[str, Any]) -> None:
        """One structured event (a `_log_output` presenter)."""
        if self.mode in ("json", "quiet"):
            return
        self.ladder.update(event)
        problem = is_problem(event)
        if self.mode == "live" and not problem and event.get("event") not in ECHO_ABOVE_LIVE:
            return
        text = event_text(event)
        if text is None:
            return
        if problem:
            self._line(Text(f"tierlock: {event.get('level')}: {text}", style="yellow"), err=True)
        else:
            self._line(Text.assemble(("tierlock ", "bold"), text))

    def finish(self, outcome: RunOutcome, head: object, rows: list[TierRow] | None) -> None:
        """The summary table (on a terminal), the verdict line, its reasons, the ledger head."""
        verdict = verdict_text(outcome)
        if self.mode == "quiet":
            self._line(verdict)
            return
        if rows is not None and self.wants_summary:
            self.console.print(summary_table(outcome.run_id, rows))
        self._line(verdict)
        if outcome.status != "top":
            for reason in outcome.reasons:
                self._line(Text(f"  - {clean(reason)}"))
        self._line(Text(f"ledger head: {head}"))

    def _line(self, text: Text, err: bool = False) -> None:
        """On a terminal through rich (styles, above the live view); elsewhere the plain text,
        one line, never wrapped."""
        if self.console.is_terminal and not err:
            self.console.print(text, soft_wrap=True)
        else:
            click.echo(text.plain, err=err)


@contextmanager
def _inspect_silent() -> Iterator[None]:
    """Inspect prints through rich's global console (its banner of enabled hooks, before its
    `display="none"` silences the rest); tierlock's consoles are its own, so the global one is
    quiet while the run's console speaks."""
    import rich

    shared = rich.get_console()
    before, shared.quiet = shared.quiet, True
    try:
        yield
    finally:
        shared.quiet = before


def _mode(console: Console, quiet: bool) -> Mode:
    if quiet:
        return "quiet"
    if json_on_stderr():
        return "json"
    return "live" if console.is_terminal and console.is_interactive else "plain"
