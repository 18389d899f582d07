"""Which policy a task runs under: the tier's shipped policy by default, checked against the tier.

Default policies resolve relative to the repository (`<repo>/policies/<tier>.yaml`), never the
working directory, so `inspect eval` works from anywhere. A task refuses a policy of a lower tier
than its own, or one that does not allow the tools or network it needs, with one `PolicyError`
line naming the file, line and key.
"""

from __future__ import annotations

from pathlib import Path

from tierlock.sandbox import TIERS, Location, Policy, PolicyError, Problem, Tier, load_policy_file
from tierlock.sandbox._errors import display_path
from tierlock.sandbox._policy import NetworkMode

REPO_ROOT = Path(__file__).resolve().parent.parent
POLICY_DIR = REPO_ROOT / "policies"


def default_policy(tier: Tier) -> Path:
    """The shipped policy of a tier."""
    return POLICY_DIR / f"{tier}.yaml"


def resolve_policy(tier: Tier, policy: str | Path | None) -> Path:
    """An absolute policy path: the tier's default, a path as given, or one below the repo."""
    if policy is None:
        return default_policy(tier)
    p = Path(policy).expanduser()
    if p.is_absolute() or p.exists():
        return p.resolve()
    under_repo = REPO_ROOT / p
    return under_repo if under_repo.exists() else p.resolve()


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
        raise PolicyError(
            f"{where}: policy file not found",
            [Problem(Location(where), f"policy file not found (task {task})", rule="task-policy")],
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
