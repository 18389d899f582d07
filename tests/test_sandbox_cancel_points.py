"""A sample cancelled at every Docker call of its life leaves nothing behind (real daemon).

One sample's life outside an eval: `sample_init`, an exec, a file write and read, then
`sample_cleanup`. Every blocking Docker call of the provider goes through
`anyio.to_thread.run_sync`; the test counts those calls in a full run, then, for each call in
turn, cancels the sample right there (the cancellation lands at that await, as Inspect's cancel
scope would), lets Inspect's part happen (a shielded `sample_cleanup` of a sandbox that was made)
and asserts that nothing of this process's run is left: no container (running, paused or
created) and no network.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anyio
import anyio.lowlevel
import anyio.to_thread
import pytest

from tierlock.sandbox._images import ensure_image
from tierlock.sandbox._labels import RUN_LABEL, run_id
from tierlock.sandbox._provider import TierlockSandboxEnvironment as Box

pytestmark = pytest.mark.docker

POLICY = str(Path(__file__).resolve().parents[1] / "policies" / "tool-restricted.yaml")


def left(client: Any) -> list[str]:
    label = {"label": f"{RUN_LABEL}={run_id()}"}
    containers = [f"{c.name} ({c.status})" for c in client.containers.list(all=True, filters=label)]
    return containers + [f"network {n.name}" for n in client.networks.list(filters=label)]


def life(cancel_at: int | None, monkeypatch: pytest.MonkeyPatch) -> tuple[int, bool]:
    """One sample's life, cancelled at the `cancel_at`-th Docker call; (calls made, cancelled)."""
    real = anyio.to_thread.run_sync
    calls = 0
    scope: anyio.CancelScope | None = None

    async def counted(*args: Any, **kwargs: Any) -> Any:
        nonlocal calls
        calls += 1
        if calls == cancel_at and scope is not None:
            scope.cancel()
            await anyio.lowlevel.checkpoint()  # the cancellation lands here (unless shielded)
        return await real(*args, **kwargs)

    monkeypatch.setattr(anyio.to_thread, "run_sync", counted)

    async def main() -> None:
        nonlocal scope
        envs: dict[str, Any] | None = None
        cleaned = False
        scope = anyio.CancelScope()
        with scope:
            envs = await Box.sample_init("cancel-test", POLICY, {})
            box = envs["default"]
            await box.exec(["sh", "-c", "echo hi; sleep 0.1"])
            await box.write_file("/tmp/x.txt", "x")
            await box.read_file("/tmp/x.txt")
            await Box.sample_cleanup("cancel-test", POLICY, envs, False)
            cleaned = True
        if envs is not None and not cleaned:  # Inspect cleans a sandbox that was made
            with anyio.CancelScope(shield=True):
                await Box.sample_cleanup("cancel-test", POLICY, envs, True)

    try:
        anyio.run(main)
    finally:
        monkeypatch.setattr(anyio.to_thread, "run_sync", real)
    return calls, scope is not None and scope.cancel_called


def test_cancelled_at_every_docker_call_leaves_nothing(
    docker_client: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    ensure_image(docker_client)
    life(None, monkeypatch)  # the first sample also makes what later ones reuse (cached)
    total, cancelled = life(None, monkeypatch)
    assert not cancelled and total > 5
    assert left(docker_client) == []
    for k in range(1, total + 1):
        _, cancelled = life(k, monkeypatch)
        assert cancelled, f"no Docker call {k} of {total}"
        assert left(docker_client) == [], f"cancelled at Docker call {k} of {total}"
    print(f"cancelled at each of {total} Docker calls: nothing left")
