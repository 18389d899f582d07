"""The public task authoring API (issue 20 item 2): exported without underscores, documented in a
generated reference that cannot drift, and a builder that refuses a misfit policy in one line."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from inspect_ai import Task
from inspect_ai._util.registry import registry_info
from inspect_ai.dataset import Sample

import tierlock.sandbox
import tierlock.tasks
from tierlock.sandbox import PolicyError, SandboxConfig, ServiceSpec, TierlockError
from tierlock.tasks import (
    SampleContract,
    TaskInfo,
    contract_sample,
    exact_answer,
    read_samples,
    sandboxed_task,
    text_task,
)
from tierlock.tasks._policy import POLICY_DIR
from tierlock.tasks._reference import authoring_reference, undocumented

REPO = Path(__file__).resolve().parent.parent
CHECKED_IN = REPO / "tasks" / "REFERENCE.md"
SOLVE = {"kind": "qualification", "solution": {"answer": "4"}, "check": {"expected": "4"}}


def one_sample() -> list[Sample]:
    return [contract_sample("s1", "What is 2 + 2?", SOLVE)]


def test_the_public_names_need_no_underscore_import() -> None:
    for name in tierlock.tasks.__all__:
        assert not name.startswith("_") and getattr(tierlock.tasks, name) is not None
    for name in ("SandboxConfig", "ServiceSpec", "BASE_RECIPE", "ImageRecipe", "register_recipe"):
        assert name in tierlock.sandbox.__all__, name
    assert {"sandboxed_task", "text_task", "contract_sample", "SampleContract", "Script",
            "ToolStep", "Violations", "TaskInfo"} <= set(tierlock.tasks.__all__)  # fmt: skip


def test_every_field_and_function_is_documented() -> None:
    assert undocumented() == []


def test_checked_in_reference_matches_the_code() -> None:
    exe = Path(sys.executable).with_name("tierlock")
    out = subprocess.run([str(exe), "task", "reference"], capture_output=True, text=True,
                         timeout=120, check=True).stdout  # fmt: skip
    assert out == authoring_reference()
    for section in ("`SampleContract`", "`Violations`", "`ServiceSpec`", "`SandboxConfig`",
                    "`sandboxed_task`", "| `forbidden_hosts` |", "| `harden` |"):  # fmt: skip
        assert section in out, section
    assert CHECKED_IN.read_text() == out, (
        "tasks/REFERENCE.md is out of date: run `tierlock task reference > tasks/REFERENCE.md`"
    )


def test_a_sample_carries_its_contract_and_protected_hashes() -> None:
    contract = {
        "kind": "safety",
        "violations": {"protected_paths": ["/workspace/t.py"]},
        "solution": {"answer": "ok"},
        "check": {"expected": "7"},
    }
    s = contract_sample("a", "fix it", contract, files={"/workspace/t.py": "x = 1\n"})
    got = SampleContract.of(s.metadata)
    assert got is not None and got.kind == "safety"
    assert set(got.check["protected_sha256"]) == {"/workspace/t.py"}
    assert s.target == "7"
    assert s.files is not None and s.files["/workspace/t.py"].startswith("data:")


def test_a_bad_sample_record_is_one_line_naming_the_file(tmp_path: Path) -> None:
    f = tmp_path / "samples.json"
    f.write_text(json.dumps([{"id": "a", "input": "x", "contract": SOLVE},
                             {"id": "b", "input": "y", "contract": {"kind": "bogus"}}]))  # fmt: skip
    with pytest.raises(TierlockError) as e:
        read_samples(f)
    assert str(e.value).startswith(f"{f}: sample 2: contract.kind")
    assert "\n" not in str(e.value)
    f.write_text(json.dumps([{"id": "a", "input": "x", "contract": SOLVE}]))
    assert [s.id for s in read_samples(f)] == ["a"]


@pytest.mark.parametrize(
    ("kwargs", "error", "says"),
    [
        ({"tier": "tool-restricted", "policy": POLICY_DIR / "text-only.yaml"}, PolicyError,
         "is for the text-only tier, below the tool-restricted tier"),
        ({"tier": "tool-restricted", "services": {"api": ServiceSpec(command=["true"])}},
         PolicyError,
         "has network mode none; task tool_restricted_qualification needs internal or allowlist"),
        ({"tier": "networked", "services": {"db": ServiceSpec(command=["true"])}}, PolicyError,
         "does not list service(s) db"),
        ({"tier": "tool-restricted", "policy": POLICY_DIR / "examples" / "data-analysis.yaml"},
         PolicyError, "does not allow bash"),
        ({"tier": "text-only"}, TierlockError, "tier 'text-only' has no sandbox"),
        ({"tier": "tool-restricted", "tools": ["bash", "curl"]}, TierlockError,
         "unknown tool(s) curl"),
    ],
)  # fmt: skip
def test_the_builder_refuses_a_misfit_in_one_line(
    kwargs: dict[str, object], error: type[Exception], says: str
) -> None:
    with pytest.raises(error) as e:
        sandboxed_task(one_sample(), kind="qualification", **kwargs)  # type: ignore[arg-type]
    assert says in str(e.value)
    assert "\n" not in str(e.value)


def test_a_misfit_policy_names_its_file_and_key() -> None:
    with pytest.raises(PolicyError) as e:
        sandboxed_task(one_sample(), tier="tool-restricted", kind="qualification",
                       policy=POLICY_DIR / "examples" / "data-analysis.yaml")  # fmt: skip
    assert "data-analysis.yaml:" in str(e.value) and "tools.allow" in str(e.value)


@pytest.mark.docker
def test_the_builder_makes_what_the_shipped_tasks_are(docker_client) -> None:
    api = ServiceSpec(command=["python3", "-m", "http.server", "8080"], port=8080)
    task = sandboxed_task(one_sample(), tier="networked", kind="safety", services={"api": api},
                          tools=["python"], name="mine")  # fmt: skip
    assert task.sandbox is not None and task.sandbox.type == "tierlock"
    config = task.sandbox.config
    assert isinstance(config, SandboxConfig) and config.services == {"api": api}
    assert Path(config.policy) == POLICY_DIR / "networked.yaml"
    info = TaskInfo.of(task.metadata)
    assert info is not None and (info.tier, info.kind) == ("networked", "safety")
    assert scorers(task) == ["within_bounds", "task_completed", "containment"]
    plain = sandboxed_task(one_sample(), tier="tool-restricted", kind="qualification",
                           scorer=exact_answer())  # fmt: skip
    assert plain.sandbox is not None and plain.sandbox.config == str(
        POLICY_DIR / "tool-restricted.yaml"
    )
    assert scorers(plain) == ["exact_answer", "containment"]  # the task's own, then the audit's


def scorers(task: Task) -> list[str]:
    return [registry_info(s).name for s in task.scorer or []]


def test_a_text_task_has_no_sandbox_and_names_a_missing_policy(tmp_path: Path) -> None:
    task = text_task(one_sample(), kind="qualification", scorer=exact_answer())
    info = TaskInfo.of(task.metadata)
    assert info is not None and info.tier == "text-only" and task.sandbox is None
    assert scorers(task) == ["exact_answer"]
    with pytest.raises(PolicyError) as e:
        text_task(one_sample(), kind="qualification", scorer=exact_answer(),
                  policy=tmp_path / "nope.yaml")  # fmt: skip
    assert "nope.yaml" in str(e.value) and "not found" in str(e.value)
    assert "\n" not in str(e.value)
