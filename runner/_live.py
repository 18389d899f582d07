"""The live view of `tierlock run` on a terminal: the ladder as it climbs, and image builds.

`Ladder` is the view's state, fed the run's structured events one at a time (`update`), and
drawn by `render` a few times a second by rich's `Live`:

- one row per tier: its status (waiting, the phase running, or its outcome), then for the tier
  running one row per task with samples done/total, the audit findings so far and the elapsed
  time;
- one line per image being built: the build's last step and its elapsed time.

Every string that reaches a cell passes through `clean` (`_event_text.py`) and is placed as
plain `Text`, never parsed as rich markup: a task output, host name or reason the model
controls cannot inject escape sequences or styles into the terminal.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from rich.console import Group, RenderableType
from rich.spinner import Spinner
from rich.table import Table
from rich.text import Text

from ._event_text import clean
from ._summary import OUTCOME_STYLE


@dataclass
class _TaskRow:
    name: str
    done: int = 0
    total: int = 0
    errors: int = 0
    status: str = "running"


@dataclass
class _TierRow:
    name: str
    status: str = "waiting"
    findings: int = 0
    started: float | None = None
    ended: float | None = None
    tasks: dict[str, _TaskRow] = field(default_factory=dict)


@dataclass
class _Build:
    image: str
    step: str
    started: float


class Ladder:
    """What the live view shows, kept from the events (thread-safe: events may come from the
    image-build worker threads while rich redraws)."""

    def __init__(self, title: str, tiers: list[str], clock: Callable[[], float] = time.monotonic):
        self.title = clean(title)
        self.clock = clock
        self.started = clock()
        self.run_id = ""
        self.tiers = {name: _TierRow(clean(name)) for name in tiers}
        self.current: str | None = None
        self.builds: dict[str, _Build] = {}
        self.findings = 0
        self._lock = threading.Lock()
        self._spinner = Spinner("dots")

    def update(self, event: Mapping[str, Any]) -> None:
        kind = event.get("event")
        with self._lock:
            handler = _HANDLERS.get(str(kind))
            if handler is not None:
                handler(self, event)

    # -- event handlers (called with the lock held) ----------------------------------------------
    def _run(self, e: Mapping[str, Any]) -> None:
        self.run_id = clean(e.get("run_id", ""))

    def _tier(self, e: Mapping[str, Any]) -> _TierRow:
        name = str(e.get("tier"))
        return self.tiers.setdefault(name, _TierRow(clean(name)))

    def _tier_started(self, e: Mapping[str, Any]) -> None:
        row = self._tier(e)
        row.status, row.ended = clean(e.get("phase")), None  # tasks kept: both phases add up
        row.started = row.started if row.started is not None else self.clock()
        self.current = str(e.get("tier"))

    def _tier_done(self, e: Mapping[str, Any]) -> None:
        row = self._tier(e)
        row.status = clean(e.get("outcome")).replace("_", "-")
        row.ended = self.clock() if row.started is not None else None
        if self.current == e.get("tier"):
            self.current = None

    def _screened(self, e: Mapping[str, Any]) -> None:
        self._tier(e).status = "screening clean"

    def _audit(self, e: Mapping[str, Any]) -> None:
        found = int(e.get("findings") or 0)
        self._tier(e).findings += found
        self.findings += found

    def _task(self, e: Mapping[str, Any]) -> None:
        if self.current is None:
            return
        tier = self.tiers[self.current]
        name = str(e.get("task"))
        task = tier.tasks.setdefault(name, _TaskRow(clean(name)))
        if e.get("event") == "task_started":  # a new attempt counts from zero
            task.done, task.errors, task.status = 0, 0, "running"
        task.total = int(e.get("total") or task.total)
        task.done = int(e.get("done") or task.done)
        task.errors = int(e.get("errors") or task.errors)
        if e.get("event") == "task_finished":
            task.status = clean(e.get("status"))

    def _build(self, e: Mapping[str, Any]) -> None:
        step = str(e.get("step", ""))
        words = step.split()
        if step.startswith("building image ") and len(words) > 2:
            self.builds[words[2]] = _Build(clean(words[2]), "starting", self.clock())
        elif step.startswith("built image ") and len(words) > 2:
            self.builds.pop(words[2], None)
        elif self.builds:
            last = next(reversed(self.builds.values()))
            last.step = clean(step)

    # -- drawing ---------------------------------------------------------------------------------
    def render(self) -> RenderableType:
        with self._lock:
            return Group(self._header(), self._table(), *self._build_lines())

    def _header(self) -> Text:
        text = Text(no_wrap=True, overflow="ellipsis")
        text.append("tierlock ", style="bold")
        text.append(f"run {self.run_id}" if self.run_id else self.title)
        text.append(f"  {_elapsed(self.clock() - self.started)}", style="dim")
        text.append(f"  findings {self.findings}", style="bold red" if self.findings else "")
        return text

    def _table(self) -> Table:
        table = Table(box=None, pad_edge=False, show_edge=False)
        for col, justify in (
            ("tier", "left"),
            ("status", "left"),
            ("task", "left"),
            ("samples", "right"),
            ("findings", "right"),
            ("elapsed", "right"),
        ):
            table.add_column(col, justify=justify)  # type: ignore[arg-type]
        now = self.clock()
        for name, row in self.tiers.items():
            running = name == self.current
            status: RenderableType = Text(row.status, style=OUTCOME_STYLE.get(row.status, ""))
            if running:
                status = self._spinner_text(row.status)
            elapsed = ""
            if row.started is not None:
                elapsed = _elapsed((row.ended or now) - row.started)
            findings = Text(str(row.findings), style="bold red" if row.findings else "")
            tasks = list(row.tasks.values())
            shown = [t for t in tasks if t.status == "running"] if running else []
            samples = _samples(shown[0]) if shown else _sum(tasks)
            table.add_row(
                Text(row.name, style="bold" if running else ""),
                status,
                Text(shown[0].name) if shown else Text(""),
                samples,
                findings if row.started is not None else Text(""),
                Text(elapsed, style="dim"),
            )
            for task in shown[1:]:
                table.add_row(Text(""), Text(""), Text(task.name), _samples(task), "", "")
        return table

    def _spinner_text(self, status: str) -> Text:
        frame = self._spinner.render(time.monotonic())
        text = frame if isinstance(frame, Text) else Text(str(frame))
        return Text.assemble(text, " ", Text(status, style="cyan"))

    def _build_lines(self) -> list[Text]:
        now = self.clock()
        return [
            Text.assemble(
                ("building image ", "bold"),
                b.image,
                ": ",
                b.step,
                (f"  {_elapsed(now - b.started)}", "dim"),
            )
            for b in self.builds.values()
        ]


def _samples(task: _TaskRow) -> Text:
    text = Text(f"{task.done}/{task.total}" if task.total else f"{task.done}")
    if task.errors:
        text.append(f" ({task.errors} failed)", style="red")
    return text


def _sum(tasks: list[_TaskRow]) -> Text:
    """A finished tier's samples: done/total over its tasks (blank when none ran here)."""
    if not tasks:
        return Text("")
    return _samples(
        _TaskRow("", *(sum(getattr(t, k) for t in tasks) for k in ("done", "total", "errors")))
    )


def _elapsed(seconds: float) -> str:
    s = max(0, int(seconds))
    return f"{s // 60}:{s % 60:02d}"


_HANDLERS: dict[str, Callable[[Ladder, Mapping[str, Any]], None]] = {
    "run_started": Ladder._run,
    "run_resumed": Ladder._run,
    "tier_passed": Ladder._tier_done,
    "tier_started": Ladder._tier_started,
    "screening_clean": Ladder._screened,
    "gate_decision": Ladder._tier_done,
    "audit_result": Ladder._audit,
    "task_started": Ladder._task,
    "sample_finished": Ladder._task,
    "task_finished": Ladder._task,
    "image_build": Ladder._build,
}
