"""The tier ladder: ordered tier policies checked together, and what one policy grants over another.

A ladder lists a campaign's policies from least to most permissive. Its tiers must rise strictly
in the order text-only → tool-restricted → networked (a subset is fine, e.g. without text-only; a
skipped tier in between is a warning, a repeated or falling tier an error). Each policy must pass
lint for its own tier, and a higher tier that drops a permission a lower one had is a warning.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from ._errors import Location, PolicyError, Problem
from ._lint import effective_capabilities, is_root_user, lint_policy
from ._loader import LoadedPolicy, load_policy_file, one_line
from ._policy import NETWORK_MODES, TIERS, Policy
from ._units import format_duration, format_size


def _size(n: int | None) -> str:
    return "unlimited" if n is None else format_size(n)


def _reach(p: Policy) -> set[str]:
    """What the sandbox can reach by network, as plain words (`open` covers everything)."""
    mode = p.network.mode
    out: set[str] = set()
    if mode in ("internal", "allowlist", "open"):
        out |= {f"network: service {s}" for s in p.network.services}
    if mode == "allowlist":
        out |= {f"network: allowlist to {a}" for a in p.network.allow}
    return out


def _grants(a: Policy, b: Policy) -> list[str]:
    """Every permission `b` grants that `a` does not, in plain words."""
    out: list[str] = []
    ra, rb = NETWORK_MODES.index(a.network.mode), NETWORK_MODES.index(b.network.mode)
    if rb > ra:
        out.append(f"network mode {a.network.mode} → {b.network.mode}")
    if a.network.mode != "open":
        out += sorted(_reach(b) - _reach(a))

    fa, fb = a.filesystem, b.filesystem
    if fa.read_only_root and not fb.read_only_root:
        out.append("writable root filesystem")
    wa = {w.path: w.size for w in fa.writable}
    for w in fb.writable:
        if w.path not in wa:
            out.append(f"writable {w.path} ({format_size(w.size)})")
        elif w.size > wa[w.path]:
            out.append(
                f"writable {w.path} raised {format_size(wa[w.path])} → {format_size(w.size)}"
            )
    ma = {(m.source, m.target): m.mode for m in fa.mounts}
    for m in fb.mounts:
        if (m.source, m.target) not in ma:
            out.append(f"host mount {m.source} → {m.target} ({m.mode})")
        elif m.mode == "rw" and ma[(m.source, m.target)] == "ro":
            out.append(f"host mount {m.source} → {m.target} made writable")

    pa, pb = a.process, b.process
    if is_root_user(pb.user) and not is_root_user(pa.user):
        out.append(f"runs as root (user {pb.user!r})")
    out += [
        f"capability {c}" for c in sorted(effective_capabilities(b) - effective_capabilities(a))
    ]
    if pb.privileged and not pa.privileged:
        out.append("privileged container")
    if pa.no_new_privileges and not pb.no_new_privileges:
        out.append("new privileges allowed (setuid binaries work)")
    if pb.seccomp != pa.seccomp and pb.seccomp != "default":
        out.append(f"seccomp {pb.seccomp}")
    if pb.apparmor != pa.apparmor and pb.apparmor is not None:
        out.append(f"AppArmor {pb.apparmor}")
    if pa.runtime == "runsc" and pb.runtime == "runc":
        out.append("runtime runc instead of gVisor (runsc)")
    for ns in ("network", "pid", "ipc", "uts", "userns"):
        if getattr(pb.namespaces, ns) == "host" and getattr(pa.namespaces, ns) != "host":
            out.append(f"host {ns} namespace")
    out += [f"device {d}" for d in pb.devices if d not in pa.devices]

    la, lb = a.limits, b.limits
    for key, label, fmt in (
        ("memory", "memory limit", _size),
        ("cpus", "CPU limit", lambda v: "unlimited" if v is None else f"{v:g}"),
        ("pids", "pids limit", lambda v: "unlimited" if v is None else str(v)),
        ("command_timeout", "command timeout", format_duration),
        ("output_bytes", "output cap", format_size),
        ("sample_time", "sample time", format_duration),
    ):
        va, vb = getattr(la, key), getattr(lb, key)
        if va is not None and (vb is None or vb > va):
            out.append(f"{label} raised {fmt(va)} → {fmt(vb)}")

    out += [f"tool {t}" for t in b.tools.allow if t not in a.tools.allow]
    if a.tools.approval and b.tools.approval != a.tools.approval:
        out.append(f"tool calls without approval policy {a.tools.approval}")
    out += [f"env {k}={v}" for k, v in sorted(b.env.items()) if a.env.get(k) != v]
    if b.image != a.image:
        out.append(f"image {b.image}")
    ua = set(a.unsafe.allow) if a.unsafe else set()
    out += [
        f"unsafe: lint rule {r} downgraded"
        for r in (b.unsafe.allow if b.unsafe else [])
        if r not in ua
    ]
    return out


def diff_policies(a: Policy, b: Policy) -> tuple[list[str], list[str]]:
    """(what `b` grants that `a` does not, what `a` grants that `b` does not), in plain words."""
    return [one_line(g) for g in _grants(a, b)], [one_line(g) for g in _grants(b, a)]


def check_ladder(paths: Sequence[str | Path]) -> list[Problem]:
    """Every problem of a ladder: each file's load or lint problems, then the ladder's own."""
    problems: list[Problem] = []
    loaded: list[LoadedPolicy | None] = []
    for path in paths:
        try:
            lp = load_policy_file(path)
        except PolicyError as e:
            problems += e.problems or [Problem(Location(str(path)), str(e))]
            loaded.append(None)
            continue
        problems += lint_policy(lp.policy, source=lp)
        loaded.append(lp)
    if len(paths) == 0:
        problems.append(Problem(Location("<ladder>"), "a ladder needs at least one policy"))
    prev: LoadedPolicy | None = None
    for step in loaded:
        if step is None:
            continue
        if prev is not None:
            problems += _step(prev, step)
        prev = step
    return problems


def _step(lower: LoadedPolicy, higher: LoadedPolicy) -> list[Problem]:
    lo, hi = TIERS.index(lower.policy.tier), TIERS.index(higher.policy.tier)
    where = higher.locate(("tier",))
    if hi == lo:
        return [
            Problem(
                where,
                f"tier {higher.policy.tier} appears twice in the ladder (also {lower.source})",
                rule="ladder-order",
            )
        ]
    if hi < lo:
        return [
            Problem(
                where,
                f"tier {higher.policy.tier} comes after {lower.policy.tier} "
                f"({lower.source}); order is {' → '.join(TIERS)}",
                rule="ladder-order",
            )
        ]
    out = []
    if hi > lo + 1:
        skipped = ", ".join(TIERS[lo + 1 : hi])
        out.append(Problem(where, f"the ladder skips {skipped}", "warning", "ladder-skip"))
    for lost in diff_policies(higher.policy, lower.policy)[0]:
        out.append(
            Problem(
                higher.positions.locate(()),
                f"drops a permission {lower.policy.tier} ({lower.source}) had: {lost}",
                "warning",
                "ladder-drop",
            )
        )
    return out
