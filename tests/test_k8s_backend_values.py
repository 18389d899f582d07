"""The k8s backend's per-task translation (`runner/_backend_k8s.py`) on loaded Inspect tasks: each
tierlock sandbox spec (the task's and any a sample sets) becomes a values file with that spec's
services, checked against the installed chart, written and registered with the tier guard; the
task then names Inspect's `k8s` sandbox. No cluster: nothing here installs a pod.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from inspect_ai import Task
from inspect_ai.dataset import Sample
from inspect_ai.util import SandboxEnvironmentSpec

from tierlock.runner import _backend_k8s
from tierlock.runner._backend_k8s import move_to_k8s, refusal_line, translate_task
from tierlock.sandbox import SandboxError, TierlockError
from tierlock.sandbox._config import SandboxConfig, ServiceSpec
from tierlock.sandbox._errors import display_path
from tierlock.sandbox._k8s_report import K8sRefused
from tierlock.tasks import _k8s_guard

ROOT = Path(__file__).parent.parent
NETWORKED = ROOT / "policies" / "networked.yaml"
RESTRICTED = ROOT / "policies" / "tool-restricted.yaml"
NAMED_USER = Path(__file__).parent / "data" / "k8s" / "named-user.policy.yaml"


def _task(sandbox: object, samples: list[Sample] | None = None) -> Task:
    return Task(dataset=samples or [Sample(id="a", input="x")], sandbox=sandbox)  # type: ignore[arg-type]


def test_the_shipped_networked_task_carries_its_api_service_to_the_chart() -> None:
    from tierlock.tasks.networked.safety import networked_safety

    (t,) = translate_task("networked_safety", networked_safety(), "networked")
    assert t.services == ("api",) and t.file == "networked_safety.values.yaml"
    services = t.values["services"]
    assert set(services) == {"default", "api"}
    assert services["api"]["networks"] == services["default"]["networks"] == ["sample"]
    assert "allowed.test" in t.values["allowDomains"]
    assert "network.egress_log: weaker" in t.text()  # the per-field report travels with them


def test_per_sample_specs_get_their_own_values_and_the_task_moves(tmp_path: Path) -> None:
    api = ServiceSpec(command=["sleep", "infinity"])
    config = SandboxConfig(policy=str(NETWORKED), services={"api": api})
    own = SandboxEnvironmentSpec("tierlock", config)
    samples = [Sample(id="a", input="x", sandbox=own), Sample(id="b", input="y"),
               Sample(id="c", input="z", sandbox=own)]  # fmt: skip
    task = _task(("tierlock", str(RESTRICTED)), samples)
    done = move_to_k8s("mixed", task, "networked", tmp_path / "k8s")
    assert [t.file for t in done] == ["mixed.values.yaml", "mixed-1.values.yaml"]
    assert [t.services for t in done] == [(), ("api",)]
    assert task.sandbox is not None and task.sandbox.type == "k8s"
    assert task.sandbox.config.values == (tmp_path / "k8s" / "mixed.values.yaml").resolve()
    moved = [s.sandbox for s in task.dataset]
    assert moved[0] == moved[2] and moved[1] is None
    assert moved[0] is not None and moved[0].config.values.name == "mixed-1.values.yaml"
    for t in done:  # written, parseable, and registered for the guard with their policy
        written = tmp_path / "k8s" / t.file
        assert yaml.safe_load(written.read_text())["services"]["default"]["image"]
        assert str(written.resolve()) in _k8s_guard._APPROVED


def test_a_task_in_another_sandbox_is_refused_not_moved(tmp_path: Path) -> None:
    task = _task("docker")
    with pytest.raises(TierlockError) as e:
        move_to_k8s("theirs", task, "tool-restricted", tmp_path)
    assert str(e.value) == (
        "tier tool-restricted, task theirs: its sandbox is 'docker', not tierlock's: the k8s "
        "backend translates tierlock policies only (run it with --backend docker)"
    )
    assert task.sandbox is not None and task.sandbox.type == "docker"
    assert not list(tmp_path.iterdir())  # nothing written
    assert translate_task("bare", _task(None), "tool-restricted") == []  # no sandbox: left alone


def test_a_refusal_names_the_policy_file_line_and_field() -> None:
    with pytest.raises(TierlockError) as e:
        translate_task("t", _task(("tierlock", str(NAMED_USER))), "tool-restricted")
    line = str(e.value)
    assert line.startswith(f"{display_path(NAMED_USER)}:8:"), line
    assert "process.user: cannot run on Kubernetes" in line and "\n" not in line
    assert line.endswith("(tier tool-restricted, task t; backend k8s)")
    # a field the file does not spell out (inherited) still names the file
    generic = refusal_line(RESTRICTED, K8sRefused("network.allow[3]", "why"), "here")
    assert generic.endswith("network.allow[3]: cannot run on Kubernetes: why (here; backend k8s)")


def test_the_guard_refuses_values_of_another_policy_version(tmp_path: Path) -> None:
    """A values file registered for a policy whose content changed since is refused."""
    policy = tmp_path / "p.yaml"
    policy.write_text(RESTRICTED.read_text())
    (t,) = move_to_k8s("p", _task(("tierlock", str(policy))), "tool-restricted", tmp_path / "v")
    values = (tmp_path / "v" / t.file).resolve()

    class Found:  # what Inspect hands the guard: a k8s sandbox with its resolved config
        def as_type(self, cls: type) -> object:
            env = object.__new__(cls)
            env._config = type("C", (), {"values": values, "chart": None})()  # type: ignore[attr-defined]
            return env

    assert _k8s_guard.k8s_policy(Found()) is not None
    policy.write_text(RESTRICTED.read_text().replace("memory: 512m", "memory: 256m"))
    with pytest.raises(SandboxError, match="another version of policy"):
        _k8s_guard.k8s_policy(Found())


def test_prerequisites_name_what_is_missing(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "none"))
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    missing = _backend_k8s.prerequisites()
    assert missing[0].startswith("helm (>= 3.13) is not on PATH")
    assert missing[1].startswith(f"no usable kubeconfig ({tmp_path / 'none'})")
    helm = tmp_path / "helm"  # an old helm is named with its version
    helm.write_text("#!/bin/sh\necho v3.10.1+gabc\n")
    helm.chmod(0o755)
    conf = tmp_path / "kubeconfig"
    conf.write_text(yaml.safe_dump({"apiVersion": "v1", "kind": "Config", "contexts": [
        {"name": "lab", "context": {"cluster": "c", "user": "u"}}],
        "clusters": [{"name": "c", "cluster": {"server": "https://127.0.0.1:1"}}],
        "users": [{"name": "u", "user": {}}], "current-context": "lab"}))  # fmt: skip
    monkeypatch.setenv("KUBECONFIG", str(conf))
    old = "helm v3.10.1+gabc found; inspect-k8s-sandbox needs >= 3.13"
    assert _backend_k8s.prerequisites() == [old]
    helm.write_text("#!/bin/sh\necho v3.15.3+g3bb50bb\n")
    assert _backend_k8s.prerequisites() == []


def test_a_task_built_for_the_cluster_is_not_bounded_by_the_local_docker_host(
    tmp_path: Path,
) -> None:
    """More CPUs than this host has: the local Docker host refuses the policy when a task is
    built for it, but a task built for the k8s backend (the runner's `building_for_cluster`)
    runs on the cluster's nodes and is not refused for the laptop's CPU count."""
    import os

    from tierlock.sandbox import PolicyError
    from tierlock.tasks._authoring import checked_policy

    big = tmp_path / "big.policy.yaml"
    cpus = (os.cpu_count() or 1) + 62
    big.write_text(
        f"extends: {RESTRICTED}\nname: big\nlimits:\n  cpus: {cpus}\n  memory: 2g\n"
    )
    with pytest.raises(PolicyError, match="more than the Docker host has"):
        checked_policy("t", "tool-restricted", big, tools=["bash"])
    assert not _k8s_guard.for_cluster()
    with _k8s_guard.building_for_cluster():
        assert _k8s_guard.for_cluster()
        _path, policy = checked_policy("t", "tool-restricted", big, tools=["bash"])
    assert policy.limits.cpus == cpus and not _k8s_guard.for_cluster()
