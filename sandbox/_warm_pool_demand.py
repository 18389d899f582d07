"""Which warm pool serves a sandbox config (`pool_key`), and how big it may be (`_warm_pool`):
its size setting, Inspect's `max_sandboxes` for `tierlock`, and the samples still to come.

Inspect does not hand a sandbox provider its eval's size, so the demand is read from Inspect's
process-wide eval registry (`inspect_ai._control.eval_state`, the control channel's per-eval
totals) and its active samples: for each running eval, its samples minus those finished, minus
those running that already asked for a sandbox. These are Inspect internals: when they cannot be
read, `demand` is None and the pool falls back to its size (at most that many containers unused
at the end). `max_sandboxes` is read from Inspect's resizable limiter for `tierlock` (its
`--max-sandboxes`, or the provider's default concurrency), at each refill.
"""

from __future__ import annotations

import contextlib
import weakref
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ._env import env_int

if TYPE_CHECKING:
    from ._config import SandboxConfig

SIZE_ENV = "TIERLOCK_WARM_POOL"
DEFAULT_SIZE = 0


def pool_size() -> int:
    """`$TIERLOCK_WARM_POOL` (containers per sandbox config; 0 = off)."""
    return env_int(SIZE_ENV, DEFAULT_SIZE, low=0, high=256)


def poolable(mode: str, services: bool) -> bool:
    """Whether a sandbox can be made before its sample: no per-sample network or sidecars."""
    return mode not in ("internal", "allowlist") and not services


_took: weakref.WeakSet[Any] = weakref.WeakSet()
"""Inspect's active samples that have asked for a sandbox (no longer demand)."""

_default_limit = 4
"""The provider's default concurrency (set at task start), when Inspect has no limiter."""


def set_default_limit(n: int) -> None:
    global _default_limit
    _default_limit = n


def max_sandboxes() -> int:
    """Inspect's current `max_sandboxes` for `tierlock` (its resizable limiter), else the
    provider's default concurrency."""
    with contextlib.suppress(Exception):
        from inspect_ai.util._concurrency import sandbox_limiters

        limiter = sandbox_limiters().get("tierlock")
        if limiter is not None:
            return int(limiter.concurrency)
    return _default_limit


def demand() -> int | None:
    """Samples of the running evals that have not asked for a sandbox yet: not started, or
    started and not yet at `sample_init`. None when Inspect does not say (outside an eval)."""
    try:
        from inspect_ai._control.eval_state import get_eval_states
        from inspect_ai.log._samples import active_samples

        states = [s for s in get_eval_states() if s.completed_at is None]
        if not states:
            return None
        active = list(active_samples())
        total = 0
        for s in states:
            mine = [a for a in active if getattr(a, "eval_id", None) == s.eval_id]
            waiting = sum(1 for a in mine if a not in _took)
            total += max(0, s.total - s.terminal - len(mine)) + waiting
        return total
    except Exception:
        return None


def note_sample() -> None:
    """The active sample asked for its sandbox: it is no longer demand."""
    with contextlib.suppress(Exception):
        from inspect_ai.log._samples import sample_active

        active = sample_active()
        if active is not None:
            _took.add(active)


def pool_key(path: Path, config: SandboxConfig) -> str:
    """Which pool serves a sandbox config: its policy file (and its services, never pooled)."""
    return f"{path}|{config.model_dump_json(exclude={'policy'})}"


def pool_key_for(config: SandboxConfig) -> str | None:
    """`pool_key` of a config whose policy file is not loaded (None: it cannot be found)."""
    from ._sandbox_policy import find_policy_file

    try:
        return pool_key(find_policy_file(config.policy), config)
    except Exception:
        return None
