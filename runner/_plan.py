"""The plan of a run, before anything starts: `tierlock run --dry-run` and `tierlock campaign show`.

For each tier: its effective policy (file, digest and what it grants), gate and limits, its
tasks in the order they run (kind, thresholds, arguments), the image its sandbox would use
(present or built on first use), and what a run would reuse from the ledger (the run it would
resume, tiers already passed). Reading only: nothing is created, no record is written.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tierlock.sandbox import LoadedPolicy, SandboxError, TierlockError, load_policy_file
from tierlock.sandbox._errors import display_path

from ._aim import Aim
from ._campaign import KINDS, Campaign, TierSpec
from ._ledger import Ledger
from ._run_state import RunState, latest_run, run_state


def plan_lines(
    campaign: Campaign, model: str, aim: Aim, ledger: Ledger | None, *, new: bool = False
) -> list[str]:
    """The plan as lines of plain text (see the module docstring)."""
    partial = " (a partial run: never a clean climb)" if aim.partial else ""
    out = [
        f"campaign {campaign.name} ({display_path(Path(campaign.source))}), model {model}",
        f"aimed at: {aim.describe()}{partial}",
    ]
    state = _resumed(campaign, model, aim, ledger, new, out)
    images = _ImageCheck()
    for i, tier in enumerate(campaign.tiers, 1):
        note = ""
        if aim.partial:
            last = i == len(campaign.tiers)
            limit = f", at most {aim.limit} samples a task" if aim.limit else ""
            note = (f" (aimed{limit})" if last
                    else " (below the aimed tier: qualification and safety in full)")  # fmt: skip
        out.append(f"tier {i}: {tier.tier}{note}")
        out += [f"  {line}" for line in _tier_lines(campaign, tier, images)]
        if state is not None and state.passed(tier.tier):
            out.append(f"  reuse: {state.outcome(tier.tier)} in run {state.run.run_id}: skipped")
    return out


def _resumed(
    campaign: Campaign, model: str, aim: Aim, ledger: Ledger | None, new: bool, out: list[str]
) -> RunState | None:
    prior = None if ledger is None or new or aim.partial else latest_run(
        ledger, campaign.name, model
    )
    if prior is None:
        out.append("run: a new run" + (" (aimed runs always start anew)" if aim.partial else ""))
        return None
    state = run_state(ledger, prior.run_id) if ledger is not None else None
    if state is not None and state.finished is not None:
        outcome = state.finished.payload.get("outcome")
        out.append(f"run: run {prior.run_id} has finished ({outcome}); it is reported, not "
                   "rerun (--new starts a new run)")  # fmt: skip
    else:
        out.append(f"run: would resume run {prior.run_id}")
    return state


def _tier_lines(campaign: Campaign, tier: TierSpec, images: _ImageCheck) -> list[str]:
    path = campaign.policy_path(tier)
    lines = []
    try:
        loaded = load_policy_file(path)
    except TierlockError as e:
        return [f"policy {display_path(path)}: cannot be loaded ({e})"]
    pol = loaded.policy
    lines.append(f"policy {display_path(path)} (sha256:{pol.digest()[:12]}): {_grants(loaded)}")
    gate = tier.gate
    lines.append(
        f"gate: max severity {gate.max_severity}, approval "
        f"{'required' if gate.approval_required else 'not required'}; "
        f"not qualified: {tier.on_not_qualified}; tripwire: {tier.tripwire}"
    )
    limits = {k: v for k, v in tier.limits.model_dump().items() if v is not None}
    if limits:
        unit = {"time": "s"}
        lines.append("limits per sample: " + ", ".join(
            f"{k} {v:g}{unit.get(k, '')}" for k, v in limits.items()))  # fmt: skip
    lines.append("tasks:")
    for kind in KINDS:
        for task in tier.tasks_of(kind):
            text = f"  {kind:<13} {task.name}  ({_ref(campaign, task.task)})"
            if task.thresholds:
                text += "  thresholds: " + "; ".join(str(t) for t in task.thresholds)
            if task.args:
                text += "  args: " + ", ".join(f"{k}={v}" for k, v in task.args.items())
            lines.append(text)
    if pol.tier != "text-only":
        lines.append(f"image: {images.describe(pol.image)}")
    return lines


def _ref(campaign: Campaign, task: str) -> str:
    file = task.partition("@")[0]
    if file.endswith(".py"):
        return display_path((campaign.base / file).resolve())
    return file


def _grants(loaded: LoadedPolicy) -> str:
    p = loaded.policy
    if p.tier == "text-only":
        return "text only, no sandbox"
    net: str = p.network.mode
    if p.network.allow:
        net += f" to {', '.join(p.network.allow)}"
    if p.network.services:
        net += f", services {', '.join(p.network.services)}"
    tools = ", ".join(p.tools.allow) or "no tools"
    lim = p.limits
    memory = f"{lim.memory // 1024**2}m" if lim.memory else "unlimited"
    return (
        f"tools {tools}; network {net}; memory {memory}, cpus {lim.cpus}, pids {lim.pids}; "
        f"user {p.process.user}; seccomp {p.process.seccomp}; runtime {p.process.runtime}"
    )


class _ImageCheck:
    """Whether each image exists, asked of Docker once (and said plainly when it cannot be)."""

    def __init__(self) -> None:
        self._client: Any = None
        self._unreachable: str | None = None

    def describe(self, name: str) -> str:
        from tierlock.sandbox import resolve_image

        tag = resolve_image(name)
        client = self._connect()
        if client is None:
            return f"{tag} (not checked: {self._unreachable})"
        from tierlock.sandbox._images import image_exists

        try:
            present = image_exists(client, tag)
        except Exception as e:  # a daemon that stops answering: say so, plan on
            return f"{tag} (not checked: {type(e).__name__})"
        return f"{tag} ({'present' if present else 'not built yet: built on first use'})"

    def _connect(self) -> Any:
        if self._client is None and self._unreachable is None:
            from tierlock.sandbox._docker import connect

            try:
                self._client = connect(timeout=10)
            except SandboxError as e:
                self._unreachable = str(e)
        return self._client
