"""The `tierlock` command line. Each command group lives in its own module."""

from __future__ import annotations

import atexit
import gc
import os
import sys
import tempfile
import traceback
from pathlib import Path
from typing import NoReturn

import click

from tierlock.runner._cli_aim import campaign_group
from tierlock.runner._cli_audit import audit_command
from tierlock.runner._cli_init import init_command, task_group
from tierlock.runner._cli_ledger import LEDGER_COMMANDS
from tierlock.runner._cli_policy import policy as policy_group
from tierlock.runner._cli_resume import resume_command
from tierlock.runner._cli_run import RUNNER_COMMANDS
from tierlock.runner._cli_sandbox import cleanup_command, images
from tierlock.runner._cli_selftest import selftest_command
from tierlock.runner._cli_series import series_group
from tierlock.runner._log_output import (
    LOG_FORMATS,
    LogFormat,
    close_output,
    set_output,
    stderr_line,
)
from tierlock.sandbox import TierlockError
from tierlock.sandbox._userfile import os_reason, short


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="tierlock")
@click.option(
    "--log-format",
    type=click.Choice(LOG_FORMATS),
    default="human",
    envvar="TIERLOCK_LOG_FORMAT",
    show_default=True,
    help="json: every event as one JSON object per line on stderr (machines); stdout keeps "
    "the result ($TIERLOCK_LOG_FORMAT).",
)
@click.option(
    "--log-file",
    type=click.Path(dir_okay=False, path_type=Path),
    envvar="TIERLOCK_LOG_FILE",
    help="Append every event as a JSON line to this file; the output for people is unchanged "
    "($TIERLOCK_LOG_FILE).",
)
def cli(log_format: LogFormat, log_file: Path | None) -> None:
    """tierlock: run agent evals tier by tier, each inside the sandbox its policy allows."""
    set_output(log_format, log_file)


# Command groups register here, one module each (keep imports at module level so errors show).
for _command in (*RUNNER_COMMANDS, *LEDGER_COMMANDS):  # run; status, verify, approve
    cli.add_command(_command)
cli.add_command(resume_command)
cli.add_command(campaign_group)
cli.add_command(policy_group)
cli.add_command(audit_command)
cli.add_command(images)
cli.add_command(cleanup_command)
cli.add_command(selftest_command)
cli.add_command(series_group)
cli.add_command(init_command)
cli.add_command(task_group)


def main() -> None:
    """Console entry point: user errors become one line on stderr and exit code 1.

    A path the user named that the system refuses (`OSError` with a file name) is a user error
    too. Anything else unexpected is a bug: one line saying so, and the traceback written to a
    file (never to the terminal, where it would hide the one line that matters).
    """
    _leave_heap_at_exit()
    try:
        rv = _main()
    except TierlockError as e:
        for line in e.lines():
            stderr_line(f"tierlock: {line}", "error", "error")
        sys.exit(getattr(e, "exit_code", 1))  # 1, or its own (a full runs directory: 3)
    except (click.exceptions.Abort, KeyboardInterrupt):
        click.echo("tierlock: aborted", err=True)
        sys.exit(130)
    except click.BadParameter as e:
        if isinstance(e, click.MissingParameter):  # the command line itself: usage, exit 2
            _usage(e)
        click.echo(f"{_where(e)}: {e.format_message()}", err=True)  # a value the user gave
        sys.exit(1)
    except click.UsageError as e:  # the command line itself: one line and where to look
        _usage(e)
    except click.ClickException as e:
        e.show()
        sys.exit(e.exit_code)
    except click.exceptions.Exit as e:
        sys.exit(e.exit_code)
    except BrokenPipeError:  # stdout closed early (`| head`): nothing left to say
        _silence_stdout()
        sys.exit(141)
    except OSError as e:
        if e.filename is None:
            _bug(e)
        stderr_line(f"tierlock: {short(e.filename)}: {os_reason(e)}", "error", "error")
        sys.exit(1)
    except Exception as e:
        _bug(e)
    sys.exit(rv if isinstance(rv, int) else 0)


def _leave_heap_at_exit() -> None:
    """At exit, once every exit handler registered after this one has run, freeze the heap.

    With Inspect loaded the heap holds millions of objects, and the interpreter's teardown
    garbage-collects them again and again (about 0.5 s per `tierlock` command) only for the
    operating system to reclaim the memory anyway. Frozen objects are skipped by those passes;
    exit handlers still all run. Nothing of tierlock's waits for those passes: the ledger
    commits and syncs each record, files are closed by `with` blocks, and Docker objects are
    removed by `main`'s own code paths and by exit handlers (`_signals`, `_sample_box`).
    """
    atexit.unregister(gc.freeze)  # once, however often `main` is called in one process
    atexit.register(gc.freeze)


def _main() -> object:
    try:
        return cli.main(standalone_mode=False)
    finally:
        close_output()


def _usage(e: click.UsageError) -> NoReturn:
    where = _where(e)
    click.echo(f"{where}: {e.format_message()} (see '{where} -h')", err=True)
    sys.exit(e.exit_code)


def _where(e: click.UsageError) -> str:
    return e.ctx.command_path if e.ctx is not None else "tierlock"


def _silence_stdout() -> None:
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except OSError:
        pass


def _bug(e: BaseException) -> NoReturn:
    """An unexpected exception: one line naming it as a bug and where its traceback is."""
    text = "".join(traceback.format_exception(e))
    try:
        fd, path = tempfile.mkstemp(prefix="tierlock-crash-", suffix=".txt")
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(f"tierlock {' '.join(sys.argv[1:])}\n{text}")
        where = f"traceback written to {path}"
    except OSError as write_error:
        where = f"traceback could not be written ({os_reason(write_error)})"
    first = " ".join(str(e).split())[:300]
    stderr_line(
        f"tierlock: internal error (a bug in tierlock, please report it): "
        f"{type(e).__name__}: {first}; {where}",
        "error",
        "error",
    )
    sys.exit(1)
