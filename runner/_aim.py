"""Aimed runs: a part of a campaign run on purpose (a smoke test of one tier or one task).

`tierlock run --tier T --task NAME --limit N -T key=value` climbs the tiers up to and including
the aimed one (T, or the tier of the named tasks), running there only the named tasks, at most N
samples a task, with the task arguments added. The tiers below still run their qualification and
safety tasks in full first: an aimed run keeps the promise that a tier is entered only once the
tiers below are clean (in that run). An aimed run is its own run in the ledger
(`<campaign>-<model>-aimed[-N]`, its `run_started` records the aim): it is never resumed by a
plain `tierlock run`, and it never counts as a clean climb of the campaign — the verdict line and
`tierlock status` say "partial".
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from tierlock.sandbox import TierlockError

from ._campaign import Campaign
from ._ledger import Ledger
from ._run_state import model_slug


@dataclass(frozen=True)
class Aim:
    """What part of a campaign a run is aimed at (all empty: the whole campaign)."""

    tier: str | None = None
    tasks: tuple[str, ...] = ()
    limit: int | None = None
    task_args: dict[str, Any] = field(default_factory=dict)

    @property
    def partial(self) -> bool:
        return bool(self.tier or self.tasks or self.limit or self.task_args)

    def record(self) -> dict[str, Any]:
        """The aim as the run's `run_started` record keeps it (and `resume` reads it back)."""
        return {
            "tier": self.tier,
            "tasks": list(self.tasks),
            "limit": self.limit,
            "task_args": self.task_args,
        }

    @classmethod
    def from_record(cls, data: dict[str, Any] | None) -> Aim:
        data = data or {}
        return cls(
            tier=data.get("tier"),
            tasks=tuple(data.get("tasks") or ()),
            limit=data.get("limit"),
            task_args=dict(data.get("task_args") or {}),
        )

    def describe(self) -> str:
        """`tiers up to tool-restricted, tasks a, b, 3 samples a task, -T x=1` (for people)."""
        parts = []
        if self.tier:
            parts.append(f"tiers up to {self.tier}")
        if self.tasks:
            parts.append(f"task{'s' if len(self.tasks) > 1 else ''} {', '.join(self.tasks)}")
        if self.limit:
            parts.append(f"{self.limit} sample{'s' if self.limit > 1 else ''} a task")
        parts += [f"-T {k}={v}" for k, v in self.task_args.items()]
        return ", ".join(parts) or "the whole campaign"


def aim_campaign(campaign: Campaign, aim: Aim) -> Campaign:
    """The campaign cut down to `aim`; one-line errors naming what does not exist.

    The aimed tier is `aim.tier`, else the highest tier holding a named task, else the top
    tier. Tiers above it are dropped. It keeps only the named tasks (all when none is named
    there), with the task arguments added. The tiers below it keep their qualification and
    safety tasks, in full: even an aimed run enters a tier only once the tiers below are clean
    in that run (their measurements, the thorough tasks, are left out)."""
    if not aim.partial:
        return campaign
    tiers = [t.tier for t in campaign.tiers]
    if aim.tier is not None and aim.tier not in tiers:
        raise TierlockError(
            f"campaign {campaign.name} has no tier {aim.tier!r} (tiers: {', '.join(tiers)})"
        )
    limit = tiers.index(aim.tier) + 1 if aim.tier is not None else len(tiers)
    where = {t.name: spec.tier for spec in campaign.tiers[:limit] for t in spec.tasks}
    unknown = [n for n in aim.tasks if n not in where]
    if unknown:
        upto = f" up to tier {aim.tier}" if aim.tier is not None else ""
        raise TierlockError(
            f"campaign {campaign.name} has no task {unknown[0]!r}{upto} "
            f"(tasks: {', '.join(where)})"
        )
    named_tiers = [tiers.index(where[n]) for n in aim.tasks]
    target = aim.tier or (tiers[max(named_tiers)] if named_tiers else tiers[-1])
    data = campaign.model_dump()
    out_tiers = []
    for spec, raw in zip(campaign.tiers, data["tiers"], strict=True):
        if spec.tier == target:
            named = [t for t in raw["tasks"] if _name(t["task"]) in aim.tasks]
            tasks = named or raw["tasks"]
            for t in tasks:
                t["args"] = {**t["args"], **aim.task_args}
            out_tiers.append({**raw, "tasks": tasks})
            break
        out_tiers.append({**raw, "tasks": [t for t in raw["tasks"] if t["kind"] != "thorough"]})
    try:
        return Campaign.model_validate({**data, "tiers": out_tiers, "source": campaign.source})
    except ValidationError as e:
        err = e.errors()[0]
        at = ".".join(str(x) for x in err["loc"])
        raise TierlockError(
            f"the aimed part of campaign {campaign.name} is not a valid campaign ({at}: "
            f"{err['msg']}); a tier's thorough tasks need its safety task (add --task for it)"
        ) from None


def aimed_run_id(ledger: Ledger, campaign: str, model: str) -> str:
    """A fresh run id for an aimed run: `<campaign>-<model>-aimed`, then `-2`, `-3`…"""
    base = f"{campaign}-{model_slug(model)}-aimed"
    taken = {r.run_id for r in ledger.runs()}
    n, run_id = 1, base
    while run_id in taken:
        n += 1
        run_id = f"{base}-{n}"
    return run_id


def _name(task: str) -> str:
    return task.rpartition("@")[2] or task
