"""The tier ladder: ordered tier policies checked together, and what one policy grants over another.

A ladder lists a campaign's policies from least to most permissive. Its tiers must rise strictly
in the order text-only → tool-restricted → networked (a subset is fine, e.g. without text-only; a
skipped tier in between is a warning, a repeated or falling tier an error). Each policy must pass
lint for its own tier, and a lower tier that grants anything the next one does not (more memory,
a tool, a mount...) is an error, pointed at the lower file's key. Text-only starts no container,
so only its tools and network are compared. `grants(a, b)` lists what `b` grants beyond `a`, each
with the key path that sets it; `diff_policies` gives both directions in plain words.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ._allow import effective_allow
from ._errors import Location, PolicyError, Problem
from ._lint import effective_capabilities, is_root_user, lint_policy
from ._lint_paths import container_path
from ._lint_process import cap_index
from ._loader import LoadedPolicy, load_policy_file
from ._loader_positions import KeyPath, one_line
from ._policy import NETWORK_MODES, TIERS, Policy
from ._units import format_duration, format_size


@dataclass(frozen=True)
class Grant:
    """One permission a policy grants that another does not: where it is set, in plain words."""

    path: KeyPath
    text: str


def _reach(p: Policy) -> dict[str, KeyPath]:
    """What the sandbox can reach by network, as plain words (`open` covers everything)."""
    mode = p.network.mode
    out: dict[str, KeyPath] = {}
    if mode in ("internal", "allowlist", "open"):
        out |= {f"network: service {s}": ("network", "services", i)
                for i, s in enumerate(p.network.services)}  # fmt: skip
    if mode == "allowlist":
        net = p.network
        for i, a in effective_allow(net.allow, net.allow_subdomains):
            expanded = a != net.allow[i].strip()  # a label under a wildcard entry
            key: KeyPath = ("network", "allow_subdomains") if expanded else ("network", "allow", i)
            out[f"network: allowlist to {a}"] = key
    return out


def _show(key: str, v: float | None) -> str:
    if v is None:
        return "unlimited"
    if key in ("memory", "output_bytes"):
        return format_size(int(v))
    if key in ("command_timeout", "sample_time"):
        return format_duration(v)
    return f"{v:g}"


LIMIT_LABELS = {
    "memory": "memory limit",
    "cpus": "CPU limit",
    "pids": "pids limit",
    "command_timeout": "command timeout",
    "output_bytes": "output cap",
    "sample_time": "sample time",
}


def _writable(p: Policy) -> dict[str, tuple[int, int]]:
    """Each writable path (normalized) → (index of its first entry, largest size given)."""
    out: dict[str, tuple[int, int]] = {}
    for i, w in enumerate(p.filesystem.writable):
        path = container_path(w.path)
        first, size = out.get(path, (i, 0))
        out[path] = (first, max(size, w.size))
    return out


def _mounts(p: Policy) -> dict[tuple[str, str], tuple[int, str]]:
    """Each (host source, normalized target) → (index of its first entry, `rw` if any is)."""
    out: dict[tuple[str, str], tuple[int, str]] = {}
    for i, m in enumerate(p.filesystem.mounts):
        key = (m.source, container_path(m.target))
        first, mode = out.get(key, (i, "ro"))
        out[key] = (first, "rw" if "rw" in (mode, m.mode) else "ro")
    return out


def _grants(a: Policy, b: Policy) -> list[Grant]:
    """Every permission `b` grants that `a` does not, in plain words, with where `b` sets it."""
    out: list[Grant] = []

    def add(path: KeyPath, text: str) -> None:
        out.append(Grant(path, text))

    ra, rb = NETWORK_MODES.index(a.network.mode), NETWORK_MODES.index(b.network.mode)
    if rb > ra:
        add(("network", "mode"), f"network mode {a.network.mode} → {b.network.mode}")
    if a.network.mode != "open":
        reach_a, reach_b = _reach(a), _reach(b)
        for text in sorted(reach_b.keys() - reach_a.keys()):
            add(reach_b[text], text)

    fa, fb = a.filesystem, b.filesystem
    if fa.read_only_root and not fb.read_only_root:
        add(("filesystem", "read_only_root"), "writable root filesystem")
    wa, wb = _writable(a), _writable(b)
    for path, (i, size) in wb.items():
        where: KeyPath = ("filesystem", "writable", i)
        if path not in wa:
            add(where, f"writable {path} ({format_size(size)})")
        elif size > wa[path][1]:
            add((*where, "size"),
                f"writable {path} raised {format_size(wa[path][1])} → {format_size(size)}")  # fmt: skip
    ma, mb = _mounts(a), _mounts(b)
    for (source, target), (i, mode) in mb.items():
        where = ("filesystem", "mounts", i)
        if (source, target) not in ma:
            add(where, f"host mount {source} → {target} ({mode})")
        elif mode == "rw" and ma[(source, target)][1] == "ro":
            add((*where, "mode"), f"host mount {source} → {target} made writable")

    pa, pb = a.process, b.process
    if is_root_user(pb.user) and not is_root_user(pa.user):
        add(("process", "user"), f"runs as root (user {pb.user!r})")
    for c in sorted(effective_capabilities(b) - effective_capabilities(a)):
        at = cap_index(pb.capabilities.add, c)
        cap_key: KeyPath = ("add", at) if at is not None and not pb.privileged else ("drop",)
        add(("process", "capabilities", *cap_key), f"capability {c}")
    if pb.privileged and not pa.privileged:
        add(("process", "privileged"), "privileged container")
    if pa.no_new_privileges and not pb.no_new_privileges:
        add(("process", "no_new_privileges"), "new privileges allowed (setuid binaries work)")
    if pb.seccomp != pa.seccomp and pb.seccomp != "default":
        add(("process", "seccomp"), f"seccomp {pb.seccomp}")
    if pb.apparmor != pa.apparmor and pb.apparmor is not None:
        add(("process", "apparmor"), f"AppArmor {pb.apparmor}")
    if pb.background == "allow" and pa.background != "allow":
        add(("process", "background"), "processes may outlive their command")
    if pa.runtime == "runsc" and pb.runtime == "runc":
        add(("process", "runtime"), "runtime runc instead of gVisor (runsc)")
    for ns in ("network", "pid", "ipc", "uts", "userns"):
        if getattr(pb.namespaces, ns) == "host" and getattr(pa.namespaces, ns) != "host":
            add(("process", "namespaces", ns), f"host {ns} namespace")
    for i, d in enumerate(pb.devices):
        if d not in pa.devices:
            add(("process", "devices", i), f"device {d}")

    for key, label in LIMIT_LABELS.items():
        va, vb = getattr(a.limits, key), getattr(b.limits, key)
        if va is not None and (vb is None or vb > va):
            add(("limits", key), f"{label} raised {_show(key, va)} → {_show(key, vb)}")

    for i, t in enumerate(b.tools.allow):
        if t not in a.tools.allow:
            add(("tools", "allow", i), f"tool {t}")
    if a.tools.approval and b.tools.approval != a.tools.approval:
        add(("tools", "approval"), f"tool calls without approval policy {a.tools.approval}")
    for k, v in sorted(b.env.items()):
        if a.env.get(k) != v:
            add(("env", k), f"env {k}={v}")
    if b.image != a.image:
        add(("image",), f"image {b.image}")
    ua = set(a.unsafe.allow) if a.unsafe else set()
    for i, r in enumerate(b.unsafe.allow if b.unsafe else []):
        if r not in ua:
            add(("unsafe", "allow", i), f"unsafe: lint rule {r} downgraded")
    return out


TIER_FIELDS = ("tools", "network")
"""What a text-only tier has at all: it starts no container, so only these compare against it."""


def grants(a: Policy, b: Policy) -> list[Grant]:
    """Every permission `b` grants that `a` does not (key path in `b`, plain words)."""
    return [Grant(g.path, one_line(g.text)) for g in _grants(a, b)]


def diff_policies(a: Policy, b: Policy) -> tuple[list[str], list[str]]:
    """(what `b` grants that `a` does not, what `a` grants that `b` does not), in plain words."""
    return [g.text for g in grants(a, b)], [g.text for g in grants(b, a)]


def check_ladder(paths: Sequence[str | Path], *, by_tier: bool = False) -> list[Problem]:
    """Every problem of a ladder: each file's load or lint problems, then the ladder's own.

    In the order given (a campaign's tiers), or with `by_tier` (`policy check --ladder` on
    files and folders) ordered by each policy's tier: several policies of one tier are then
    alternatives, each checked against every policy of the next tier present. A file named
    twice is checked once."""
    problems: list[Problem] = []
    loaded: list[LoadedPolicy] = []
    seen: set[Path] = set()
    for path in paths:
        real = Path(path).resolve()
        if by_tier and real in seen:
            continue
        seen.add(real)
        try:
            lp = load_policy_file(path)
        except PolicyError as e:
            problems += [p for p in e.problems or [Problem(Location(str(path)), str(e))]
                         if p not in problems]  # fmt: skip
            continue
        problems += [p for p in lint_policy(lp.policy, source=lp) if p not in problems]
        loaded.append(lp)
    if len(paths) == 0:
        problems.append(Problem(Location("<ladder>"), "a ladder needs at least one policy"))
    if by_tier:
        levels = [[p for p in loaded if p.policy.tier == t] for t in TIERS]
        present = [level for level in levels if level]
        for lower, higher in itertools.pairwise(present):
            for lo in lower:
                for hi in higher:
                    problems += [p for p in _step(lo, hi) if p not in problems]
        return problems
    for lower_step, higher_step in itertools.pairwise(loaded):
        problems += _step(lower_step, higher_step)
    return problems


def _tier_location(p: LoadedPolicy) -> tuple[Location, str]:
    """Where a policy's tier is set: its own `tier:` line, or (when inherited through `extends`)
    its `extends:` line, with a note naming the parent that set it."""
    loc = p.locate(("tier",))
    if loc.file == p.source:
        return loc, ""
    ext = p.locate(("extends",))
    return Location(ext.file, ext.line, ext.column, "tier"), f" (inherited from {loc.file})"


def _step(lower: LoadedPolicy, higher: LoadedPolicy) -> list[Problem]:
    lo, hi = TIERS.index(lower.policy.tier), TIERS.index(higher.policy.tier)
    where, inherited = _tier_location(higher)
    if hi == lo:
        also = lower.source if lower.source != higher.source else "the same file"
        return [
            Problem(
                where,
                f"tier {higher.policy.tier}{inherited} appears twice in the ladder (also {also})",
                rule="ladder-order",
            )
        ]
    if hi < lo:
        return [
            Problem(
                where,
                f"tier {higher.policy.tier}{inherited} comes after {lower.policy.tier} "
                f"({lower.source}); order is {' → '.join(TIERS)}",
                rule="ladder-order",
            )
        ]
    out = []
    if hi > lo + 1:
        skipped = ", ".join(TIERS[lo + 1 : hi])
        out.append(Problem(where, f"the ladder skips {skipped}", "warning", "ladder-skip"))
    wider = grants(higher.policy, lower.policy)
    if lower.policy.tier == "text-only":  # no container: only its tools and network compare
        wider = [g for g in wider if g.path[0] in TIER_FIELDS]
    for g in wider:
        out.append(
            Problem(
                lower.locate(g.path),
                f"tier {lower.policy.tier} grants what the next tier {higher.policy.tier} "
                f"({higher.source}) does not: {g.text}; a lower tier may not be more permissive",
                "error",
                "ladder-drop",
            )
        )
    return out
