"""A task never runs under a policy that cannot give it what it declares (issue 20 item 4):
service sidecars under a policy without a sample network, or not listed in its
`network.services`, are refused at task start, before any container — never silently dropped."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tierlock.sandbox import SandboxError, load_policy_file
from tierlock.sandbox._config import SandboxConfig, ServiceSpec, require_fit

REPO = Path(__file__).resolve().parent.parent
API = ServiceSpec(command=["python3", "-m", "http.server", "8080"], port=8080)


def _policy(name: str):  # type: ignore[no-untyped-def]
    return load_policy_file(REPO / "policies" / f"{name}.yaml").policy


def test_services_under_a_policy_without_a_sample_network_are_refused() -> None:
    cfg = SandboxConfig(policy="x", services={"api": API})
    with pytest.raises(SandboxError) as e:
        require_fit("my_task", cfg, _policy("tool-restricted"), "policies/tool-restricted.yaml")
    assert str(e.value) == (
        "task my_task runs service(s) api, but policy 'tool-restricted' "
        "(policies/tool-restricted.yaml) has network.mode none: services need internal or "
        "allowlist (use the networked tier's policy, or one that extends it)"
    )


def test_services_the_policy_does_not_list_are_refused() -> None:
    cfg = SandboxConfig(policy="x", services={"api": API, "db": API})
    with pytest.raises(SandboxError, match=r"runs service\(s\) db that policy 'networked' .* "
                                           r"does not list in network.services \(api\)"):
        require_fit("t", cfg, _policy("networked"), "policies/networked.yaml")
    require_fit("t", SandboxConfig(policy="x", services={"api": API}), _policy("networked"), "p")
    require_fit("t", SandboxConfig(policy="x"), _policy("tool-restricted"), "p")  # no services


@pytest.mark.docker
def test_an_eval_with_a_sidecar_under_the_tool_policy_stops_before_any_container(
    docker_client, tmp_path: Path
) -> None:
    from inspect_ai import Task, eval
    from inspect_ai.dataset import Sample

    cfg = SandboxConfig(policy=str(REPO / "policies" / "tool-restricted.yaml"),
                        services={"api": API})  # fmt: skip
    task_name = f"svc-{os.getpid()}"
    mine = {"label": f"tierlock.task={task_name}"}  # other sessions' containers are not ours
    task = Task(dataset=[Sample(input="hi", target="x")], sandbox=("tierlock", cfg), name=task_name)
    with pytest.raises(SandboxError) as e:
        eval(task, model="mockllm/model", log_dir=str(tmp_path), display="none")
    assert "the task runs service(s) api, but policy 'tool-restricted'" in str(e.value)
    assert docker_client.containers.list(all=True, filters=mine) == []  # none was created
