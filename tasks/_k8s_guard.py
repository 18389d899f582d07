"""The tier guard on the k8s backend: which values files tierlock translated, and the policy of a
sample whose sandbox is inspect-k8s-sandbox's.

`tierlock run --backend k8s` puts a sandboxed task in Inspect's `k8s` sandbox with a values file
it translated from the task's policy and wrote into the run directory; it registers that file
here (`approve_values`: its SHA-256 and the policy it came from). The guard (`tier_guard`) then
accepts a k8s sandbox only when it runs the chart tierlock ships with (no other chart) and one of
those files, unchanged, and checks the task against that policy as it does on Docker. A k8s
sandbox given from outside (`inspect eval --sandbox k8s`, a values file of one's own, an edited
one) is refused before the model's first step: its pods carry no tierlock policy.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import Any

import yaml

from tierlock.sandbox import Policy, SandboxError, load_policy_file

_APPROVED: dict[str, tuple[str, str]] = {}
"""Values file (resolved) → (its SHA-256, the policy file it was translated from)."""
_LOCK = threading.Lock()


_FOR_CLUSTER: ContextVar[bool] = ContextVar("tierlock_tasks_for_cluster", default=False)


@contextmanager
def building_for_cluster() -> Iterator[None]:
    """Tasks built inside run on a cluster (`tierlock run --backend k8s`): the local Docker
    host's facts (its CPU count, runtimes, AppArmor) do not bound their policy, so building
    them skips that check. The tierlock provider still checks its own host at `task_init`."""
    token = _FOR_CLUSTER.set(True)
    try:
        yield
    finally:
        _FOR_CLUSTER.reset(token)


def for_cluster() -> bool:
    """Whether the task being built runs on a cluster (see `building_for_cluster`)."""
    return _FOR_CLUSTER.get()


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def approve_values(values: Path, policy: Path) -> str:
    """Register a values file tierlock wrote for `policy` (returns its SHA-256)."""
    digest = _sha256(values)
    with _LOCK:
        _APPROVED[str(values.resolve())] = (digest, str(policy))
    return digest


def k8s_policy(found: Any) -> Policy | None:
    """The policy a sample's inspect-k8s-sandbox sandbox was translated from; None when the
    sandbox is not inspect-k8s-sandbox's (or the package is not installed). Raises
    `SandboxError` for a k8s sandbox whose values tierlock did not write for this run, or that
    changed since."""
    try:
        from k8s_sandbox import K8sSandboxEnvironment
    except ImportError:
        return None
    try:
        env = found.as_type(K8sSandboxEnvironment)
    except TypeError:
        return None
    config = getattr(env, "_config", None)  # inspect-k8s-sandbox 0.14's resolved config
    values = getattr(config, "values", None)
    if getattr(config, "chart", None) is not None or values is None:
        raise SandboxError(
            "this task runs in the k8s sandbox only with the values tierlock translates from "
            "its policy and the chart inspect-k8s-sandbox ships: use tierlock run --backend k8s"
        )
    path = Path(values)
    with _LOCK:
        entry = _APPROVED.get(str(path.resolve()))
    if entry is None:
        raise SandboxError(
            f"k8s values {path.name} were not translated by this tierlock run from a policy: "
            "use tierlock run --backend k8s"
        )
    digest, policy_file = entry
    try:
        now = _sha256(path)
    except OSError as e:
        raise SandboxError(f"k8s values {path}: cannot read ({e.strerror or e})") from None
    if now != digest:
        raise SandboxError(f"k8s values {path} changed after tierlock wrote them")
    policy = load_policy_file(policy_file).policy
    try:
        said = (yaml.safe_load(path.read_text(encoding="utf-8")) or {})["annotations"]
        digest_said = said["tierlock/policy-digest"]
    except (OSError, ValueError, KeyError, TypeError, yaml.YAMLError):
        digest_said = None
    if digest_said != f"sha256:{policy.digest()}":  # the policy file changed since
        raise SandboxError(
            f"k8s values {path.name} were translated from another version of policy "
            f"{policy.name!r}"
        )
    return policy
