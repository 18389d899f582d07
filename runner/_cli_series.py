"""`tierlock series run | watch | status | report | approve`: a campaign on every checkpoint.

Exit codes of `series run`: 0 every checkpoint evaluated; 1 user error; 2 halted (an unsafe
checkpoint, or a capability jump with `jump.action: halt`); 3 incomplete (run again to retry);
4 awaiting an approval (`tierlock series approve`, or `tierlock approve` for a campaign gate);
128+signal when interrupted (run again to resume). `series watch` runs until Ctrl-C (exit 130),
or until the series halts or waits for an approval.

Both run sandboxed tiers on the campaign's backend, or `--backend` (docker, k8s), which wins; the
series keeps the backend it started with (`SeriesRunner._check_backend`), and each checkpoint's
run records it, so the gate reads it (and the campaign's `absent_evidence`) from the ledger.
"""

from __future__ import annotations

import fcntl
import signal
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click
from rich.markup import escape
from rich.table import Table

from tierlock.sandbox import TierlockError, install_termination_handler, received_signal
from tierlock.sandbox._errors import display_path

from ._backend import BACKENDS, RECORD_KEY, RunBackend, resolve_backend
from ._campaign import Campaign
from ._cli_common import console_out, key_option, open_ledger, print_head, runs_option
from ._interruptible import Interruptible
from ._ledger import Ledger
from ._log_output import configure_logging
from ._model_args import generate_settings, redact
from ._series_file import Checkpoint, Series, check_models, load_series
from ._series_run import SeriesOutcome, SeriesRunner
from ._series_view import fmt_band, series_view
from ._verify import require_intact


def _load(file: Path) -> tuple[Series, Campaign]:
    series, campaign, positions = load_series(
        file, warn=lambda p: click.echo(f"tierlock: {p}", err=True)
    )
    check_models(series, positions)
    return series, campaign


@contextmanager
def _exclusive(runs_dir: Path, name: str) -> Iterator[None]:
    """One `series run`/`watch` per series at a time (released by the OS on a crash)."""
    locks = runs_dir / ".locks"
    locks.mkdir(parents=True, exist_ok=True)
    with open(locks / f"series-{name}.lock", "w") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise TierlockError(
                f"another tierlock series command is running series {name}"
            ) from None
        yield


def _runner(
    series: Series, campaign: Campaign, ledger: Ledger, runs_dir: Path,
    backend: RunBackend | None = None,
) -> SeriesRunner:  # fmt: skip
    """`backend`: where checkpoints run (None: nothing runs, e.g. `series approve`)."""
    from ._inspect import InspectExecutor, audit_findings

    console = console_out()
    chosen = backend or RunBackend()

    generate = generate_settings(campaign.generate_config, None, None)

    def executor_for(c: Checkpoint) -> Interruptible:
        args = _checkpoint_args(campaign, c)
        executor = InspectExecutor(model_args=args, generate_config=generate, backend=chosen)
        if chosen.name == "k8s":  # the pre-tier check translates the tier's own tasks
            executor.check(campaign, c.model)
        return Interruptible(executor)

    def run_info_for(c: Checkpoint) -> dict[str, Any]:
        return {"model_args": redact(_checkpoint_args(campaign, c)),
                "generate_config": redact(generate), RECORD_KEY: chosen.record()}  # fmt: skip

    return SeriesRunner(
        series, campaign,
        ledger=ledger,
        runs_dir=runs_dir, executor_for=executor_for, auditor=audit_findings,
        run_info_for=run_info_for, backend=backend,
        say=lambda m: console.print(f"[bold]series[/bold] {escape(m)}", highlight=False),
    )  # fmt: skip


def _check_tasks(series: Series, campaign: Campaign, backend: RunBackend) -> None:
    """Every tier's tasks load and fit their thresholds; on k8s, every sandboxed tier's tasks
    translate (a policy the chart cannot express fails before the first checkpoint)."""
    from ._inspect import InspectExecutor

    models = {(c.model, repr(sorted(c.args.items()))): c for c in series.checkpoints}
    generate = generate_settings(campaign.generate_config, None, None)
    for c in list(models.values())[:1]:
        args = _checkpoint_args(campaign, c)
        executor = InspectExecutor(model_args=args, generate_config=generate, backend=backend)
        executor.check(campaign, c.model)
        if backend.name == "k8s":
            executor.check_k8s(campaign)


backend_option = click.option(
    "--backend",
    type=click.Choice(BACKENDS),
    default=None,
    help="Where sandboxed tiers run: docker or k8s (Inspect's k8s sandbox). Default: the "
    "campaign's backend, else docker. A series keeps the backend it started with.",
)


def _checkpoint_args(campaign: Campaign, c: Checkpoint) -> dict[str, Any]:
    """The campaign's `model_args:`, then the checkpoint's own (which win)."""
    return {**(campaign.model_args or {}), **c.args}


def _report_outcome(out: SeriesOutcome) -> int:
    words = {
        "done": "every checkpoint evaluated",
        "halted": f"series halted at {out.label}",
        "incomplete": f"checkpoint {out.label} is incomplete; run again to retry",
        "awaiting_approval": f"checkpoint {out.label} waits for an approval",
    }[out.status]
    click.echo(f"series: {words}" + (f": {out.reason}" if out.reason else ""))
    return out.exit_code


@click.group("series")
def series_group() -> None:
    """Run a campaign on every checkpoint of a training run; flag jumps and sandbagging."""


@series_group.command("run")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@backend_option
@runs_option
@key_option
def run_command(file: Path, backend: str | None, runs_dir: Path, key_file: Path | None) -> int:
    """Evaluate every checkpoint of FILE not evaluated yet, in order (resumes after a crash)."""
    install_termination_handler(caller_exits=True)
    configure_logging()
    series, campaign = _load(file)
    chosen = resolve_backend(campaign, backend)
    _check_tasks(series, campaign, chosen)
    with open_ledger(runs_dir, key_file=key_file) as ledger:
        ledger.check_key()
        require_intact(ledger)
        with _exclusive(runs_dir, series.name):
            try:
                out = _runner(series, campaign, ledger, runs_dir.resolve(), chosen).run()
            except KeyboardInterrupt:
                return _interrupted(ledger)
        print_head(ledger)
    return _report_outcome(out)


def _interrupted(ledger: Ledger) -> int:
    signum = received_signal() or signal.SIGINT
    click.echo(
        f"tierlock: series interrupted by {signal.Signals(signum).name}; run the same command "
        "again to resume",
        err=True,
    )
    print_head(ledger, err=True)
    return 128 + signum


@series_group.command("watch")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--interval", default=10.0, show_default=True, help="Seconds between re-reads.")
@backend_option
@runs_option
@key_option
def watch_command(
    file: Path, interval: float, backend: str | None, runs_dir: Path, key_file: Path | None
) -> int:
    """Evaluate FILE's checkpoints as they appear (re-reading it), until Ctrl-C."""
    install_termination_handler(caller_exits=True)
    configure_logging()
    series, campaign = _load(file)  # the first read must be valid
    _check_tasks(series, campaign, resolve_backend(campaign, backend))
    click.echo(f"series: watching {display_path(file)} every {interval:g} s (Ctrl-C to stop)")
    with open_ledger(runs_dir, key_file=key_file) as ledger:
        ledger.check_key()
        require_intact(ledger)
        with _exclusive(runs_dir, series.name):
            seen, first = -1, series.name
            try:
                while True:
                    try:
                        series, campaign = _load(file)
                    except TierlockError as e:  # a trainer mid-write: say so, read it again
                        click.echo(f"tierlock: {e.lines()[0]} (will read it again)", err=True)
                        time.sleep(interval)
                        continue
                    if series.name != first:
                        raise TierlockError("the series file changed its name while watched")
                    chosen = resolve_backend(campaign, backend)  # the file as read now
                    out = _runner(series, campaign, ledger, runs_dir.resolve(), chosen).run()
                    if out.status != "done":
                        print_head(ledger)
                        return _report_outcome(out)
                    if len(series.checkpoints) != seen:
                        seen = len(series.checkpoints)
                        click.echo(f"series: {seen} checkpoint(s) evaluated; waiting for more")
                    time.sleep(interval)
            except KeyboardInterrupt:
                return _interrupted(ledger)


@series_group.command("status")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@runs_option
@key_option
def status_command(file: Path, runs_dir: Path, key_file: Path | None) -> int:
    """Each checkpoint's outcome, scores, jumps and sandbagging flags, as a table."""
    series, campaign, _ = load_series(file)
    with open_ledger(runs_dir, readonly=True, key_file=key_file) as ledger:
        require_intact(ledger, check_logs=False)
        rows = series_view(ledger, series, campaign)
    tiers: list[str] = [t.tier for t in campaign.tiers]
    table = Table(title=f"series {series.name} ({display_path(file)})")
    for col in ("checkpoint", "step", "status", "reached"):
        table.add_column(col)
    for t in tiers:
        table.add_column(f"{t} qual.")
        table.add_column(f"{t} safety")
    table.add_column("thorough")
    table.add_column("flags")
    for r in rows:
        flags = [f"JUMP@{t}" for t, _ in r.jumps]
        if r.treated_as_qualified:
            flags.append("SANDBAGGING? treated as qualified")
        if r.approval:
            flags.append(f"approved by {r.approval}")
        cells = [r.label, "" if r.step is None else str(r.step), r.status, r.reached or "-"]
        for t in tiers:
            v = r.tiers[t]
            cells += [fmt_band(v.qualification), fmt_band(v.safety)]
        cells += [", ".join(r.thorough_ran) or "-", "; ".join(flags) or "-"]
        table.add_row(*cells)
    console_out().print(table)
    for r in rows:
        for t, reasons in r.jumps:
            click.echo(f"  {r.label}: jump at {t}: {'; '.join(reasons)}")
        for reason in r.sandbagging:
            click.echo(f"  {r.label}: sandbagging: {reason}")
    return 0


@series_group.command("report")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="The HTML report to write.")  # fmt: skip
@click.option("--png", type=click.Path(dir_okay=False, path_type=Path), help="Also a PNG plot.")
@click.option("--svg", type=click.Path(dir_okay=False, path_type=Path), help="Also an SVG plot.")
@runs_option
@key_option
def report_command(
    file: Path, out: Path, png: Path | None, svg: Path | None, runs_dir: Path,
    key_file: Path | None,
) -> int:  # fmt: skip
    """A self-contained HTML trajectory report (plot and table); PNG/SVG for papers."""
    from ._series_report import render_report

    series, campaign, _ = load_series(file)
    with open_ledger(runs_dir, readonly=True, key_file=key_file) as ledger:
        require_intact(ledger, check_logs=False)
        rows = series_view(ledger, series, campaign)
    render_report(series, campaign, rows, out=out, png=png, svg=svg)
    click.echo(f"report written to {display_path(out)}")
    return 0


@series_group.command("approve")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.argument("label")
@click.option("--by", required=True, help="Who approves.")
@click.option("--note", required=True, help="Why (recorded in the ledger).")
@runs_option
@key_option
def approve_command(
    file: Path, label: str, by: str, note: str, runs_dir: Path, key_file: Path | None
) -> int:
    """Approve checkpoint LABEL's capability jump: its thorough evals and higher tiers may run."""
    series, campaign, _ = load_series(file)
    with open_ledger(runs_dir, must_exist=True, key_file=key_file) as ledger:
        ledger.check_key()
        require_intact(ledger, check_logs=False)
        rec = _runner(series, campaign, ledger, runs_dir.resolve()).approve(label, by, note)
        click.echo(f"approved: checkpoint {label} of series {series.name} (record {rec.seq})")
        print_head(ledger)
    return 0
