"""The tier ladder and policy diffs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from tierlock.sandbox import Policy, check_ladder, diff_policies, load_policy

REPO = Path(__file__).resolve().parent.parent
SHIPPED = ["policies/text-only.yaml", "policies/tool-restricted.yaml", "policies/networked.yaml"]


@pytest.fixture(autouse=True)
def _repo_cwd(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(REPO)


def policy(**kw: Any) -> Policy:
    return Policy.model_validate({"name": "p", "tier": "networked", **kw})


def write(tmp_path: Path, name: str, data: dict[str, Any]) -> str:
    p = tmp_path / name
    p.write_text(yaml.safe_dump(data, sort_keys=False))
    return str(p)


def test_shipped_ladder_is_clean() -> None:
    assert check_ladder(SHIPPED) == []


def test_a_subset_in_order_is_fine() -> None:
    assert check_ladder(SHIPPED[1:]) == []


def test_out_of_order_and_repeated_tiers_are_errors() -> None:
    problems = check_ladder([SHIPPED[1], SHIPPED[0]])
    assert [(p.rule, p.severity) for p in problems] == [("ladder-order", "error")]
    assert str(problems[0]).startswith(
        "policies/text-only.yaml:9:7: tier: tier text-only comes after tool-restricted"
    )
    problems = check_ladder([SHIPPED[1], "policies/examples/data-analysis.yaml"])
    assert [(p.rule, p.severity) for p in problems] == [("ladder-order", "error")]
    assert "appears twice" in problems[0].message


def test_skipped_tier_is_a_warning() -> None:
    problems = check_ladder([SHIPPED[0], SHIPPED[2]])
    assert [(p.rule, p.severity) for p in problems] == [("ladder-skip", "warning")]
    assert "skips tool-restricted" in problems[0].message


def test_each_policy_is_linted_and_load_errors_are_reported(tmp_path: Path) -> None:
    bad = write(
        tmp_path,
        "bad.yaml",
        {"name": "b", "tier": "tool-restricted", "network": {"mode": "internal"}},
    )
    problems = check_ladder([SHIPPED[0], bad, "tests/data/policies/bad-mode.yaml"])
    rules = [(p.rule, p.severity) for p in problems]
    assert ("network-tier", "error") in rules
    assert any("'hosts' is not one of" in p.message for p in problems)


def test_a_lower_tier_more_permissive_than_the_next_is_an_error(tmp_path: Path) -> None:
    lower = load_policy(SHIPPED[1]).model_dump(mode="json", exclude={"extends"})
    higher = load_policy(SHIPPED[2]).model_dump(mode="json", exclude={"extends"})
    higher["limits"]["memory"] = "256m"
    higher["tools"]["allow"] = ["python"]
    lo = write(tmp_path, "lo.yaml", lower)
    problems = check_ladder([lo, write(tmp_path, "hi.yaml", higher)])
    assert {(p.rule, p.severity) for p in problems} == {("ladder-drop", "error")}
    got = sorted((p.location.key, p.message.split(": ", 1)[1]) for p in problems)
    assert got == [
        (
            "limits.memory",
            "memory limit raised 256m → 512m; a lower tier may not be more permissive",
        ),
        ("tools.allow[0]", "tool bash; a lower tier may not be more permissive"),
    ]
    assert all(p.location.file == lo and p.location.line for p in problems)


def test_text_only_is_compared_on_tools_and_network_only(tmp_path: Path) -> None:
    text = load_policy(SHIPPED[0]).model_dump(mode="json", exclude={"extends"})
    text["limits"]["memory"] = "4g"  # no container: its limits mean nothing to the ladder
    text["filesystem"]["writable"] = [{"path": "/workspace", "size": "1g"}]
    lo = write(tmp_path, "text.yaml", text)
    assert check_ladder([lo, SHIPPED[1]]) == []
    text["network"] = {"mode": "none", "services": ["api"]}
    problems = check_ladder([write(tmp_path, "text2.yaml", text), SHIPPED[1]])
    assert [(p.rule, p.location.key) for p in problems] == [("network-unused", "network.services")]


def test_inherited_tier_is_reported_at_the_child(tmp_path: Path) -> None:
    example = "policies/examples/data-analysis.yaml"
    (problem,) = check_ladder([SHIPPED[1], example])
    assert problem.rule == "ladder-order" and problem.location.file == example
    assert problem.location.key == "tier" and problem.location.line == 5
    assert "(inherited from policies/tool-restricted.yaml) appears twice" in problem.message
    assert "(also policies/tool-restricted.yaml)" in problem.message


def test_empty_ladder() -> None:
    assert [p.severity for p in check_ladder([])] == ["error"]


def test_diff_lists_both_directions_in_plain_words() -> None:
    a = policy(network={"mode": "none"}, limits={"memory": "512m"}, tools={"allow": ["bash"]})
    b = policy(
        network={"mode": "allowlist", "allow": ["api.example.org:443"], "services": ["api"]},
        filesystem={
            "writable": [{"path": "/data", "size": "64m"}, {"path": "/tmp", "size": "128m"}],
            "read_only_root": False,
            "mounts": [{"source": "/srv/x", "target": "/x", "mode": "rw"}],
        },
        process={
            "capabilities": {"drop": ["ALL"], "add": ["NET_BIND_SERVICE"]},
            "user": "0",
            "namespaces": {"pid": "host"},
            "devices": ["/dev/fuse"],
            "no_new_privileges": False,
            "seccomp": "unconfined",
        },
        limits={"memory": "1g", "pids": None},
        env={"A": "1"},
    )
    b_only, a_only = diff_policies(a, b)
    assert b_only == [
        "network mode none → allowlist",
        "network: allowlist to api.example.org:443",
        "network: service api",
        "writable root filesystem",
        "writable /data (64m)",
        "writable /tmp raised 64m → 128m",
        "host mount /srv/x → /x (rw)",
        "runs as root (user '0')",
        "capability NET_BIND_SERVICE",
        "new privileges allowed (setuid binaries work)",
        "seccomp unconfined",
        "host pid namespace",
        "device /dev/fuse",
        "memory limit raised 512m → 1g",
        "pids limit raised 256 → unlimited",
        "env A=1",
    ]
    assert a_only == ["writable /workspace (64m)", "tool bash"]


def test_diff_of_identical_policies_is_empty() -> None:
    p = load_policy(SHIPPED[2])
    assert diff_policies(p, p) == ([], [])


def test_capabilities_diff_uses_effective_sets() -> None:
    a = policy(process={"capabilities": {"drop": ["ALL"]}})
    b = policy(process={"capabilities": {"drop": ["NET_RAW"]}})
    b_only, a_only = diff_policies(a, b)
    assert "capability CHOWN" in b_only and "capability NET_RAW" not in b_only
    assert a_only == []
    same = policy(process={"capabilities": {"drop": ["all"], "add": ["cap_kill"]}})
    other = policy(process={"capabilities": {"drop": ["ALL"], "add": ["KILL"]}})
    assert diff_policies(same, other) == ([], [])


# --- policy diff: every field, in the right direction -----------------------------------------

STRICT: dict[str, Any] = {
    "name": "strict",
    "tier": "networked",
    "image": "tierlock-base",
    "network": {"mode": "allowlist", "allow": ["a.example.org", "*.c.example.org"],
                "allow_subdomains": ["api"], "services": ["api"]},
    "filesystem": {"writable": [{"path": "/workspace", "size": "64m"}], "mounts": []},
    "process": {"runtime": "runsc", "apparmor": None},
    "limits": {"memory": "256m", "cpus": 0.5, "pids": 64, "command_timeout": "30s",
               "output_bytes": "64k", "sample_time": "5m"},
    "tools": {"allow": ["python"], "approval": "approval.yaml"},
}  # fmt: skip
LOOSER: dict[tuple[str, ...], Any] = {
    # key path → a value that grants more than STRICT's
    ("image",): "other-image",
    ("network", "mode"): "open",
    ("network", "allow"): ["a.example.org", "*.c.example.org", "b.example.org"],
    ("network", "allow_subdomains"): ["api", "www"],
    ("network", "services"): ["api", "db"],
    ("filesystem", "read_only_root"): False,
    ("filesystem", "writable"): [{"path": "/workspace/", "size": "128m"}],
    ("filesystem", "mounts"): [{"source": "/srv/x", "target": "/x"}],
    ("process", "user"): "0",
    ("process", "capabilities", "drop"): [],
    ("process", "capabilities", "add"): ["NET_BIND_SERVICE"],
    ("process", "no_new_privileges"): False,
    ("process", "privileged"): True,
    ("process", "seccomp"): "unconfined",
    ("process", "apparmor"): "unconfined",
    ("process", "runtime"): "runc",
    ("process", "background"): "allow",
    **{("process", "namespaces", ns): "host" for ns in ("network", "pid", "ipc", "uts", "userns")},
    ("process", "devices"): ["/dev/fuse"],
    ("limits", "memory"): "512m",
    ("limits", "cpus"): 1.0,
    ("limits", "pids"): 128,
    ("limits", "command_timeout"): "1m",
    ("limits", "output_bytes"): "1m",
    ("limits", "sample_time"): "10m",
    ("tools", "allow"): ["python", "bash"],
    ("tools", "approval"): None,
    ("env",): {"A": "1"},
    ("unsafe",): {"allow": ["privileged"], "reason": "a reason that is long enough"},
}
UNLIMITED = [("limits", "memory"), ("limits", "cpus"), ("limits", "pids")]
INCOMPARABLE = {("image",)}  # another image: reported both ways
NOT_PERMISSIONS = {
    ("name",), ("description",), ("extends",), ("tier",),  # the ladder orders tiers itself
    ("filesystem", "workdir"), ("process", "init"),
}  # fmt: skip


def _leaves(model: Any, prefix: tuple[str, ...] = ()) -> set[tuple[str, ...]]:
    from pydantic import BaseModel

    from tierlock.sandbox._loader_messages import _unwrap

    out: set[tuple[str, ...]] = set()
    for name, field in model.model_fields.items():
        tp = _unwrap(field.annotation)
        if isinstance(tp, type) and issubclass(tp, BaseModel) and name != "unsafe":
            out |= _leaves(tp, (*prefix, name))
        else:
            out.add((*prefix, name))
    return out


def _set(data: dict[str, Any], path: tuple[str, ...], value: Any) -> dict[str, Any]:
    import copy

    out = copy.deepcopy(data)
    node = out
    for part in path[:-1]:
        node = node.setdefault(part, {})
    node[path[-1]] = value
    return out


def test_the_diff_table_covers_every_policy_field() -> None:
    assert set(LOOSER) | NOT_PERMISSIONS == _leaves(Policy)


@pytest.mark.parametrize(
    ("path", "value"),
    [*LOOSER.items(), *((p, None) for p in UNLIMITED)],
    ids=[".".join(p) for p in LOOSER] + [f"{'.'.join(p)}-unlimited" for p in UNLIMITED],
)
def test_diff_reports_each_field_in_the_right_direction(path: tuple[str, ...], value: Any) -> None:
    from tierlock.sandbox._ladder import grants

    strict = Policy.model_validate(STRICT)
    loose = Policy.model_validate(_set(STRICT, path, value))
    wider = [g for g in grants(strict, loose) if g.path[: len(path)] == path]
    narrower = [g for g in grants(loose, strict) if g.path[: len(path)] == path]
    assert wider, f"{path}: not reported"
    assert bool(narrower) == (path in INCOMPARABLE), [g.text for g in narrower]
    assert diff_policies(loose, strict) == tuple(reversed(diff_policies(strict, loose)))


def test_an_unlimited_value_is_never_reported_as_raising_from_it() -> None:
    strict = Policy.model_validate(_set(STRICT, ("limits", "memory"), "128m"))
    loose = Policy.model_validate(_set(STRICT, ("limits", "memory"), None))
    assert diff_policies(strict, loose) == (["memory limit raised 128m → unlimited"], [])
