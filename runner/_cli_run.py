"""CLI commands of the escalation runner: `run`, `status`, `verify`, `approve`.

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
from pathlib import Path
from typing import Any

import click

from tierlock.sandbox import (
    TierlockError,
    install_termination_handler,
    received_signal,
)

from ._anchor import ledger_head
from ._campaign_file import load_campaign
from ._cli_common import DEFAULT_MODEL, key_option, open_ledger, print_head, runs_option
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
from ._run_state import latest_run
from ._summary import tier_rows


def _run_info(model_args: dict[str, Any], generate: dict[str, Any]) -> dict[str, Any]:
    """What the run's first ledger record says about the model's settings (no secrets)."""
    return {"model_args": redact(model_args), "generate_config": redact(generate)}


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
@click.option("--new", is_flag=True, help="Start a new run instead of resuming the latest one.")
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
    new: bool,
    quiet: bool,
    runs_dir: Path,
    key_file: Path | None,
) -> int:
    """Climb CAMPAIGN's tiers (default: the shipped campaign) with MODEL, one gated tier at a time.

    Resumes the latest run of this campaign and model when it has not finished. Exit codes:
    0 reached the top tier; 1 user error; 2 halted: unsafe; 3 incomplete (run again to retry);
    4 awaiting an approval (see `tierlock approve`); 5 not qualified (thorough tasks and higher
    tiers skipped).
    """
    from ._inspect import InspectExecutor, audit_findings

    install_termination_handler(caller_exits=True)  # SIGTERM/SIGHUP: as Ctrl-C, reported below
    configure_logging()
    parse_model_args(model_args)  # a malformed -M fails before anything is loaded
    camp = load_campaign(campaign, warn=lambda p: click.echo(f"tierlock: {p}", err=True))
    args = merged_model_args(camp.model_args, model_config, model_args)
    generate = generate_settings(
        camp.generate_config, max_retries, timeout,
        max_connections=max_connections, max_tokens=max_tokens, temperature=temperature,
    )  # fmt: skip
    # Inspect draws nothing: the run's own console shows the ladder and each task's samples.
    inspect_executor = InspectExecutor("none", model_args=args, generate_config=generate)
    check_model(model)  # an unknown provider or agent is a user error, not a verdict
    inspect_executor.check(camp, model)
    executor = Interruptible(inspect_executor)
    console = RunConsole(f"{camp.name} · {model}", [t.tier for t in camp.tiers], quiet=quiet)
    with open_ledger(runs_dir, key_file=key_file) as ledger:
        ledger.check_key()  # a keyed ledger needs its key before anything runs
        start = ledger_head(ledger)
        try:
            with console.running(), reporting_progress():
                outcome = run_campaign(
                    camp,
                    model,
                    ledger=ledger,
                    runs_dir=runs_dir,
                    executor=executor,
                    auditor=audit_findings,
                    new=new,
                    run_info=_run_info(args, generate),
                )  # what happens is said by its events (the console, --log-format, --log-file)
        except KeyboardInterrupt:
            code = _interrupted(ledger, camp.name, model)
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
    console.finish(outcome, head, rows)
    return outcome.exit_code


def _interrupted(ledger: Ledger, campaign: str, model: str) -> int:
    """One line on stderr; exit 128+signal (130 for Ctrl-C). The interrupted tier has no verdict:
    the next `tierlock run` resumes it, reusing the samples that finished."""
    signum = received_signal() or signal.SIGINT
    run = latest_run(ledger, campaign, model)
    which = f"run {run.run_id}" if run is not None else "the run"
    stderr_line(
        f"tierlock: {which} interrupted by {signal.Signals(signum).name}; no verdict was "
        "recorded for the tier in progress; run the same command again to resume",
        "interrupted",
        "warning",
        signal=signal.Signals(signum).name,
    )
    return 128 + signum


RUNNER_COMMANDS = (run_command,)
"""Registered at the top level of `tierlock` by `runner/cli.py`."""
