"""Containment is checked on this host before a sandboxed tier starts.

Before a tier's tasks run, the executor's `selftest(policy)` (the Inspect executor: the escape
battery of `tierlock selftest`, cached host-wide per host × boot × kernel × engine × runtime ×
effective policy × battery) reports whether every probe held. The result is recorded in the
ledger (`selftest` record: the key, the counts and any probe that did not hold), and a tier whose
sandbox did not hold does not start: that is a fault of this host or policy, not evidence about
the model, so it ends the run as a user-facing error naming the probes.

Executors without a `selftest` method (the test fakes) skip the check.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

from tierlock.sandbox import TierlockError
from tierlock.sandbox._errors import display_path


class SelftestingExecutor(Protocol):
    def selftest(self, policy: Path) -> dict[str, Any] | None: ...


def check_host(executor: object, policy: Path) -> dict[str, Any] | None:
    """The selftest payload to record for a tier under `policy` (None: nothing to check)."""
    probe = getattr(executor, "selftest", None)
    return probe(policy) if probe is not None else None


def refuse_unless_held(payload: dict[str, Any] | None, policy: Path, tier: str) -> None:
    """Raise `TierlockError` (naming the probes) when the recorded selftest did not hold."""
    if payload is None or payload.get("ok"):
        return
    if payload.get("refused"):  # a pre-tier check that is not the battery (the k8s backend)
        raise TierlockError(str(payload["refused"]))
    failed = payload.get("failed") or []
    shown = ", ".join(f["id"] for f in failed[:5]) + (
        f" and {len(failed) - 5} more" if len(failed) > 5 else ""
    )
    raise TierlockError(
        f"{display_path(policy)}: tier {tier} does not start: its sandbox did not hold "
        f"{len(failed)} of {payload.get('probes', '?')} containment probes on this host "
        f"({shown}); run `tierlock selftest {display_path(policy)}` for details"
    )


def selftest_payload(policy: Path) -> dict[str, Any] | None:
    """Run (or reuse) the selftest of a sandboxed policy; None for a policy with no sandbox."""
    from tierlock.sandbox._lint import load_runnable_policy
    from tierlock.sandbox._selftest import cached_selftest

    loaded, _ = load_runnable_policy(policy)
    if loaded.tier == "text-only":
        return None
    report, key, cached = cached_selftest(str(policy))
    return {
        "ok": report.ok,
        "cached": cached,
        "key": key,
        "probes": len(report.probes),
        "failed": [{"id": p.id, "detail": p.detail} for p in report.failed],
    }
