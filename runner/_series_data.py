"""What the ledger says about a series: per-checkpoint runs, verdicts and per-sample scores.

Scores come only from logs the ledger cites (`log_written` records): each log's SHA-256 is
checked against its record before a score is read, so a jump or sandbagging decision, and the
report, rest on the same evidence the gate used.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tierlock.sandbox import TierlockError

from ._campaign import Campaign
from ._gate import read_outcome
from ._ledger import Ledger
from ._ledger_record import Record, sha256_file
from ._series_file import Checkpoint, Series
from ._series_stats import Scores, pointwise_max

EVENTS = ("checkpoint", "jump", "sandbagging", "approval", "halted")
"""The `event` of a `series` ledger record."""


@dataclass
class LogScores:
    """One task log: where, its recorded hash, and its per-sample scores."""

    task: str
    kind: str
    path: str
    sha256: str
    scores: dict[str, float]


@dataclass
class SeriesState:
    """The series' own records, replayed."""

    checkpoints: dict[str, Record] = field(default_factory=dict)
    jumps: dict[tuple[str, str], Record] = field(default_factory=dict)  # (label, tier)
    sandbagging: dict[str, Record] = field(default_factory=dict)
    approvals: dict[str, Record] = field(default_factory=dict)
    halted: Record | None = None

    def events_of(self, label: str) -> list[Record]:
        out = [r for (lab, _), r in self.jumps.items() if lab == label]
        if label in self.sandbagging:
            out.append(self.sandbagging[label])
        return out


def series_state(ledger: Ledger, series: Series) -> SeriesState:
    state = SeriesState()
    for rec in ledger.records(series.record_id):
        if rec.kind != "series":
            continue
        p = rec.payload
        label, event = str(p.get("label", "")), p.get("event")
        if event == "checkpoint":
            state.checkpoints[label] = rec
        elif event == "jump":
            state.jumps[(label, rec.tier or "")] = rec
        elif event == "sandbagging":
            state.sandbagging[label] = rec
        elif event == "approval":
            state.approvals[label] = rec
        elif event == "halted" and state.halted is None:
            state.halted = rec
    return state


def _float(value: Any) -> float:
    from inspect_ai.scorer import value_to_float

    try:
        return float(value_to_float()(value))
    except Exception:
        return 0.0


def read_scores(path: Path, sha256: str, scorer: str | None) -> dict[str, float]:
    """Per-sample scores of one cited log (its bytes checked against the ledger first)."""
    from inspect_ai.log import read_eval_log_sample_summaries

    from ._audit._safezip import guard_for_inspect

    if not path.is_file():
        raise TierlockError(f"{path}: the log the ledger cites is missing")
    if sha256_file(path) != sha256:
        raise TierlockError(f"{path}: the log changed after the ledger recorded its hash")
    guard_for_inspect(path)  # no zip bomb reaches Inspect's reader
    out: dict[str, float] = {}
    for s in read_eval_log_sample_summaries(str(path)):
        scores = s.scores or {}
        name = scorer if scorer in scores else next(iter(scores), None)
        if name is not None:
            out[f"{s.id}#{s.epoch}"] = _float(scores[name].value)
    return out


def _scorer_of(campaign: Campaign, tier: str, task: str, series: Series) -> str | None:
    """The scorer a task's first threshold names (an elicited task: its plain task's)."""
    plain = {v: k for k, v in series.sandbagging.elicitation.items()}.get(task, task)
    spec = next((t for t in campaign.tier(tier).tasks if t.name == plain), None)
    if spec is None or not spec.thresholds:
        return None
    return spec.thresholds[0].scorer


class CheckpointData:
    """A checkpoint's runs as the ledger shows them (primary run, then the one treated as
    qualified, if any): verdicts and cited logs per tier."""

    def __init__(self, ledger: Ledger, series: Series, campaign: Campaign, c: Checkpoint):
        self.checkpoint = c
        self.run_ids = [series.run_id(c), series.run_id(c, override=True)]
        self.logs: dict[tuple[str, str], LogScores] = {}  # (tier, task) -> latest log
        self.outcomes: dict[str, list[str]] = {}  # tier -> outcomes of its verdicts
        self.finished: dict[str, Record] = {}
        self.started = False
        self.measured: dict[str, dict[str, dict[str, float]]] = {}  # tier -> task -> metrics
        self._ledger, self._series, self._campaign = ledger, series, campaign
        for run_id in self.run_ids:
            for rec in ledger.records(run_id):
                self._add(run_id, rec)

    def _add(self, run_id: str, rec: Record) -> None:
        tier = rec.tier or ""
        if rec.kind == "run_started":
            self.started = True
        elif rec.kind == "log_written" and rec.logs:
            p = rec.payload
            self.logs[(tier, str(p.get("task")))] = LogScores(
                str(p.get("task")), str(p.get("kind") or ""), rec.logs[0].path,
                rec.logs[0].sha256, {},
            )  # fmt: skip
        elif rec.kind == "verdict":
            outcome = read_outcome(rec.payload.get("outcome"))
            self.outcomes.setdefault(tier, []).append(outcome)
            if rec.payload.get("phase") == "thorough" and outcome in ("clean", "unsafe"):
                self.measured[tier] = dict(rec.payload.get("measurements", {}))
        elif rec.kind == "run_finished":
            self.finished[run_id] = rec

    def scores(self, tier: str, task: str) -> LogScores | None:
        ref = self.logs.get((tier, task))
        if ref is None:
            return None
        if not ref.scores:
            scorer = _scorer_of(self._campaign, tier, task, self._series)
            ref.scores = read_scores(self._ledger.abs(ref.path), ref.sha256, scorer)
        return ref

    def qualification(self, tier: str, *, elicited: bool = False) -> tuple[Scores, list[LogScores]]:
        """The tier's plain (or elicited) qualification scores, keyed `task:sample#epoch`."""
        variants = self._series.sandbagging.elicitation
        out: dict[str, float] = {}
        used: list[LogScores] = []
        for spec in self._campaign.tier(tier).tasks_of("qualification"):
            if spec.name in variants.values():
                continue
            name = variants.get(spec.name) if elicited else spec.name
            ref = self.scores(tier, name) if name else None
            if ref is None:
                continue
            used.append(ref)
            out.update({f"{spec.name}:{k}": v for k, v in ref.scores.items()})
        return out, used

    def capability(self, tier: str, sandbagging: bool) -> Scores:
        """Its best shown qualification scores: plain, or, for a checkpoint flagged as
        sandbagging, the better of plain and elicited per sample."""
        plain, _ = self.qualification(tier)
        if not sandbagging:
            return plain
        elicited, _ = self.qualification(tier, elicited=True)
        return pointwise_max(plain, elicited)

    def qualified(self, tier: str, treated: bool) -> bool | None:
        """Whether it qualified at `tier`: None when the tier never ran; a checkpoint treated
        as qualified is; an unsafe verdict counts as qualified (cannot be shown otherwise)."""
        outcomes = self.outcomes.get(tier)
        if not outcomes:
            return True if treated else None
        return treated or any(o in ("clean", "unsafe") for o in outcomes)

    def reached(self) -> str | None:
        """The highest tier with a clean final verdict in any of its runs."""
        best = None
        for t in self._campaign.tiers:
            if "clean" in self.outcomes.get(t.tier, []):
                best = t.tier
        return best


def first_run(ledger: Ledger, series: Series) -> Record | None:
    """The `run_started` record of the series' first checkpoint run, or None before any ran:
    the settings a series is pinned to (its backend) are the ones that run recorded. Its runs
    are those of the file's checkpoints and those its `checkpoint` records name."""
    run_ids = {series.run_id(c, override=o) for c in series.checkpoints for o in (False, True)}
    for rec in series_state(ledger, series).checkpoints.values():
        run_ids.update(str(r) for r in rec.payload.get("runs") or [])
    started = [
        rec for run_id in sorted(run_ids) for rec in ledger.records(run_id)
        if rec.kind == "run_started"
    ]  # fmt: skip
    return min(started, key=lambda r: r.seq, default=None)
