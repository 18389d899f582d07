"""A policy's `tools.approval`, applied to every tool call of every sample in a tierlock sandbox.

Inspect takes an approval policy per task or per eval, and an eval-level one (`--approval`)
replaces the task's. A policy's approval is a floor, not a default: the provider installs it for
each sample it makes (`apply_approval`, called from `sample_init`, whose context the sample's tool
calls run in), in front of whatever approver the eval or task installed, which then sees only the
calls the policy approved. Inspect records each decision as an `approval` event, and a rejected
call as an `approval` tool error, in the sample's transcript.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ._errors import PolicyError, Problem, display_path

if TYPE_CHECKING:
    from inspect_ai.approval import ApprovalPolicy

    from ._loader import LoadedPolicy

APPROVAL_KEY = ("tools", "approval")

_cache: dict[tuple[str, int], list[ApprovalPolicy]] = {}
_lock = threading.Lock()


def approval_of(loaded: LoadedPolicy) -> Path | None:
    """The approval file a policy names (resolved against the file that set it), checked to be
    an Inspect approval policy; None when it names none. `PolicyError` with file:line:col."""
    written = loaded.policy.tools.approval
    if written is None:
        return None
    path = loaded.resolve_path(APPROVAL_KEY, written.strip())
    try:
        read_approval(path)
    except Exception as e:
        reason = str(e).splitlines()[0] if str(e) else type(e).__name__
        problem = Problem(
            loaded.locate(APPROVAL_KEY), f"approval policy {written!r}: {reason}",
            rule="approval-file",
        )  # fmt: skip
        raise PolicyError(str(problem), [problem]) from None
    return path


def read_approval(path: Path) -> list[ApprovalPolicy]:
    """Inspect's approval policies of a file (cached until the file changes)."""
    from inspect_ai.approval import read_approval_policies

    from ._policy_files import read_approval_policy

    if not path.is_file():
        raise FileNotFoundError(f"not found (looked for {display_path(path)})")
    key = (str(path), path.stat().st_mtime_ns)
    with _lock:
        cached = _cache.get(key)
    if cached is None:
        read_approval_policy(path)  # first: its errors never quote the file (Inspect's may)
        cached = read_approval_policies(str(path))
        with _lock:
            _cache[key] = cached
    return cached


def apply_approval(path: Path) -> None:
    """Put the approval policies of `path` in front of the current context's tool approver (once:
    applying the same file again changes nothing)."""
    from inspect_ai.approval._apply import _tool_approver
    from inspect_ai.approval._policy import policy_approver

    current = _tool_approver.get(None)
    if getattr(current, "tierlock_approval", None) == str(path):
        return
    outer = getattr(current, "tierlock_outer", current)  # another policy's: replace, keep its outer
    inner = policy_approver(read_approval(path))

    async def approve(message: str, call: Any, view: Any, history: list[Any]) -> Any:
        first = await inner(message, call, view, history)
        if first.decision != "approve" or outer is None:
            return first
        return await outer(message, call, view, history)

    approve.tierlock_approval = str(path)  # type: ignore[attr-defined]
    approve.tierlock_outer = outer  # type: ignore[attr-defined]
    _tool_approver.set(approve)
