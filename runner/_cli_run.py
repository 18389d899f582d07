"""`tierlock run`: climb a campaign (or a part of it, aimed), resume it, or print its plan.

Exit codes of `tierlock run`: 0 reached the top tier clean; 1 user error; 2 halted: unsafe;
3 incomplete (harness error: run again to retry); 4 awaiting an approval; 5 not qualified (below a
tier's qualification bar; its thorough tasks and higher tiers skipped); 128+signal when
interrupted (130 Ctrl-C, 143 SIGTERM, 129 SIGHUP: run again to resume).
`tierlock verify`: 0 intact, 2 a broken link or the expected head is not in the chain, 3 the
chain is intact but keyed and no key was given (its macs could not be checked).
Commands that write the ledger (run, approve) end by printing its head (`ledger head: SEQ:HASH`):
keep it outside the runs directory and check it later with `tierlock verify --expect-head`.
"""

from __future__ import annotations

import signal
from dataclasses import replace
from pathlib import Path
from typing import Any

import click

from tierlock.sandbox import (
    TierlockError,
    install_termination_handler,
    received_signal,
)

from ._aim import Aim, aim_campaign, aimed_run_id
from ._anchor import Head, ledger_head
from ._backend import BACKENDS, RECORD_KEY, RunBackend, resolve_backend
from ._campaign import Campaign
from ._campaign_file import load_campaign
from ._cli_aim import aim_options, make_aim, print_plan
from ._cli_common import (
    DEFAULT_MODEL,
    key_option,
    open_ledger,
    print_head,
    runs_option,
)
from ._cli_resume_line import resume_command_line, run_written_since
from ._console import RunConsole
from ._endpoint import EndpointRefused
from ._interruptible import Interruptible
from ._ledger import Ledger
from ._log_output import configure_logging, stderr_line
from ._model_args import (
    DEFAULT_MAX_RETRIES,
    DEFAULT_TIMEOUT,
    generate_settings,
    merged_model_args,
    parse_model_args,
    redact,
)
from ._models import check_model
from ._progress import reporting_progress
from ._run import run_campaign
from ._summary import tier_rows


def _run_info(
    model_args: dict[str, Any], generate: dict[str, Any], backend: RunBackend
) -> dict[str, Any]:
    """What the run's first ledger record says about the model's settings (no secrets) and its
    backend (pinned: a resume cannot switch it)."""
    return {
        "model_args": redact(model_args),
        "generate_config": redact(generate),
        RECORD_KEY: backend.record(),
    }


@click.command("run")
@click.argument("campaign", required=False, type=click.Path(dir_okay=False, path_type=Path))
@click.option("--model", "-m", default=DEFAULT_MODEL, show_default=True, help="Any Inspect model.")
@click.option(
    "-M",
    "model_args",
    multiple=True,
    help="Model argument key=value, the value a YAML scalar as in Inspect (repeatable).",
)
@click.option(
    "--model-config",
    type=click.Path(dir_okay=False, path_type=Path),
    help="YAML or JSON file of model arguments (-M wins).",
)
@click.option(
    "--max-retries",
    type=click.IntRange(min=0),
    help=f"Retries of one model call (default: the campaign's, else {DEFAULT_MAX_RETRIES}).",
)
@click.option(
    "--timeout",
    type=click.IntRange(min=1),
    help="Seconds one model call may take, retries included; an endpoint silent that long "
    f"makes the tier incomplete (default: the campaign's, else {DEFAULT_TIMEOUT}).",
)
@click.option(
    "--max-connections",
    type=click.IntRange(min=1),
    help="Concurrent connections to the model API (default: the campaign's, else Inspect's).",
)
@click.option(
    "--max-tokens",
    type=click.IntRange(min=1),
    help="Most tokens one model answer may have (default: the campaign's, else the model's).",
)
@click.option(
    "--temperature",
    type=click.FloatRange(min=0),
    help="Sampling temperature (default: the campaign's, else the model's).",
)
@click.option(
    "--backend",
    type=click.Choice(BACKENDS),
    default=None,
    help="Where sandboxed tiers run: docker (tierlock's provider) or k8s (Inspect's k8s sandbox, "
    "values translated from each tier's policy). Default: the campaign's backend, else docker.",
)
@click.option("--new", is_flag=True, help="Start a new run instead of resuming the latest one.")
@aim_options
@click.option(
    "--dry-run",
    is_flag=True,
    help="Print the plan (tiers, tasks, effective policies, images, what would be reused) and "
    "exit 0 without starting anything.",
)
@click.option("--quiet", "-q", is_flag=True, help="Print only the final verdict line.")
@runs_option
@key_option
def run_command(
    campaign: Path | None,
    model: str,
    model_args: tuple[str, ...],
    model_config: Path | None,
    max_retries: int | None,
    timeout: int | None,
    max_connections: int | None,
    max_tokens: int | None,
    temperature: float | None,
    backend: str | None,
    new: bool,
    tier: str | None,
    tasks: tuple[str, ...],
    limit: int | None,
    task_args: tuple[str, ...],
    dry_run: bool,
    quiet: bool,
    runs_dir: Path,
    key_file: Path | None,
) -> int:
    """Climb CAMPAIGN's tiers (default: the shipped campaign) with MODEL, one gated tier at a time.

    Resumes the latest run of this campaign and model when it has not finished. Aimed at a part
    (--tier, --task, --limit, -T), it is a new, partial run that never counts as a clean climb.
    Exit codes: 0 reached the top tier; 1 user error; 2 halted: unsafe; 3 incomplete (run
    again to retry); 4 awaiting an approval (see `tierlock approve`); 5 not qualified (thorough
    tasks and higher tiers skipped).
    """
    configure_logging()
    parse_model_args(model_args)  # a malformed -M fails before anything is loaded
    aim = make_aim(tier, tasks, limit, task_args)
    camp = load_campaign(campaign, warn=lambda p: click.echo(f"tierlock: {p}", err=True))
    args = merged_model_args(camp.model_args, model_config, model_args)
    generate = generate_settings(
        camp.generate_config, max_retries, timeout,
        max_connections=max_connections, max_tokens=max_tokens, temperature=temperature,
    )  # fmt: skip
    return start_run(
        camp, model, args, generate, aim=aim, new=new, dry_run=dry_run, quiet=quiet,
        runs_dir=runs_dir, key_file=key_file, backend=backend,
    )  # fmt: skip


def start_run(
    camp: Campaign,
    model: str,
    args: dict[str, Any],
    generate: dict[str, Any],
    *,
    aim: Aim,
    runs_dir: Path,
    key_file: Path | None,
    new: bool = False,
    dry_run: bool = False,
    quiet: bool = False,
    run_id: str | None = None,
    backend: str | None = None,
) -> int:
    """Run (or resume, or plan) a campaign with checked settings: `run` and `resume` both end
    here. `backend` (docker, k8s) wins over the campaign's."""
    from ._inspect import InspectExecutor, audit_findings

    install_termination_handler(caller_exits=True)  # SIGTERM/SIGHUP: as Ctrl-C, reported below
    aimed = aim_campaign(camp, aim)
    chosen = resolve_backend(camp, backend)
    check_model(model)  # an unknown provider or agent is a user error, not a verdict
    # Inspect draws nothing: the run's own console shows the ladder and each task's samples.
    inspect_executor = InspectExecutor(
        "none", model_args=args, generate_config=generate,
        limit=aim.limit, limit_tier=aimed.tiers[-1].tier, backend=chosen,
    )  # fmt: skip
    inspect_executor.check(aimed, model)
    if dry_run:
        if chosen.name == "k8s":  # a policy the chart cannot express: one line, exit 1
            inspect_executor.check_k8s(aimed)
            click.echo(f"backend: {chosen.describe()}")
        return print_plan(aimed, model, aim, runs_dir, key_file, new=new)
    executor = Interruptible(inspect_executor)
    console = RunConsole(f"{aimed.name} · {model}", [t.tier for t in aimed.tiers], quiet=quiet)
    info = _run_info(args, generate, chosen)
    with open_ledger(runs_dir, key_file=key_file) as ledger:
        ledger.check_key()  # a keyed ledger needs its key before anything runs
        if aim.partial:
            info["aim"] = aim.record()
            run_id = run_id or aimed_run_id(ledger, aimed.name, model)
        start = ledger_head(ledger)
        try:
            with console.running(), reporting_progress():
                outcome = run_campaign(
                    aimed,
                    model,
                    ledger=ledger,
                    runs_dir=runs_dir,
                    executor=executor,
                    auditor=audit_findings,
                    new=new,
                    run_id=run_id,
                    run_info=info,
                )  # what happens is said by its events (the console, --log-format, --log-file)
        except KeyboardInterrupt:
            code = _interrupted(ledger, start, runs_dir)
            print_head(ledger, err=True)
            return code
        except EndpointRefused as e:  # every call refused (401/403/404): one line, exit 3
            stderr_line(f"tierlock: {e}", "endpoint_refused", "error")
            print_head(ledger)
            return EndpointRefused.exit_code
        except TierlockError:
            if ledger_head(ledger) != start:  # records were written before the error
                print_head(ledger, err=True)
            raise
        head = ledger_head(ledger)
        rows = tier_rows(ledger, outcome.run_id) if console.wants_summary else None
    if aim.partial:
        outcome = replace(outcome, partial=True)
    console.finish(outcome, head, rows)
    if aim.partial:
        click.echo(
            f"run {outcome.run_id} was aimed at {aim.describe()}: a partial run, not a clean "
            f"climb of campaign {camp.name}"
        )
    return outcome.exit_code


def _interrupted(ledger: Ledger, start: Head, runs_dir: Path) -> int:
    """One line on stderr naming the exact command that resumes the interrupted run; exit
    128+signal (130 for Ctrl-C). The interrupted tier has no verdict: resuming reruns it,
    reusing the samples that finished."""
    signum = received_signal() or signal.SIGINT
    run_id = run_written_since(ledger, start)
    resume = resume_command_line(run_id, runs_dir) if run_id else None
    which = f"run {run_id}" if run_id else "the run"
    then = f"resume it with: {resume}" if resume else "run the same command again to resume"
    stderr_line(
        f"tierlock: {which} interrupted by {signal.Signals(signum).name}; no verdict was "
        f"recorded for the tier in progress; {then}",
        "interrupted",
        "warning",
        signal=signal.Signals(signum).name,
    )
    return 128 + signum


RUNNER_COMMANDS = (run_command,)
"""Registered at the top level of `tierlock` by `runner/cli.py`."""
