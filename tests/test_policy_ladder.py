"""The tier ladder and policy diffs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from sandbox import Policy, check_ladder, diff_policies, load_policy

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


def test_higher_tier_dropping_a_permission_warns(tmp_path: Path) -> None:
    lower = load_policy(SHIPPED[1]).model_dump(mode="json", exclude={"extends"})
    higher = load_policy(SHIPPED[2]).model_dump(mode="json", exclude={"extends"})
    higher["limits"]["memory"] = "256m"
    higher["tools"]["allow"] = ["python"]
    problems = check_ladder([write(tmp_path, "lo.yaml", lower), write(tmp_path, "hi.yaml", higher)])
    assert {(p.rule, p.severity) for p in problems} == {("ladder-drop", "warning")}
    msgs = sorted(p.message.split(": ", 1)[1] for p in problems)
    assert msgs == ["memory limit raised 256m → 512m", "tool bash"]


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
