"""`tierlock selftest`: run the escape battery inside each policy's sandbox on this host.

Exit 0 only when every probe of every policy held; 2 when any did not; 1 for a user error (a
policy that does not load, no Docker). Text-only policies have no sandbox and are skipped.
"""

from __future__ import annotations

import json
from pathlib import Path

import anyio
import click
from rich.console import Console
from rich.table import Table

from tierlock.sandbox import TierlockError
from tierlock.sandbox._errors import display_path
from tierlock.sandbox._lint import load_runnable_policy
from tierlock.sandbox._selftest import SelftestReport, run_selftest

EXIT_PROBE_FAILED = 2


def _policies(paths: tuple[Path, ...], campaign: Path | None) -> list[Path]:
    out = list(paths)
    if campaign is not None:
        from ._campaign_file import load_campaign

        c = load_campaign(campaign)
        out += [c.policy_path(t) for t in c.tiers]
    if not out:
        raise TierlockError("name at least one policy file, or --campaign FILE")
    return out


def _table(report: SelftestReport, verbose: bool) -> Table:
    t = Table(title=f"{display_path(report.policy)}  ({report.policy_hash[:12]})", expand=False)
    t.add_column("probe")
    t.add_column("expectation")
    t.add_column("result")
    t.add_column("detail", overflow="fold")
    for p in report.probes:
        if p.held and not verbose:
            continue
        t.add_row(p.id, "contained", "[green]held[/]" if p.held else "[red]NOT HELD[/]", p.detail)
    return t


@click.command("selftest")
@click.argument("policies", nargs=-1, type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--campaign",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Test every sandboxed policy of this campaign file.",
)
@click.option("--all-probes", "verbose", is_flag=True, help="List probes that held too.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per policy on stdout.")
def selftest_command(
    policies: tuple[Path, ...], campaign: Path | None, verbose: bool, as_json: bool
) -> None:
    """Probe each policy's sandbox on this host: syscalls, sockets, kernel files, IPC,
    namespaces, limits, processes that outlive their command, quotas shared between samples."""
    console = Console()
    failed = False
    for path in _policies(policies, campaign):
        policy, _warnings = load_runnable_policy(path)
        if policy.tier == "text-only":
            if not as_json:
                console.print(f"{display_path(path)}: text-only, no sandbox to probe")
            continue
        report = anyio.run(run_selftest, str(path))
        failed |= not report.ok
        if as_json:
            click.echo(json.dumps(report.payload()))
            continue
        if report.failed or verbose:
            console.print(_table(report, verbose))
        held = len(report.probes) - len(report.failed)
        colour = "green" if report.ok else "red"
        console.print(
            f"[{colour}]{display_path(path)}: {held} of {len(report.probes)} probes held[/]"
        )
    if failed:
        raise click.exceptions.Exit(EXIT_PROBE_FAILED)
