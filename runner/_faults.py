"""A test-only fault point: SIGKILL the process right after the N-th ledger record commits.

Set `TIERLOCK_FAULT_AFTER=N@/absolute/path/to/ledger.sqlite` and the process kills itself with
SIGKILL (no cleanup, no handler, as a power cut would) right after its N-th append to *that*
ledger file has committed. The hook fires only when both the count and the resolved ledger path
match, so a stray variable in someone's shell cannot stop a real run: it would have to name the
very ledger being written. `tests/test_runner_faults.py` uses it to crash `tierlock run` at every
ledger write point in turn.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

ENV = "TIERLOCK_FAULT_AFTER"

_appends: dict[Path, int] = {}


def after_append(ledger: Path) -> None:
    """Count one committed append to `ledger`; SIGKILL this process at the requested one."""
    spec = os.environ.get(ENV)
    if not spec:
        return
    count, at, target = spec.partition("@")
    if not at or not count.isdigit() or Path(target).resolve() != ledger.resolve():
        return
    key = ledger.resolve()
    _appends[key] = _appends.get(key, 0) + 1
    if _appends[key] == int(count):
        os.kill(os.getpid(), signal.SIGKILL)
