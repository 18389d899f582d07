"""Loading a campaign file: validation with positions, then its files and its policy ladder.

`load_campaign` reads the YAML (`_yaml_model.read_model`), checks that every policy and task file
exists and that the policies form a valid ladder in the campaign's order; errors raise
`CampaignError` naming file:line:col and the key path, ladder warnings go to `warn`.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from tierlock.sandbox import Problem, TierlockError, check_ladder, load_policy
from tierlock.sandbox._errors import display_path
from tierlock.sandbox._loader_messages import error_message as _policy_message
from tierlock.sandbox._loader_positions import PositionIndex

from ._campaign import (
    DEFAULT_CAMPAIGN,
    Campaign,
    CampaignError,
    Gate,
    SampleLimits,
    TaskSpec,
    TierSpec,
)
from ._yaml_model import read_model


def _message(err: Any) -> tuple[str, bool]:
    """Plain words for a pydantic error; unknown keys list what the campaign allows there."""
    if err["type"] == "extra_forbidden":
        model = _model_at(tuple(err["loc"])[:-1])
        allowed = f"; allowed here: {', '.join(model.model_fields)}" if model else ""
        return f"unknown key{allowed}", True
    return _policy_message(err)


def _model_at(loc: tuple[Any, ...]) -> type[BaseModel] | None:
    model: type[BaseModel] = Campaign
    for part in loc:
        if isinstance(part, int):
            continue
        nested: dict[str, type[BaseModel]] = {
            "tiers": TierSpec,
            "tasks": TaskSpec,
            "gate": Gate,
            "limits": SampleLimits,
        }
        if part not in model.model_fields or part not in nested:
            return None
        model = nested[part]
    return model


def load_campaign(
    path: str | Path | None = None, warn: Callable[[Problem], None] | None = None
) -> Campaign:
    """Load and validate a campaign file (the shipped default when `path` is None).

    Raises `CampaignError` whose problems name file:line:col and key path; ladder warnings
    (e.g. a higher tier dropping a permission) go to `warn`.
    """
    p = Path(path) if path is not None else DEFAULT_CAMPAIGN
    campaign, positions = read_model(p, Campaign, "campaign", CampaignError, _message)
    for problem in _check_files(campaign, positions):
        if warn is not None:
            warn(problem)
    return campaign


def _check_files(campaign: Campaign, positions: PositionIndex) -> list[Problem]:
    """Every policy and task file exists; the policies form a valid ladder (returns warnings)."""
    problems: list[Problem] = []
    for i, tier in enumerate(campaign.tiers):
        policy = campaign.policy_path(tier)
        if not policy.is_file():
            loc = positions.locate(("tiers", i, "policy"))
            problems.append(Problem(loc, f"policy file {display_path(policy)} does not exist"))
        for j, task in enumerate(tier.tasks):
            loc = positions.locate(("tiers", i, "tasks", j, "task"))
            try:
                file = campaign.task_file(task)
            except TierlockError as e:
                problems.append(Problem(loc, str(e)))
                continue
            if file is not None and not file.is_file():
                problems.append(Problem(loc, f"task file {display_path(file)} does not exist"))
        names = [t.name for t in tier.tasks]
        if len(set(names)) != len(names):
            loc = positions.locate(("tiers", i, "tasks"))
            problems.append(Problem(loc, "each task of a tier must have a different name"))
    if problems:
        raise CampaignError("invalid campaign", problems)
    return _check_ladder(campaign, positions)


def _check_ladder(campaign: Campaign, positions: PositionIndex) -> list[Problem]:
    """Each tier's policy is for that tier, and the policies pass the policy layer's ladder
    check (load, lint for their own tier, order). Errors raise; warnings are returned."""
    problems: list[Problem] = []
    paths = [campaign.policy_path(t) for t in campaign.tiers]
    for i, (tier, path) in enumerate(zip(campaign.tiers, paths, strict=True)):
        policy = load_policy(path)
        if policy.tier != tier.tier:
            problems.append(
                Problem(
                    positions.locate(("tiers", i, "policy")),
                    f"policy {display_path(path)} is for tier {policy.tier}, not {tier.tier}",
                )
            )
    if problems:
        raise CampaignError("invalid campaign", problems)
    ladder = check_ladder(paths)
    errors = [p for p in ladder if p.severity == "error"]
    if errors:
        raise CampaignError("invalid campaign: its policies do not form a valid ladder", errors)
    return [p for p in ladder if p.severity != "error"]
