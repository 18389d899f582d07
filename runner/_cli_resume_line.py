"""The exact command that resumes a run, for every message that says a run can be resumed."""

from __future__ import annotations

import os
import shlex
from pathlib import Path

from ._anchor import Head
from ._ledger import Ledger


def resume_command_line(run_id: str, runs_dir: Path) -> str:
    """`tierlock resume RUN_ID` (with `--runs-dir` when it is not the default one)."""
    default = Path(os.environ.get("TIERLOCK_RUNS", "runs"))
    parts = ["tierlock", "resume", run_id]
    if runs_dir.resolve() != default.resolve():
        parts += ["--runs-dir", str(runs_dir)]
    return shlex.join(parts)


def run_written_since(ledger: Ledger, head: Head) -> str | None:
    """The run of the newest record written after the ledger head `head`, if any: the run a
    command was working on when it was interrupted."""
    seq = head.seq or 0
    last = None
    for rec in ledger.records():
        if rec.seq > seq:
            last = rec
    return last.run_id if last is not None else None
