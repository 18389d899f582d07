"""The k8s backend tests' stand-in for a cluster, and their helpers (tests/test_k8s_backend.py,
tests/test_k8s_series.py).

What stands in: inspect-k8s-sandbox's provider itself. Its class keeps its Inspect name (`k8s`)
and its config handling (`K8sSandboxEnvironmentConfig`, the values file resolved and checked by
the package's own code), but its lifecycle methods are replaced by Inspect's `local` sandbox
instead of `helm install` on a cluster, and the helm/kubeconfig check reports nothing missing.
So everything up to the point where inspect-k8s-sandbox would call helm is exercised; the pods,
the chart's templates and Cilium's policies on a real cluster are not.
"""

from __future__ import annotations

import io
import sys
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path
from typing import Any
from unittest.mock import patch

import pytest
import yaml

from tierlock.runner import Ledger, _backend_k8s
from tierlock.runner.cli import main
from tierlock.sandbox._k8s_chart import check_against_chart

HERE = Path(__file__).parent / "data" / "k8s"
ROOT = Path(__file__).parent.parent
CAMPAIGN = HERE / "k8s.campaign.yaml"
PROBE = HERE / "k8s_probe.py"


def tierlock(*argv: str) -> tuple[int, str, str]:
    """`tierlock ARGV` in this process: (exit code, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    with (
        patch.object(sys, "argv", ["tierlock", *argv]),
        redirect_stdout(out),
        redirect_stderr(err),
        pytest.raises(SystemExit) as exit_,
    ):
        main()
    return int(exit_.value.code or 0), out.getvalue(), err.getvalue()


def campaign_file(tmp: Path, *, policy: Path | None = None, **top: str) -> Path:
    """A campaign like `k8s.campaign.yaml`, written into `tmp` with absolute paths."""
    data = yaml.safe_load(CAMPAIGN.read_text())
    data.update(top)
    for tier in data["tiers"]:
        tier["policy"] = str((HERE / tier["policy"]).resolve())
        for t in tier["tasks"]:
            file, _, name = t["task"].partition("@")
            t["task"] = f"{(HERE / file).resolve()}@{name}"
    if policy is not None:
        data["tiers"][1]["policy"] = str(policy)
    path = tmp / "k8s.campaign.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def records(runs: Path) -> list[Any]:
    """Every record of the ledger in `runs`."""
    with Ledger(runs / "ledger.sqlite") as ledger:
        return list(ledger.records())


def install_standin(monkeypatch: pytest.MonkeyPatch) -> list[tuple[Path, dict[str, Any]]]:
    """inspect-k8s-sandbox's `k8s` provider with its cluster replaced by Inspect's `local`
    sandbox (see the module docstring), undone by `monkeypatch`; returns the values files its
    samples were given (each checked against the chart's schema, as helm would be given it)."""
    from inspect_ai.util._sandbox.local import LocalSandboxEnvironment
    from k8s_sandbox import K8sSandboxEnvironment
    from k8s_sandbox._sandbox_environment import _validate_and_resolve_k8s_sandbox_config

    given: list[tuple[Path, dict[str, Any]]] = []

    class StandIn(K8sSandboxEnvironment):
        def __init__(self, local: LocalSandboxEnvironment, config: Any) -> None:
            self._local, self._config, self.release = local, config, None

        async def exec(self, cmd, input=None, cwd=None, env=None, user=None, timeout=None,  # type: ignore[no-untyped-def]
                       timeout_retry=True, concurrency=True):  # fmt: skip
            return await self._local.exec(cmd, input=input, cwd=cwd, env=env or {},
                                          timeout=timeout)  # fmt: skip

        async def write_file(self, file: str, contents: str | bytes) -> None:
            await self._local.write_file(file, contents)

        async def read_file(self, file: str, text: bool = True) -> Any:  # type: ignore[override]
            return await self._local.read_file(file, text)

        async def connection(self, *, user: str | None = None) -> Any:
            return await self._local.connection(user=user)

    async def task_init(cls: Any, *args: Any) -> None:  # no helm to check
        return None

    async def sample_init(cls: Any, task_name: str, config: Any, metadata: Any) -> Any:
        resolved = _validate_and_resolve_k8s_sandbox_config(config)  # the package's own check
        values = yaml.safe_load(resolved.values.read_text())
        assert check_against_chart(values)  # what helm would be given passes the chart's schema
        given.append((resolved.values, values))
        local = (await LocalSandboxEnvironment.sample_init(task_name, None, metadata))["default"]
        return {"default": StandIn(local, resolved)}  # type: ignore[arg-type]

    async def sample_cleanup(
        cls: Any, task_name: str, config: Any, envs: Any, interrupted: bool
    ) -> None:
        inner = {k: v._local for k, v in envs.items()}
        await LocalSandboxEnvironment.sample_cleanup(task_name, None, inner, interrupted)

    for name, fn in (("task_init", task_init), ("task_cleanup", task_init),
                     ("sample_init", sample_init), ("sample_cleanup", sample_cleanup)):  # fmt: skip
        monkeypatch.setattr(K8sSandboxEnvironment, name, classmethod(fn))
    monkeypatch.setattr(_backend_k8s, "prerequisites", lambda: [])  # no helm, no cluster here
    return given


def verdict(runs: Path, tier: str) -> dict[str, Any]:  # the tier's last verdict
    return [r.payload for r in records(runs) if r.kind == "verdict" and r.tier == tier][-1]
