"""Aiming a run at part of a campaign from the command line, and `tierlock campaign show`.

`aim_options` adds `--tier`, `--task`, `--limit` and `-T key=value` (values read as YAML scalars,
as Inspect reads `-T`) to a command; `make_aim` turns them into an `Aim` (`_aim.py`).
`tierlock campaign show FILE` prints the plan `tierlock run --dry-run` prints.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from tierlock.sandbox import TierlockError

from ._aim import Aim, aim_campaign
from ._campaign import Campaign
from ._campaign_file import load_campaign
from ._cli_common import DEFAULT_MODEL, LEDGER_FILE, key_option, open_ledger, runs_option
from ._model_args import parse_model_arg
from ._plan import plan_lines


def aim_options(f: Callable[..., Any]) -> Callable[..., Any]:
    """The options that aim a run at part of a campaign."""
    f = click.option(
        "-T",
        "task_args",
        multiple=True,
        metavar="KEY=VALUE",
        help="A task argument given to every task (a YAML scalar, as in Inspect; repeatable). "
        "Makes the run partial.",
    )(f)
    f = click.option(
        "--limit",
        type=click.IntRange(min=1),
        help="At most N samples a task. Makes the run partial.",
    )(f)
    f = click.option(
        "--task",
        "tasks",
        multiple=True,
        metavar="NAME",
        help="Only this task (its name after @; repeatable). Makes the run partial.",
    )(f)
    f = click.option(
        "--tier",
        metavar="TIER",
        help="Only the tiers up to and including TIER. Makes the run partial.",
    )(f)
    return f


def make_aim(
    tier: str | None, tasks: tuple[str, ...], limit: int | None, task_args: tuple[str, ...]
) -> Aim:
    """The aim the options say (`-T` values checked here: one line for a malformed one)."""
    parsed: dict[str, Any] = {}
    for item in task_args:
        try:
            key, value = parse_model_arg(item)
        except TierlockError as e:
            raise TierlockError(str(e).replace("-M", "-T")) from None
        parsed[key] = value
    return Aim(tier=tier, tasks=tuple(dict.fromkeys(tasks)), limit=limit, task_args=parsed)


@click.group("campaign")
def campaign_group() -> None:
    """Look at a campaign before running it."""


@campaign_group.command("show")
@click.argument("campaign", required=False, type=click.Path(dir_okay=False, path_type=Path))
@click.option("--model", "-m", default=DEFAULT_MODEL, show_default=True, help="Any Inspect model.")
@aim_options
@click.option("--new", is_flag=True, help="Plan a new run instead of resuming the latest one.")
@runs_option
@key_option
def show_command(
    campaign: Path | None,
    model: str,
    tier: str | None,
    tasks: tuple[str, ...],
    limit: int | None,
    task_args: tuple[str, ...],
    new: bool,
    runs_dir: Path,
    key_file: Path | None,
) -> int:
    """Print CAMPAIGN's plan (default: the shipped campaign): each tier's effective policy,
    gate, limits, tasks in the order they run, image, and what a run of MODEL would reuse from
    the ledger. The same as `tierlock run --dry-run`; nothing is started or recorded."""
    aim = make_aim(tier, tasks, limit, task_args)
    camp = aim_campaign(
        load_campaign(campaign, warn=lambda p: click.echo(f"tierlock: {p}", err=True)), aim
    )
    return print_plan(camp, model, aim, runs_dir, key_file, new=new)


def print_plan(
    camp: Campaign, model: str, aim: Aim, runs_dir: Path, key_file: Path | None, *, new: bool
) -> int:
    """The plan on stdout; the ledger only read (when there is one)."""
    if (runs_dir / LEDGER_FILE).exists():
        with open_ledger(runs_dir, readonly=True, key_file=key_file) as ledger:
            lines = plan_lines(camp, model, aim, ledger, new=new)
    else:
        lines = plan_lines(camp, model, aim, None, new=new)
    for line in lines:
        click.echo(line)
    click.echo("dry run: nothing was started")
    return 0
