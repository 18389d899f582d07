"""The phases of one tier, and what each cost.

A tier runs in two phases, each its own gated step: **screening** (the qualification and safety
tasks, decided together) and, only when screening is clean, **thorough** (the measurement tasks).
The ledger's `verdict` records carry `phase` and `final`: a screening verdict that is clean while
thorough tasks remain is not final; every other definitive verdict decides the tier. Verdicts
written before phases existed carry neither key and are final.

Costs are counted per task kind (tasks, samples, tokens, wall seconds) from the task logs, so
each tier's verdict shows what phasing spent and what it saved (the thorough tasks and higher
tiers a `not-qualified` or `unsafe` verdict skipped).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from ._campaign import KINDS, SCREENING, Campaign, TaskSpec, TierSpec
from ._gate import TaskResult, Verdict, read_outcome

Phase = Literal["screening", "thorough"]
PHASES: tuple[Phase, ...] = ("screening", "thorough")

THOROUGH_DIR_SUFFIX = "-thorough"
"""Thorough logs go to `<run>/<tier>-thorough/`, beside the tier's own log directory: Inspect's
`eval_set` refuses a log directory (searched recursively) holding logs of other tasks."""


def phase_tasks(tier: TierSpec, phase: Phase) -> list[TaskSpec]:
    """The tier's tasks of one phase, in the order the tier runs them."""
    return tier.tasks_of(*SCREENING) if phase == "screening" else tier.thorough


def phase_log_dir(runs_dir: Path, run_id: str, tier: str, phase: Phase) -> Path:
    """Where a phase's Inspect logs go (screening: the tier's directory, as before phases)."""
    base = runs_dir / run_id
    return base / tier if phase == "screening" else base / f"{tier}{THOROUGH_DIR_SUFFIX}"


def is_final(tier: TierSpec, phase: Phase, verdict: Verdict) -> bool:
    """Whether this phase's verdict decides the tier."""
    if not verdict.definitive:
        return False
    return not (phase == "screening" and verdict.clean and tier.thorough)


def record_is_final(payload: Mapping[str, Any]) -> bool:
    """Whether a recorded verdict decides its tier (older records, without `final`, do when
    their outcome is definitive)."""
    outcome = read_outcome(payload.get("outcome"))
    return outcome in ("clean", "not-qualified", "unsafe") and bool(payload.get("final", True))


def record_is_screened(payload: Mapping[str, Any]) -> bool:
    """Whether a recorded verdict is a clean screening verdict (thorough tasks may start)."""
    return payload.get("phase") == "screening" and read_outcome(payload.get("outcome")) == "clean"


def passed(outcome: object, on_not_qualified: object) -> bool:
    """Whether a tier's final outcome lets the climb go on: clean, or not-qualified in a tier
    whose campaign says `on_not_qualified: continue`."""
    o = read_outcome(outcome)
    return o == "clean" or (o == "not-qualified" and on_not_qualified == "continue")


# -- costs ---------------------------------------------------------------------------------------
def log_usage(log: Any) -> tuple[int, float]:
    """(model tokens, wall seconds) an Inspect log's header reports (0 where it says nothing)."""
    from datetime import datetime

    stats = getattr(log, "stats", None)
    usage = getattr(stats, "model_usage", None) or {}
    tokens = sum(int(getattr(u, "total_tokens", 0) or 0) for u in usage.values())
    seconds = 0.0
    try:
        start = datetime.fromisoformat(str(stats.started_at))  # type: ignore[union-attr]
        end = datetime.fromisoformat(str(stats.completed_at))  # type: ignore[union-attr]
        seconds = max(0.0, (end - start).total_seconds())
    except (AttributeError, TypeError, ValueError):
        pass
    return tokens, round(seconds, 3)


def phase_cost(tier: TierSpec, results: list[TaskResult]) -> dict[str, dict[str, Any]]:
    """Tasks, samples, tokens and wall seconds per kind, from one phase's task results."""
    kind_of = {t.name: t.kind for t in tier.tasks}
    out: dict[str, dict[str, Any]] = {}
    for r in results:
        kind = kind_of.get(r.task)
        if kind is None:
            continue
        c = out.setdefault(kind, {"tasks": 0, "samples": 0, "tokens": 0, "seconds": 0.0})
        c["tasks"] += 1
        c["samples"] += r.samples
        c["tokens"] += r.tokens
        c["seconds"] = round(c["seconds"] + r.seconds, 3)
    return out


def merge_costs(*costs: Mapping[str, Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    """Costs of several phases (or attempts) added per kind, in kind order."""
    out: dict[str, dict[str, Any]] = {}
    for cost in costs:
        for kind, c in cost.items():
            acc = out.setdefault(kind, {"tasks": 0, "samples": 0, "tokens": 0, "seconds": 0.0})
            for key in ("tasks", "samples", "tokens"):
                acc[key] += int(c.get(key, 0))
            acc["seconds"] = round(acc["seconds"] + float(c.get("seconds", 0.0)), 3)
    return {k: out[k] for k in KINDS if k in out}


def skipped(
    campaign: Campaign, tier: TierSpec, phase: Phase, verdict: Verdict
) -> dict[str, list[str]]:
    """What a final verdict saves: the tier's thorough tasks it never ran (a screening verdict
    that is not clean), and, when the climb stops here, the tiers above
    (`{"thorough": [...], "tiers": [...]}`)."""
    out: dict[str, list[str]] = {}
    if phase == "screening" and not verdict.clean and tier.thorough:
        out["thorough"] = [t.name for t in tier.thorough]
    stops = verdict.outcome == "unsafe" or (
        verdict.outcome == "not-qualified" and tier.on_not_qualified == "stop"
    )
    if stops:
        names: list[str] = [t.tier for t in campaign.tiers]
        out["tiers"] = names[names.index(tier.tier) + 1 :]
    return {k: v for k, v in out.items() if v}


def describe_cost(cost: Mapping[str, Mapping[str, Any]]) -> str:
    """`qualification 5 samples 1.2k tokens 3.1 s; safety ...` for people."""
    parts = []
    for kind in KINDS:
        c = cost.get(kind)
        if c:
            parts.append(
                f"{kind} {c.get('samples', 0)} samples {_count(int(c.get('tokens', 0)))} tokens "
                f"{float(c.get('seconds', 0.0)):.1f} s"
            )
    return "; ".join(parts) or "-"


def _count(n: int) -> str:
    if n >= 1_000_000:
        return f"{n / 1_000_000:.1f}M"
    if n >= 1000:
        return f"{n / 1000:.1f}k"
    return str(n)


def run_cost(state: Any) -> str:
    """One run's cost for people (`tierlock status`): every tier's latest verdict's cost added
    per kind, and what the final verdicts skipped. `state` is a `_run.RunState`."""
    costs: list[Mapping[str, Mapping[str, Any]]] = []
    thorough: list[str] = []
    tiers: list[str] = []
    for name, rec in state.last_verdict.items():
        final = state.verdicts.get(name, rec)
        costs.append(final.payload.get("cost") or {})
        saved = final.payload.get("skipped") or {}
        thorough += list(saved.get("thorough", []))
        tiers += [t for t in saved.get("tiers", []) if t not in tiers]
    text = describe_cost(merge_costs(*costs))
    if thorough or tiers:
        what = [f"{len(thorough)} thorough task(s)"] if thorough else []
        what += [f"tier(s) {', '.join(tiers)}"] if tiers else []
        text += f"; skipped {' and '.join(what)}"
    return text
