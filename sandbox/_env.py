"""Numbers read from `TIERLOCK_*` environment variables: unset means the default, anything else
must parse and lie in its range, or it is one `SandboxError` line naming the variable."""

from __future__ import annotations

import math
import os

from ._errors import SandboxError


def env_int(name: str, default: int, *, low: int, high: int) -> int:
    """`$name` as a whole number in [low, high]; `default` when unset or empty."""
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        n = int(raw)
    except ValueError:
        n = None
    if n is None or not low <= n <= high:
        raise SandboxError(f"${name} must be a whole number from {low} to {high}, not {raw!r}")
    return n


def env_seconds(name: str, default: float, *, high: float) -> float:
    """`$name` as a number of seconds above 0 and at most `high`; `default` when unset or empty."""
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        seconds = float(raw)
    except ValueError:
        seconds = math.nan
    if not 0 < seconds <= high:  # NaN fails this too
        raise SandboxError(f"${name} must be a number of seconds above 0 and at most {high:g}, "
                           f"not {raw!r}")
    return seconds
