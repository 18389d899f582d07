"""The `tierlock` command line. Each command group lives in its own module."""

from __future__ import annotations

import sys

import click

from runner._cli_audit import audit_command
from runner._cli_policy import policy as policy_group
from runner._cli_run import RUNNER_COMMANDS
from runner._cli_sandbox import cleanup_command, images
from runner._cli_selftest import selftest_command
from sandbox import TierlockError


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="tierlock")
def cli() -> None:
    """tierlock: run agent evals tier by tier, each inside the sandbox its policy allows."""


# Command groups register here, one module each (keep imports at module level so errors show).
for _command in RUNNER_COMMANDS:  # run, status, verify, approve
    cli.add_command(_command)
cli.add_command(policy_group)
cli.add_command(audit_command)
cli.add_command(images)
cli.add_command(cleanup_command)
cli.add_command(selftest_command)


def main() -> None:
    """Console entry point: user errors become one line on stderr and exit code 1."""
    try:
        rv = cli.main(standalone_mode=False)
    except TierlockError as e:
        for line in e.lines():
            click.echo(f"tierlock: {line}", err=True)
        sys.exit(1)
    except click.exceptions.Abort:
        click.echo("tierlock: aborted", err=True)
        sys.exit(130)
    except click.ClickException as e:
        e.show()
        sys.exit(e.exit_code)
    except click.exceptions.Exit as e:
        sys.exit(e.exit_code)
    sys.exit(rv if isinstance(rv, int) else 0)
