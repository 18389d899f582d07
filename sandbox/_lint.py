"""Lint a policy: errors block running, warnings print.

Rules are data (`RULES`, the one table of them): an id, a severity, the CIS Docker Benchmark item
it covers (section 5, where one applies), a summary, and a check that yields findings (key path +
message). The checks live by concept in `_lint_process` (privileges, capabilities, user, env),
`_lint_paths` (mounts and container paths), `_lint_files` (seccomp and approval files),
`_lint_network` (network mode, allow-list, tools) and `_lint_limits`; a few rules are enforced
while loading (`check` None: the loader tags those problems with the rule id). An `unsafe:` block in
the policy downgrades exactly the named error rules to warnings, with a written reason that stays
on the `Policy` (so every run that uses it records it).
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from . import _lint_files as files
from . import _lint_limits as limits
from . import _lint_network as net
from . import _lint_paths as paths
from . import _lint_process as proc
from ._errors import Location, PolicyError, Problem
from ._lint_paths import host_path_forms as host_path_forms
from ._lint_process import DANGEROUS_CAPABILITIES as DANGEROUS_CAPABILITIES
from ._lint_process import DOCKER_DEFAULT_CAPABILITIES as DOCKER_DEFAULT_CAPABILITIES
from ._lint_process import KNOWN_CAPABILITIES as KNOWN_CAPABILITIES
from ._lint_process import effective_capabilities as effective_capabilities
from ._lint_process import is_root_user as is_root_user
from ._lint_process import normalize_capability as normalize_capability
from ._lint_rule import Finding as Finding
from ._lint_rule import LintContext, Rule, Severity
from ._loader import LoadedPolicy, load_policy_file
from ._loader_positions import KeyPath, format_key_path, one_line
from ._policy import Policy

RULES: tuple[Rule, ...] = (
    Rule("privileged", "error", "no privileged containers", proc._privileged, "5.5"),
    Rule("host-namespace", "error", "no host network/pid/ipc/uts/user namespace",
         proc._host_namespaces, "5.10 5.16 5.17 5.21 5.31"),
    Rule("runtime-mount", "error",
         "no mount of the Docker/containerd socket or state, however spelled",
         paths._runtime_mounts, "5.32"),
    Rule("sensitive-mount", "error", "no mount of /, /proc, /sys, /dev, /etc, /root, /boot, homes",
         paths._sensitive_mounts, "5.6"),
    Rule("writable-bind", "error", "host mounts are read-only", paths._writable_binds, "5.6"),
    Rule("kernel-path", "error", "nothing mounted over /, /proc, /sys or /dev",
         paths._kernel_paths, downgradable=False),
    Rule("system-path", "error", "no writable /etc, /usr, /bin, /sbin or /lib*",
         paths._system_paths),
    Rule("duplicate-path", "error", "each container path is mounted once (also as /tmp/, //tmp)",
         paths._duplicate_targets, downgradable=False),
    Rule("devices", "error", "no host devices", proc._devices, "5.18"),
    Rule("dangerous-capability", "error", "no dangerous capabilities", proc._dangerous_caps,
         "5.4"),
    Rule("unknown-capability", "error", "capability names must exist", proc._unknown_caps,
         downgradable=False),
    Rule("cap-drop-all", "warning", "drop ALL capabilities", proc._cap_drop_all, "5.4"),
    Rule("seccomp-unconfined", "error", "seccomp stays on", files._seccomp_unconfined, "5.22"),
    Rule("seccomp-profile-missing", "error", "a seccomp profile file must exist",
         files._seccomp_missing, downgradable=False),
    Rule("seccomp-profile-invalid", "error", "a seccomp profile file is a valid Docker profile",
         files._seccomp_invalid, downgradable=False),
    Rule("seccomp-allow-all", "error", "a seccomp profile denies something (not allow-all)",
         files._seccomp_allow_all, "5.22"),
    Rule("seccomp-denylist", "warning", "a seccomp profile denies by default",
         files._seccomp_denylist),
    Rule("approval-file", "error", "an approval policy file exists and is valid for Inspect",
         files._approval_file, downgradable=False),
    Rule("apparmor-unconfined", "error", "AppArmor stays on", proc._apparmor, "5.1"),
    Rule("new-privileges", "error", "no-new-privileges is set", proc._new_privileges, "5.26"),
    Rule("no-memory-limit", "error", "a memory limit is set", limits._memory, "5.11"),
    Rule("no-pids-limit", "error", "a pids limit is set", limits._pids, "5.29"),
    Rule("no-cpu-limit", "error", "a CPU limit is set", limits._cpus, "5.12"),
    Rule("limit-range", "error",
         "every limit is real: not 0, negative, unlimited, below Docker's minimum or huge",
         limits._limit_range, downgradable=False),
    Rule("limit-unit", "error", "sizes carry a binary unit (k/KiB, m/MiB, g/GiB; not 16 or 16MB)",
         None, downgradable=False),
    Rule("root-user", "error", "processes do not run as root", proc._root_user, "4.1"),
    Rule("writable-root", "error", "the root filesystem is read-only", paths._writable_root,
         "5.13"),
    Rule("not-absolute", "error", "container and host paths are absolute", paths._absolute_paths,
         downgradable=False),
    # A tier's network and tools define the tier: no `unsafe` reason can change them.
    Rule("network-tier", "error", "no network below the networked tier", net._network_tier,
         downgradable=False),
    Rule("allow-non-public", "error",
         "allow entries are public hosts (no loopback, private, link-local, metadata, encoded "
         "IPs, local names) and wildcards cover one registrable domain",
         net._allow_public, downgradable=False),
    Rule("network-open", "warning", "open network is always warned about", net._network_open),
    Rule("dns-wildcard", "warning",
         "a wildcard allow entry names its subdomains (network.allow_subdomains)",
         net._wildcard_subdomains),
    Rule("allowlist-empty", "warning", "allowlist mode lists domains", net._allowlist_empty),
    Rule("network-unused", "warning", "no allow entries or services that cannot apply",
         net._network_unused),
    Rule("text-only-tools", "error", "text-only exposes no tools", net._text_only_tools,
         downgradable=False),
    Rule("env-secret", "warning", "env carries no secrets", proc._env_secrets),
    Rule("env-loader", "warning", "env loads no extra code (LD_PRELOAD...)", proc._env_loader),
    Rule("workdir-not-writable", "warning", "workdir is writable", paths._workdir_writable),
    # Checked over a ladder of policies (`sandbox._ladder.check_ladder`), not one policy.
    Rule("ladder-order", "error", "ladder tiers rise text-only → tool-restricted → networked",
         None, downgradable=False),
    Rule("ladder-skip", "warning", "a ladder skips no tier", None),
    Rule("ladder-drop", "error", "a lower tier grants nothing the next tier does not", None,
         downgradable=False),
)  # fmt: skip
"""Every lint rule, in report order."""

RULE_IDS: frozenset[str] = frozenset(r.id for r in RULES)


def _locate(ctx: LintContext, file: str, path: KeyPath, at_key: bool) -> Location:
    if ctx.source is not None:
        return ctx.source.locate(path, at_key=at_key)
    return Location(file, key=format_key_path(path))


def lint_policy(
    policy: Policy, *, source: LoadedPolicy | str | Path | None = None
) -> list[Problem]:
    """Every lint problem of a policy, errors and warnings, `unsafe.allow` applied.

    `source`: the `LoadedPolicy` it came from (problems then name file:line:col of the offending
    key), or just a file name for the problems.
    """
    ctx = LintContext(source if isinstance(source, LoadedPolicy) else None)
    file = ctx.source.source if ctx.source else str(source or "<policy>")
    unsafe = policy.unsafe
    allowed = set(unsafe.allow) if unsafe else set()
    fired: set[str] = set()
    out: list[Problem] = []
    for rule in RULES:
        for f in rule.check(policy, ctx) if rule.check is not None else ():
            severity: Severity = rule.severity
            message = f.message
            if severity == "error" and rule.id in allowed and rule.downgradable:
                severity = "warning"
                message += " (downgraded by unsafe.allow)"
            fired.add(rule.id)
            out.append(
                Problem(_locate(ctx, file, f.path, f.at_key), one_line(message), severity, rule.id)
            )
    if unsafe:
        by_id = {r.id: r for r in RULES}
        for i, rid in enumerate(unsafe.allow):
            where = _locate(ctx, file, ("unsafe", "allow", i), False)
            named = by_id.get(rid)
            if named is None:
                out.append(
                    Problem(
                        where,
                        f"{one_line(repr(rid))} is not a lint rule; rules: "
                        f"{', '.join(sorted(RULE_IDS))}",
                        "error",
                        "unsafe-unknown-rule",
                    )
                )
            elif not named.downgradable:
                out.append(
                    Problem(
                        where, f"rule {rid} cannot be downgraded", "error", "unsafe-unknown-rule"
                    )
                )
            elif rid not in fired or named.severity != "error":
                out.append(
                    Problem(
                        where,
                        f"rule {rid} raises no error here; remove it",
                        "warning",
                        "unsafe-unused",
                    )
                )
    return out


def has_errors(problems: Iterable[Problem]) -> bool:
    """Whether any problem is an error (which blocks running)."""
    return any(p.severity == "error" for p in problems)


def load_runnable_policy(path: str | Path) -> tuple[Policy, list[Problem]]:
    """Load and lint a policy for running: raises `PolicyError` (all problems, errors first) if
    it has errors; otherwise returns it with its warnings (to print and record)."""
    loaded = load_policy_file(path)
    problems = lint_policy(loaded.policy, source=loaded)
    if has_errors(problems):
        ordered = sorted(problems, key=lambda p: p.severity != "error")
        raise PolicyError(f"{loaded.source}: policy has lint errors", ordered)
    return loaded.policy, problems
