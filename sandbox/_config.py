"""The sandbox configuration a task passes to the `tierlock` provider.

`("tierlock", "policies/x.yaml")` is a policy path; `("tierlock", SandboxConfig(...))` also names
the task's service sidecars (for the `internal` and `allowlist` network modes).
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from ._errors import SandboxError
from ._policy import Policy


class ServiceSpec(BaseModel):
    """A task-defined sidecar container the sample reaches by its name (the key in
    `SandboxConfig.services`) on the sample's own network. Its policy must have network mode
    `internal` or `allowlist` and list the name in `network.services`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    image: str | None = Field(
        None,
        description="Image: `tierlock-base` (default), a registered recipe, or an image already "
        "loaded into Docker (never pulled)",
    )
    command: list[str] = Field(
        description="Command the service runs, as argv (e.g. `[python3, /tmp/api.py]`)"
    )
    files: dict[str, str] = Field(
        default_factory=dict,
        description="Path → contents of files written into the service before it starts",
    )
    env: dict[str, str] = Field(
        default_factory=dict, description="The service's environment (the host's is never passed)"
    )
    port: int | None = Field(
        None, description="TCP port to wait for before the sample starts (none: do not wait)"
    )
    harden: bool = Field(
        True,
        description="Run with the sandbox's hardening (read-only root, non-root user, no "
        "capabilities, its limits); false: the policy's limits and a writable /tmp only",
    )

    def __hash__(self) -> int:
        return hash(self.model_dump_json())


class SandboxConfig(BaseModel):
    """Configuration of the tierlock sandbox provider: `("tierlock", SandboxConfig(...))` as an
    Inspect task's `sandbox` (`sandboxed_task` builds it from its `policy` and `services`)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    policy: str = Field(description="Path of the policy file the sandbox enforces")
    services: dict[str, ServiceSpec] = Field(
        default_factory=dict, description="Sidecars by name (reachable as that host name)"
    )

    def __hash__(self) -> int:
        # Inspect hashes sandbox configs; the default frozen-model hash fails on dict fields.
        return hash(self.model_dump_json())


SERVICE_MODES = ("internal", "allowlist")
"""Network modes in which a sample has a network its services can join."""


def require_fit(task: str, config: SandboxConfig, policy: Policy, where: str) -> None:
    """Refuse, before any container, a task whose sandbox config declares services the policy
    cannot give it: a network mode without a sample network, or names `network.services` does
    not list. (Without this a sidecar would be silently left out and the sample scored.)"""
    if not config.services:
        return
    names = ", ".join(sorted(config.services))
    who = "the task" if task in ("", "startup") else f"task {task}"  # Inspect's startup call
    if policy.network.mode not in SERVICE_MODES:
        raise SandboxError(
            f"{who} runs service(s) {names}, but policy {policy.name!r} ({where}) has "
            f"network.mode {policy.network.mode}: services need internal or allowlist (use the "
            "networked tier's policy, or one that extends it)"
        )
    unlisted = sorted(set(config.services) - set(policy.network.services))
    if unlisted:
        raise SandboxError(
            f"{who} runs service(s) {', '.join(unlisted)} that policy {policy.name!r} "
            f"({where}) does not list in network.services "
            f"({', '.join(policy.network.services) or 'none'})"
        )
