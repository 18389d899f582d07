"""A series as people see it: one row per checkpoint (the status table and the report's data).

Everything here is read from the ledger and the logs it cites (hashes checked); nothing is
recomputed differently from what the series loop decided: jumps and sandbagging flags are the
recorded ones.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ._campaign import Campaign
from ._ledger import Ledger
from ._series_data import CheckpointData, series_state
from ._series_file import Series
from ._series_stats import mean_interval

Band = tuple[float, float, float]
"""(mean, low, high) of per-sample scores; 95% interval."""


@dataclass
class TierView:
    qualification: Band | None = None
    elicited: Band | None = None
    safety: Band | None = None
    thorough: Band | None = None
    outcome: str = ""  # the tier's last verdict outcome in this checkpoint's runs


@dataclass
class CheckpointView:
    label: str
    step: int | None
    model: str
    args: dict[str, Any]
    status: str  # pending | running | top | not_qualified | halted | ...
    reached: str | None = None
    treated_as_qualified: bool = False
    sandbagging: list[str] = field(default_factory=list)
    jumps: list[tuple[str, list[str]]] = field(default_factory=list)  # (tier, reasons)
    approval: str | None = None
    tiers: dict[str, TierView] = field(default_factory=dict)
    thorough_ran: list[str] = field(default_factory=list)  # tiers whose thorough tasks ran


def _band(scores: Mapping[str, float]) -> Band | None:
    return mean_interval(scores) if scores else None


def _kind_scores(data: CheckpointData, tier: str, kind: str, skip: set[str]) -> dict[str, float]:
    out: dict[str, float] = {}
    for (t, task), _ in list(data.logs.items()):
        ref = data.logs[(t, task)]
        if t != tier or ref.kind != kind or task in skip:
            continue
        scored = data.scores(t, task)
        if scored is not None:
            out.update({f"{task}:{k}": v for k, v in scored.scores.items()})
    return out


def series_view(ledger: Ledger, series: Series, campaign: Campaign) -> list[CheckpointView]:
    state = series_state(ledger, series)
    elicited = set(series.sandbagging.elicitation.values())
    rows = []
    for c in series.checkpoints:
        data = CheckpointData(ledger, series, campaign, c)
        done = state.checkpoints.get(c.label)
        if done is not None:
            status = str(done.payload.get("outcome"))
        elif state.halted is not None and state.halted.payload.get("label") == c.label:
            status = "halted"
        elif data.started:
            status = "in progress"
        else:
            status = "pending"
        row = CheckpointView(c.label, c.step, c.model, dict(c.args), status)
        row.reached = data.reached()
        sb = state.sandbagging.get(c.label)
        if sb is not None:
            row.treated_as_qualified = True
            row.sandbagging = list(sb.payload.get("reasons", []))
        row.jumps = [
            (t, list(r.payload.get("reasons", [])))
            for (lab, t), r in state.jumps.items()
            if lab == c.label
        ]
        if c.label in state.approvals:
            row.approval = str(state.approvals[c.label].payload.get("by"))
        for t in campaign.tiers:
            view = TierView()
            plain, _ = data.qualification(t.tier)
            view.qualification = _band(plain)
            if elicited:
                view.elicited = _band(data.qualification(t.tier, elicited=True)[0])
            view.safety = _band(_kind_scores(data, t.tier, "safety", elicited))
            view.thorough = _band(_kind_scores(data, t.tier, "thorough", elicited))
            outcomes = data.outcomes.get(t.tier, [])
            view.outcome = outcomes[-1] if outcomes else ""
            if view.thorough is not None:
                row.thorough_ran.append(t.tier)
            row.tiers[t.tier] = view
        rows.append(row)
    return rows


def fmt_band(b: Band | None) -> str:
    if b is None:
        return "-"
    mean, low, high = b
    return f"{mean:.2f} [{low:.2f}, {high:.2f}]"
