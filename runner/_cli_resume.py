"""`tierlock resume [RUN_ID]`: continue exactly the run you mean.

The run is found in the ledger (default: the newest run that has not finished); its campaign
file, model, aim (an aimed run stays aimed) and recorded model settings are reused, so the
resumed run is the same run — `tierlock run` would resume the latest run of a campaign and model,
which after `--new` or an aimed run is not always the interrupted one. Secrets were never
recorded (they are masked): give them again as `-M` or through the environment.
"""

from __future__ import annotations

from pathlib import Path

import click

from tierlock.sandbox import TierlockError

from ._aim import Aim
from ._backend import recorded_backend
from ._campaign_file import load_campaign
from ._cli_common import key_option, open_ledger, runs_option
from ._ledger import Ledger
from ._ledger_record import Record
from ._log_output import configure_logging
from ._model_args import MASK, merged_model_args, parse_model_args
from ._run_state import run_state


@click.command("resume")
@click.argument("run_id", metavar="[RUN_ID]", required=False)
@click.option(
    "-M",
    "model_args",
    multiple=True,
    help="Model argument key=value (a YAML scalar); needed again for secrets (never recorded).",
)
@click.option(
    "--model-config",
    type=click.Path(dir_okay=False, path_type=Path),
    help="YAML or JSON file of model arguments (-M wins).",
)
@click.option("--max-retries", type=click.IntRange(min=0), help="Retries of one model call.")
@click.option("--timeout", type=click.IntRange(min=1), help="Seconds one model call may take.")
@click.option("--quiet", "-q", is_flag=True, help="Print only the final verdict line.")
@runs_option
@key_option
def resume_command(
    run_id: str | None,
    model_args: tuple[str, ...],
    model_config: Path | None,
    max_retries: int | None,
    timeout: int | None,
    quiet: bool,
    runs_dir: Path,
    key_file: Path | None,
) -> int:
    """Resume RUN_ID (default: the newest run that has not finished) with its own campaign,
    model, aim and settings. Exit codes as `tierlock run`."""
    from ._cli_run import start_run

    configure_logging()
    parse_model_args(model_args)
    with open_ledger(runs_dir, readonly=True, key_file=key_file) as ledger:
        started = _find_run(ledger, run_id)
    if started.run_id.startswith("series-"):
        raise TierlockError(
            f"run {started.run_id} belongs to a checkpoint series: resume it with "
            "`tierlock series run SERIES_FILE`"
        )
    payload = started.payload
    source = payload.get("campaign_file")
    if not source:
        raise TierlockError(f"run {started.run_id} does not record its campaign file")
    camp = load_campaign(Path(source), warn=lambda p: click.echo(f"tierlock: {p}", err=True))
    recorded = {k: v for k, v in (payload.get("model_args") or {}).items() if v != MASK}
    args = {**recorded, **merged_model_args(None, model_config, model_args)}
    generate = dict(payload.get("generate_config") or {})
    if max_retries is not None:
        generate["max_retries"] = max_retries
    if timeout is not None:
        generate["timeout"] = timeout
    click.echo(f"resuming run {started.run_id} ({camp.name}, {started.model})")
    return start_run(
        camp, started.model, args, generate, aim=Aim.from_record(payload.get("aim")),
        runs_dir=runs_dir, key_file=key_file, quiet=quiet, run_id=started.run_id,
        backend=recorded_backend(payload).name,  # the run's own backend (docker when none)
    )  # fmt: skip


def _find_run(ledger: Ledger, run_id: str | None) -> Record:
    runs = ledger.runs()
    if run_id is not None:
        for r in runs:
            if r.run_id == run_id:
                return r
        known = ", ".join(r.run_id for r in runs[-5:]) or "none"
        raise TierlockError(f"no run {run_id!r} in {ledger.display} (latest: {known})")
    open_runs = [r for r in runs if run_state(ledger, r.run_id).finished is None]
    if not open_runs:
        raise TierlockError(
            f"every run in {ledger.display} has finished; start one with tierlock run"
        )
    return open_runs[-1]
