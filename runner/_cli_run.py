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

import os
import signal
import time
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.table import Table

from tierlock.sandbox import (
    TierlockError,
    install_termination_handler,
    raise_if_terminated,
    received_signal,
)
from tierlock.sandbox._userfile import check_dir

from ._anchor import check_head, ledger_head, ledger_key, parse_head
from ._campaign_file import load_campaign
from ._console import RunConsole
from ._endpoint import EndpointRefused, EndpointUnavailable
from ._gate import TaskResult
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
from ._phases import run_cost
from ._progress import reporting_progress
from ._run import approve, run_campaign
from ._run_state import TierContext, TierExecutor, latest_run, run_state
from ._summary import tier_rows
from ._verify import UNCHECKED_MACS, require_intact

DEFAULT_MODEL = "tierlock/diligent"
LEDGER_FILE = "ledger.sqlite"


def _console() -> Console:
    """Rich output on stdout; wide lines when it is not a terminal (logs, pipes)."""
    console = Console()
    return console if console.is_terminal else Console(width=200)


def _runs_option(f: Any) -> Any:
    return click.option(
        "--runs-dir",
        type=click.Path(file_okay=False, path_type=Path),
        default=lambda: os.environ.get("TIERLOCK_RUNS", "runs"),
        show_default="$TIERLOCK_RUNS or ./runs",
        help="Directory of run logs and the ledger (ledger.sqlite).",
    )(f)


def _key_option(f: Any) -> Any:
    return click.option(
        "--key-file",
        type=click.Path(dir_okay=False, path_type=Path),
        default=None,
        help="Key of a keyed ledger (HMAC per record), kept outside the runs directory "
        "(or $TIERLOCK_LEDGER_KEY_FILE, or the key itself in $TIERLOCK_LEDGER_KEY).",
    )(f)


def _ledger(
    runs_dir: Path,
    must_exist: bool = False,
    *,
    readonly: bool = False,
    key_file: Path | None = None,
) -> Ledger:
    check_dir(runs_dir, "runs directory")  # not a file, a device (/dev/null), a symlink loop
    path = runs_dir / LEDGER_FILE
    if (must_exist or readonly) and not path.exists():
        raise TierlockError(f"no ledger at {path} (nothing has run yet)")
    return Ledger(path, readonly=readonly, key=ledger_key(key_file, runs_dir))


def _print_head(ledger: Ledger, err: bool = False) -> None:
    """The anchor to keep outside the runs directory (see `tierlock verify --expect-head`)."""
    head = ledger_head(ledger)
    if err:  # beside an error: a JSON event instead when JSON goes to stderr
        stderr_line(f"ledger head: {head}", "ledger_head", head=head)
    else:
        click.echo(f"ledger head: {head}")


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
@_runs_option
@_key_option
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
    executor = _Interruptible(inspect_executor)
    console = RunConsole(f"{camp.name} · {model}", [t.tier for t in camp.tiers], quiet=quiet)
    with _ledger(runs_dir, key_file=key_file) as ledger:
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
            _print_head(ledger, err=True)
            return code
        except EndpointRefused as e:  # every call refused (401/403/404): one line, exit 3
            stderr_line(f"tierlock: {e}", "endpoint_refused", "error")
            _print_head(ledger)
            return EndpointRefused.exit_code
        except TierlockError:
            if ledger_head(ledger) != start:  # records were written before the error
                _print_head(ledger, err=True)
            raise
        head = ledger_head(ledger)
        rows = tier_rows(ledger, outcome.run_id) if console.wants_summary else None
    console.finish(outcome, head, rows)
    return outcome.exit_code


class _Interruptible:
    """A tier executor that reports an interrupted eval as the interruption it is.

    Inspect absorbs Ctrl-C inside `eval_set`: it returns without the interrupted task's log
    (the log on disk says `cancelled`), which the gate would record as an incomplete tier. An
    interruption is not a verdict: `KeyboardInterrupt` ends the run before anything is recorded,
    and the next `tierlock run` resumes the tier.
    """

    def __init__(self, inner: TierExecutor) -> None:
        self.inner = inner

    def selftest(self, policy: Path) -> dict[str, Any] | None:
        """The inner executor's host check (`_selftest_gate`), when it has one."""
        probe = getattr(self.inner, "selftest", None)
        return probe(policy) if probe is not None else None

    def run_tier_tasks(self, ctx: TierContext) -> list[TaskResult]:
        started = time.time()
        try:
            results = self.inner.run_tier_tasks(ctx)
        except (EndpointRefused, EndpointUnavailable):  # the watch cancelled the eval
            raise
        except Exception:
            if _cancelled_since(ctx.log_dir, started):
                raise KeyboardInterrupt from None
            raise
        raise_if_terminated()
        if any(r.status == "cancelled" for r in results) or _cancelled_since(ctx.log_dir, started):
            raise KeyboardInterrupt
        return results


def _cancelled_since(log_dir: Path, since: float) -> bool:
    """Whether an Inspect log written in `log_dir` since `since` (epoch seconds) was cancelled."""
    from inspect_ai.log import read_eval_log

    from ._audit._safezip import guard_for_inspect

    for path in log_dir.glob("*.eval") if log_dir.is_dir() else ():
        try:
            recent = path.stat().st_mtime >= since - 1  # coarse file-system clocks
            if recent:
                guard_for_inspect(path)  # no zip bomb reaches Inspect's reader
            if recent and read_eval_log(str(path), header_only=True).status == "cancelled":
                return True
        except Exception:
            continue
    return False


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


@click.command("status")
@click.option("--all", "show_all", is_flag=True, help="Every run, not only the latest per model.")
@_runs_option
@_key_option
def status_command(show_all: bool, runs_dir: Path, key_file: Path | None) -> int:
    """Each model's position on each campaign, from the ledger (verified first: a broken chain
    is an error naming the record)."""
    with _ledger(runs_dir, readonly=True, key_file=key_file) as ledger:
        require_intact(
            ledger, check_logs=False, warn=lambda m: click.echo(f"tierlock: {m}", err=True)
        )
        runs = ledger.runs()
        if not show_all:
            latest: dict[tuple[str, str], Any] = {}
            for r in runs:
                latest[(r.campaign, r.model)] = r
            runs = list(latest.values())
        table = Table(title=f"tierlock runs ({ledger.path})")
        for col in ("campaign", "model", "run", "outcomes", "cost", "position", "updated"):
            table.add_column(col)
        for r in runs:
            st = run_state(ledger, r.run_id)
            names = [t["tier"] for t in st.tiers]
            cleared = [n for n in names if st.passed(n)]
            table.add_row(
                r.campaign,
                r.model,
                r.run_id,
                ", ".join(f"{n} {st.outcome(n)}" for n in names if n in st.verdicts) or "-",
                run_cost(st),
                _position(st, names, cleared),
                st.last.time[:19].replace("T", " ") if st.last else "",
            )
        _console().print(table)
    return 0


def _position(st: Any, names: list[str], cleared: list[str]) -> str:
    if st.finished is not None:
        p = st.finished.payload
        if p["outcome"] == "top":
            return "reached the top"
        if p["outcome"] == "not_qualified":
            return f"not qualified at {p['tier']}"
        return f"halted at {p['tier']} (unsafe)"
    nxt = next((n for n in names if n not in cleared), None)
    if nxt is None:
        return "all tiers clean"
    last = st.last.kind if st.last else ""
    if last == "awaiting_approval":
        return f"awaiting approval for {nxt}"
    v = st.last_verdict.get(nxt)
    if (
        v is not None
        and last in ("verdict", "run_resumed")
        and v.payload.get("outcome") == "incomplete"
    ):
        return f"incomplete at {nxt}"
    return f"at {nxt} (in progress or interrupted)"


@click.command("verify")
@click.option("--no-logs", is_flag=True, help="Check the hash chain only, not the cited logs.")
@click.option("--head", "show_head", is_flag=True, help="Print the head (SEQ:HASH) on stdout.")
@click.option(
    "--expect-head",
    metavar="[SEQ:]HASH",
    help="A head printed earlier (by run, approve or verify --head): fail unless the chain "
    "still holds it (catches truncation and rewriting).",
)
@_runs_option
@_key_option
def verify_command(
    no_logs: bool,
    show_head: bool,
    expect_head: str | None,
    runs_dir: Path,
    key_file: Path | None,
) -> int:
    """Recompute the ledger's hash chain, its macs (keyed ledger) and every cited log's SHA-256;
    report the first break. Opens the ledger read-only.

    \b
    Exit codes:
      0  intact (and holds --expect-head)
      1  not a ledger, a bad option value
      2  a broken record or log, or --expect-head is not in the chain
      3  the chain is intact but keyed, and no key was given: its macs were not checked
    """
    expected = parse_head(expect_head) if expect_head is not None else None
    with _ledger(runs_dir, readonly=True, key_file=key_file) as ledger:
        res = ledger.verify(check_logs=not no_logs)
        missing = check_head(ledger, expected) if expected is not None and res.ok else None
    if not res.ok:
        click.echo(f"ledger broken at {res.where}: {res.problem}", err=True)
        return 2
    if missing is not None:
        click.echo(f"ledger does not hold the expected head: {missing}", err=True)
        return 2
    summary = f"ledger intact: {res.records} records, {res.logs_checked} log hashes checked"
    if res.macs_checked:
        summary += f", {res.macs_checked} macs checked"
    if expected is not None:
        summary += f"; holds the expected head {expected}"
    if res.macs_unchecked:
        unchecked = summary.replace("ledger intact", "ledger NOT verified: chain unbroken", 1)
        click.echo(f"{unchecked}; {UNCHECKED_MACS}", err=True)
        return 3
    click.echo(summary, err=show_head)
    if show_head:
        click.echo(f"{res.head_seq}:{res.head_hash}")
    return 0


@click.command("approve")
@click.argument("run_id", metavar="RUN")
@click.option("--tier", required=True, help="The tier the approval lets the run enter.")
@click.option("--by", "by", required=True, help="Who approves.")
@click.option("--note", required=True, help="Why (recorded in the ledger).")
@_runs_option
@_key_option
def approve_command(
    run_id: str, tier: str, by: str, note: str, runs_dir: Path, key_file: Path | None
) -> int:
    """Record a named human's approval for RUN to enter TIER; the next `tierlock run` continues."""
    configure_logging()
    with _ledger(runs_dir, must_exist=True, key_file=key_file) as ledger:
        ledger.check_key()
        require_intact(ledger, check_logs=False)
        rec = approve(ledger, run_id, tier, by, note)
        click.echo(f"approved: run {run_id} may enter {tier} (ledger record {rec.seq})")
        _print_head(ledger)
    return 0


RUNNER_COMMANDS = (run_command, status_command, verify_command, approve_command)
"""Registered at the top level of `tierlock` by `runner/cli.py`."""
