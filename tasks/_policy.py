"""Which policy a task runs under: the tier's shipped policy by default, checked against the tier.

Default policies are the shipped ones (`tierlock/policies/<tier>.yaml`, found beside the package),
so `inspect eval` works from anywhere; a policy given as a relative path (`-T policy=x.yaml`) is
relative to the directory the command was started in. A task refuses a policy of a lower tier
than its own, or one that does not allow the tools or network it needs, with one `PolicyError`
line naming the file, line and key.
"""

from __future__ import annotations

import os
from pathlib import Path

from tierlock.sandbox import TIERS, Location, Policy, PolicyError, Problem, Tier, load_policy_file
from tierlock.sandbox._errors import display_path
from tierlock.sandbox._policy import NetworkMode

REPO_ROOT = Path(__file__).resolve().parent.parent
POLICY_DIR = REPO_ROOT / "policies"


def default_policy(tier: Tier) -> Path:
    """The shipped policy of a tier."""
    return POLICY_DIR / f"{tier}.yaml"


def user_cwd() -> Path:
    """The directory the user started the command in.

    Inspect creates a task from a file inside that file's folder (it changes the process's
    working directory), so a relative `-T policy=` would otherwise resolve against the task's
    folder. The shell's `$PWD` still names where the user was; it is used when it is an
    existing absolute directory, else the process's working directory."""
    pwd = os.environ.get("PWD", "")
    if pwd and os.path.isabs(pwd) and os.path.isdir(pwd):
        return Path(pwd)
    return Path.cwd()


def resolve_policy(tier: Tier, policy: str | Path | None) -> Path:
    """An absolute policy path: the tier's shipped one, or the path given (a relative path is
    relative to the directory the user started the command in, `user_cwd`)."""
    if policy is None:
        return default_policy(tier)
    p = Path(policy).expanduser()
    return (p if p.is_absolute() else user_cwd() / p).resolve()


def require_policy(
    task: str,
    tier: Tier,
    policy: str | Path | None,
    tools: list[str],
    network: list[NetworkMode] | None = None,
    services: list[str] | None = None,
) -> tuple[Path, Policy]:
    """Load the policy a task runs under and check it fits the task's tier, tools and network."""
    path = resolve_policy(tier, policy)
    if not path.exists():
        where = display_path(path)
        looked = "" if policy is None or Path(policy).expanduser().is_absolute() else (
            f"; {policy} was looked for relative to the working directory {user_cwd()}"
        )
        message = f"policy file not found (task {task}){looked}"
        raise PolicyError(
            f"{where}: {message}", [Problem(Location(where), message, rule="task-policy")]
        )
    loaded = load_policy_file(path)
    misfits = policy_misfits(loaded.policy, task, tier, tools, network, services)
    if misfits:
        key, message, rule = misfits[0]
        problem = Problem(loaded.locate(key), message, rule=rule)
        raise PolicyError(str(problem), [problem])
    return path, loaded.policy


def policy_misfits(
    pol: Policy,
    task: str,
    tier: Tier,
    tools: list[str],
    network: list[NetworkMode] | None = None,
    services: list[str] | None = None,
) -> list[tuple[tuple[str, ...], str, str]]:
    """Why a policy cannot run a task: (key path, message, rule) each; empty when it fits."""
    out: list[tuple[tuple[str, ...], str, str]] = []
    if TIERS.index(pol.tier) < TIERS.index(tier):
        out.append((
            ("tier",),
            f"policy '{pol.name}' is for the {pol.tier} tier, below the {tier} tier of task {task}",
            "task-tier",
        ))
    missing = [t for t in tools if t not in pol.tools.allow]
    if missing:
        out.append((
            ("tools", "allow"),
            f"policy '{pol.name}' does not allow {', '.join(missing)}, needed by task {task}",
            "task-tools",
        ))
    if network is not None and pol.network.mode not in network:
        out.append((
            ("network", "mode"),
            f"policy '{pol.name}' has network mode {pol.network.mode}; task {task} needs "
            f"{' or '.join(network)}",
            "task-network",
        ))
    unlisted = [s for s in services or [] if s not in pol.network.services]
    if unlisted:
        out.append((
            ("network", "services"),
            f"policy '{pol.name}' does not list service(s) {', '.join(unlisted)} that task {task} "
            "runs",
            "task-services",
        ))
    return out
