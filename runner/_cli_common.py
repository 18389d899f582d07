"""What the runner's commands share: the runs directory and key options, opening the ledger
(verified, keyed), printing its head, and the console for tables.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import click
from rich.console import Console

from tierlock.sandbox import TierlockError
from tierlock.sandbox._userfile import check_dir

from ._anchor import ledger_head, ledger_key
from ._ledger import Ledger
from ._log_output import stderr_line

DEFAULT_MODEL = "tierlock/diligent"
LEDGER_FILE = "ledger.sqlite"


def console_out() -> Console:
    """Rich output on stdout; wide lines when it is not a terminal (logs, pipes)."""
    console = Console()
    return console if console.is_terminal else Console(width=200)


def runs_option(f: Any) -> Any:
    return click.option(
        "--runs-dir",
        type=click.Path(file_okay=False, path_type=Path),
        default=lambda: os.environ.get("TIERLOCK_RUNS", "runs"),
        show_default="$TIERLOCK_RUNS or ./runs",
        help="Directory of run logs and the ledger (ledger.sqlite).",
    )(f)


def key_option(f: Any) -> Any:
    return click.option(
        "--key-file",
        type=click.Path(dir_okay=False, path_type=Path),
        default=None,
        help="Key of a keyed ledger (HMAC per record), kept outside the runs directory "
        "(or $TIERLOCK_LEDGER_KEY_FILE, or the key itself in $TIERLOCK_LEDGER_KEY).",
    )(f)


def open_ledger(
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


def print_head(ledger: Ledger, err: bool = False) -> None:
    """The anchor to keep outside the runs directory (see `tierlock verify --expect-head`)."""
    head = ledger_head(ledger)
    if err:  # beside an error: a JSON event instead when JSON goes to stderr
        stderr_line(f"ledger head: {head}", "ledger_head", head=head)
    else:
        click.echo(f"ledger head: {head}")
