"""Inspect's own conformance suite for sandbox providers (`inspect_ai.util._sandbox.self_check`),
run against tierlock's provider once for each shipped sandboxed policy.

Every check of the suite is collected here as a test (the star import below) and receives a
`sandbox_env`: a real tierlock sandbox made through the provider's `task_init`/`sample_init`, on
the real daemon, shared by all checks of one policy (module-scoped, as Inspect's own runner does;
each check cleans up after itself). A check a policy refuses by design is marked xfail (strict)
in the fixture, with the reason; any other failure is a contract bug in tierlock.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import inspect_ai.util._sandbox.self_check as _self_check
import pytest
from inspect_ai.util import SandboxEnvironment
from inspect_ai.util._sandbox.environment import SandboxUserUnsupportedError
from inspect_ai.util._sandbox.self_check import *  # noqa: F403

from tierlock.sandbox import SandboxError
from tierlock.sandbox._provider import TierlockSandboxEnvironment
from tierlock.sandbox._sandbox_policy import load_sandbox_policy

pytestmark = [pytest.mark.docker, pytest.mark.anyio]

POLICIES = Path(__file__).resolve().parents[1] / "policies"

BY_DESIGN: dict[str, tuple[str, type[BaseException]]] = {
    "test_exec_as_user": (
        "refused by design: every command runs as the policy's unprivileged user; exec as root "
        "(or any other user) raises SandboxUserUnsupportedError",
        SandboxUserUnsupportedError,
    ),
}
"""Checks every sandboxed policy refuses by design: why, and the error the refusal raises (a
check failing any other way is a failure, not the expected one)."""


def _sandboxed_policies() -> list[Path]:
    """The shipped policies whose tier runs a sandbox (all but text-only)."""
    files = sorted(POLICIES.glob("*.yaml")) + sorted((POLICIES / "examples").glob("*.yaml"))
    return [f for f in files if load_sandbox_policy(f).policy.tier != "text-only"]


@dataclass(frozen=True)
class PolicySandbox:
    policy: Path
    env: SandboxEnvironment
    xfails: dict[str, tuple[str, type[BaseException]]]


@pytest.fixture(scope="module")
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(
    scope="module",
    params=_sandboxed_policies(),
    ids=lambda p: str(p.relative_to(POLICIES).with_suffix("")),
)
async def _policy_sandbox(
    request: pytest.FixtureRequest, docker_client: Any
) -> AsyncIterator[PolicySandbox]:
    """One sandbox per policy, made and removed as Inspect does for a task with one sample."""
    policy: Path = request.param
    task = f"self-check-{policy.stem}"
    config = str(policy)
    await TierlockSandboxEnvironment.task_init(task, config)
    try:
        envs = await TierlockSandboxEnvironment.sample_init(task, config, {})
    except SandboxError as e:
        await TierlockSandboxEnvironment.task_cleanup(task, config, True)
        if load_sandbox_policy(policy).policy.process.runtime != "runsc":
            raise
        # runsc here: README known limits; tests/test_gvisor.py checks the refusal itself
        pytest.skip(f"a runsc sandbox does not start on this host: {e}")
    try:
        yield PolicySandbox(policy, envs["default"], dict(BY_DESIGN))
    finally:
        await TierlockSandboxEnvironment.sample_cleanup(task, config, envs, False)
        await TierlockSandboxEnvironment.task_cleanup(task, config, True)
    env = envs["default"]
    assert isinstance(env, TierlockSandboxEnvironment)
    assert not docker_client.containers.list(all=True, filters={"id": env.container_id})


@pytest.fixture
def sandbox_env(request: pytest.FixtureRequest, _policy_sandbox: PolicySandbox) -> SandboxEnvironment:
    """The policy's shared sandbox; a check the policy refuses by design is a strict xfail
    (function-scoped, so the mark lands on the running check)."""
    refused = _policy_sandbox.xfails.get(request.node.originalname)
    if refused is not None:
        reason, error = refused
        request.node.add_marker(pytest.mark.xfail(reason=reason, raises=error, strict=True))
    return _policy_sandbox.env


def test_every_check_of_the_suite_is_collected_here() -> None:
    """The star import pulls in every check Inspect exports, and each xfail names a real check."""
    collected = {name for name, value in globals().items() if name.startswith("test_")}
    assert set(_self_check.__all__) <= collected
    assert len(_self_check.__all__) >= 40
    assert set(BY_DESIGN) <= set(_self_check.__all__)
