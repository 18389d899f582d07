"""Lint: each rule with a case that trips it and a near miss that must not."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
import yaml

from tierlock.sandbox import (
    RULES,
    PolicyError,
    Problem,
    lint_policy,
    load_policy_file,
    load_runnable_policy,
)
from tierlock.sandbox._lint import host_path_forms, is_root_user, normalize_capability

BASE: dict[str, Any] = {
    "name": "t",
    "tier": "tool-restricted",
    "tools": {"allow": ["bash", "python"]},
    "network": {"mode": "none"},
    "filesystem": {"read_only_root": True},
    "process": {"user": "1000:1000", "capabilities": {"drop": ["ALL"], "add": []}},
    "limits": {"memory": "256m", "pids": 64, "cpus": 1},
}


def merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in over.items():
        out[k] = merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def lint(tmp_path: Path, over: dict[str, Any]) -> list[Problem]:
    p = tmp_path / "policy.yaml"
    p.write_text(yaml.safe_dump(merge(BASE, over), sort_keys=False))
    loaded = load_policy_file(p)
    return lint_policy(loaded.policy, source=loaded)


def fired(problems: list[Problem]) -> dict[str, str]:
    return {p.rule: p.severity for p in problems}


def mounts(*sources: str, mode: str = "ro") -> dict[str, Any]:
    return {
        "filesystem": {"mounts": [{"source": s, "target": "/data", "mode": mode} for s in sources]}
    }


def caps(add: list[str] | None = None, drop: list[str] | None = None) -> dict[str, Any]:
    return {
        "process": {"capabilities": {"add": add or [], "drop": ["ALL"] if drop is None else drop}}
    }


def proc(**kw: Any) -> dict[str, Any]:
    return {"process": kw}


def net(
    tier: str, mode: str, allow: list[str] | None = None, services: list[str] | None = None
) -> dict[str, Any]:
    return {
        "tier": tier,
        "network": {"mode": mode, "allow": allow or [], "services": services or []},
    }


# (rule, severity, trips, near misses)
CASES: list[tuple[str, str, list[dict[str, Any]], list[dict[str, Any]]]] = [
    ("privileged", "error", [proc(privileged=True)], [proc(privileged=False)]),
    (
        "host-namespace",
        "error",
        [proc(namespaces={ns: "host"}) for ns in ("network", "pid", "ipc", "uts", "userns")],
        [proc(namespaces={"pid": "private", "network": "private"})],
    ),
    (
        "runtime-mount",
        "error",
        [
            mounts(s)
            for s in (
                "/var/run/docker.sock",
                "/run/docker.sock",
                "//var//run/docker.sock/",
                "/var/run/../run/docker.sock",
                "/tmp/../run/./docker.sock",
                "/var/run",
                "/run",
                "/run/containerd/containerd.sock",
                "/var/run/containerd",
                "/var/lib/docker",
                "/var",
                "/home/u/.docker/run/docker.sock",
                "/run/user/1000/docker.sock",
            )
        ],
        [
            mounts(s)
            for s in (
                "/srv/docker.sock.d",
                "/runtime/docker",
                "/var/runx/docker",
                "/srv/docker.socket.txt",
                "/srv/data",
                "/var/lib/dockerfiles",
                "/opt/run",
            )
        ],
    ),
    (
        "sensitive-mount",
        "error",
        [
            mounts(s)
            for s in (
                "/",
                "//",
                "/proc",
                "/sys/fs/cgroup",
                "/dev/",
                "//etc",
                "/etc/passwd",
                "/root",
                "/boot",
                "/home",
                "/home/alice",
                "/srv/../etc",
                "/./proc/1",
                "/lib/modules",
            )
        ],
        [
            mounts(s)
            for s in (
                "/etcetera",
                "/homework",
                "/srv/data",
                "/opt/dev",
                "/srv/proc",
                "/data/home/x",
            )
        ],
    ),
    ("writable-bind", "error", [mounts("/srv/data", mode="rw")], [mounts("/srv/data", mode="ro")]),
    (
        "kernel-path",
        "error",
        [
            {"filesystem": {"writable": [{"path": t, "size": "1m"}]}}
            for t in ("/", "/proc", "/sys", "/sys/fs/cgroup", "/dev", "/dev/../proc", "/dev/pts")
        ]
        + [
            {"filesystem": {"mounts": [{"source": "/srv/x", "target": "/proc/self", "mode": "ro"}]}}
        ],
        [
            {"filesystem": {"writable": [{"path": t, "size": "1m"}]}}
            for t in ("/dev/shm", "/workspace", "/system", "/devel", "/processes")
        ],
    ),
    (
        "system-path",
        "error",
        [
            {"filesystem": {"writable": [{"path": t, "size": "1m"}]}}
            for t in ("/etc", "/usr/bin", "/usr/local/bin", "/bin", "/lib64", "/etc/ssl", "/usr")
        ]
        + [{"filesystem": {"mounts": [{"source": "/srv/x", "target": "/etc", "mode": "rw"}]}}],
        [
            {"filesystem": {"writable": [{"path": t, "size": "1m"}]}}
            for t in ("/workspace", "/etcetera", "/usr2", "/opt/etc", "/tmp")
        ]
        + [{"filesystem": {"mounts": [{"source": "/srv/ca.pem", "target": "/etc/ssl/ca.pem"}]}}],
    ),
    ("devices", "error", [proc(devices=["/dev/fuse"])], [proc(devices=[])]),
    (
        "dangerous-capability",
        "error",
        [
            caps(add=[c])
            for c in (
                "SYS_ADMIN",
                "cap_sys_admin",
                "Cap_Net_Raw",
                "SYS_MODULE",
                "DAC_READ_SEARCH",
                "BPF",
                "PERFMON",
                "NET_ADMIN",
                "ALL",
                "all",
                "CAP_ALL",
                " sys_ptrace ",
            )
        ]
        + [caps(drop=["NET_RAW"]), caps(drop=[])],
        [
            caps(add=["NET_BIND_SERVICE"]),
            caps(add=["cap_chown", "KILL"]),
            caps(drop=["all"]),
            caps(drop=["CAP_ALL"]),
        ],
    ),
    (
        "unknown-capability",
        "error",
        [caps(add=["SYS_ADMINN"]), caps(drop=["ALL", "CAP_FOO"]), caps(add=["sys-admin"])],
        [caps(add=["cap_kill"]), caps(drop=["all", "net_raw"])],
    ),
    (
        "cap-drop-all",
        "warning",
        [caps(drop=["NET_RAW", "MKNOD"]), caps(drop=[])],
        [caps(drop=["ALL"]), caps(drop=["cap_all"])],
    ),
    (
        "seccomp-unconfined",
        "error",
        [proc(seccomp="unconfined"), proc(seccomp="Unconfined")],
        [proc(seccomp="default")],
    ),
    (
        "apparmor-unconfined",
        "error",
        [proc(apparmor="unconfined")],
        [proc(apparmor="docker-default"), proc(apparmor=None)],
    ),
    ("new-privileges", "error", [proc(no_new_privileges=False)], [proc(no_new_privileges=True)]),
    ("no-memory-limit", "error", [{"limits": {"memory": None}}], [{"limits": {"memory": "64m"}}]),
    ("no-pids-limit", "error", [{"limits": {"pids": None}}], [{"limits": {"pids": 10}}]),
    ("no-cpu-limit", "error", [{"limits": {"cpus": None}}], [{"limits": {"cpus": 0.5}}]),
    (
        "duplicate-path",
        "error",
        [
            {
                "filesystem": {
                    "writable": [{"path": "/tmp", "size": "1m"}, {"path": t, "size": "2m"}]
                }
            }
            for t in ("/tmp", "/tmp/", "//tmp", "/x/../tmp", "/tmp/.", " /tmp")
        ]
        + [
            {
                "filesystem": {
                    "writable": [{"path": "/data", "size": "1m"}],
                    "mounts": [{"source": "/srv/x", "target": "/data/"}],
                }
            }
        ],
        [
            {
                "filesystem": {
                    "writable": [{"path": "/tmp", "size": "1m"}, {"path": t, "size": "2m"}]
                }
            }
            for t in ("/tmp2", "/tmp/sub", "/workspace")
        ],
    ),
    (
        "allow-non-public",
        "error",
        [
            net("networked", "allowlist", [a])
            for a in (
                "127.0.0.1",
                "127.0.0.1:8080",
                "10.1.2.3",
                "192.168.0.1",
                "172.16.5.4",
                "169.254.169.254",
                "169.254.169.254:80",
                "0.0.0.0",
                "100.64.0.1",
                "224.0.0.1",
                "[::1]:443",
                "::1",
                "::",
                "fe80::1",
                "fc00::1",
                "::ffff:127.0.0.1",
                "fd00:ec2::254",
                "2130706433",
                "0x7f.1",
                "0x7f000001",
                "0177.0.0.1",
                "127.1",
                "134744072",
                "localhost",
                "api.localhost",
                "host.docker.internal",
                "metadata.google.internal",
                "metadata",
                "printer.local",
                "router.lan",
                "10.0.0.1.nip.io",
                "127-0-0-1.sslip.io",
                "*.org",
                "*.co.uk",
                "*.github.io",
                "*.com:443",
                "*.test",
                "*.s3.amazonaws.com",
                "*.0x7f.1",
            )
        ],
        [
            net("networked", "allowlist", [a])
            for a in (
                "example.org",
                "*.example.org",
                "*.example.co.uk",
                "api.example.org:8443",
                "8.8.8.8",
                "2001:4860:4860::8888",
                "[2001:4860:4860::8888]:443",
                "allowed.test",
                "*.allowed.test",
                "1.2.3.4.nip.io",
                "user.github.io",
                "cafe.example",
                "localhostess.org",
                "internal.example.org",
            )
        ],
    ),
    (
        "root-user",
        "error",
        [
            proc(user=u)
            for u in (
                "root",
                "0",
                0,
                "0:0",
                "root:root",
                "0:1000",
                "000",
                "",
                " root ",
                "+0",
                "-0",
                "+0:+0",
            )
        ],
        [
            proc(user=u)
            for u in ("1000:0", "1000", "rooter", "10", "agent", "nobody", "+1000", "0x0")
        ],
    ),
    (
        "writable-root",
        "error",
        [{"filesystem": {"read_only_root": False}}],
        [{"filesystem": {"read_only_root": True}}],
    ),
    (
        "not-absolute",
        "error",
        [
            {"filesystem": {"writable": [{"path": "tmp", "size": "1m"}]}},
            {"filesystem": {"workdir": "work"}},
            {"filesystem": {"mounts": [{"source": "data", "target": "/data"}]}},
            {"filesystem": {"mounts": [{"source": "/srv/data", "target": "data"}]}},
        ],
        [{"filesystem": {"writable": [{"path": "/tmp", "size": "1m"}], "workdir": "/tmp"}}],
    ),
    (
        "network-tier",
        "error",
        [
            net("tool-restricted", "internal"),
            net("text-only", "allowlist", ["a.org"]),
            net("tool-restricted", "open"),
        ],
        [net("tool-restricted", "none"), net("networked", "internal", services=["api"])],
    ),
    (
        "network-open",
        "warning",
        [net("networked", "open")],
        [net("networked", "allowlist", ["a.org"])],
    ),
    (
        "dns-wildcard",
        "warning",
        [net("networked", "allowlist", ["*.example.org"])],
        [
            net("networked", "allowlist", ["api.example.org"]),
            {
                **net("networked", "allowlist", ["*.example.org"]),
                "network": {
                    "mode": "allowlist",
                    "allow": ["*.example.org"],
                    "allow_subdomains": ["api"],
                },
            },
        ],
    ),
    (
        "allowlist-empty",
        "warning",
        [net("networked", "allowlist")],
        [net("networked", "allowlist", ["a.org"]), net("networked", "internal")],
    ),
    (
        "network-unused",
        "warning",
        [
            net("networked", "internal", ["a.org"]),
            net("tool-restricted", "none", ["a.org"]),
            net("tool-restricted", "none", services=["api"]),
        ],
        [
            net("networked", "allowlist", ["a.org"], ["api"]),
            net("networked", "internal", services=["api"]),
        ],
    ),
    (
        "text-only-tools",
        "error",
        [{"tier": "text-only", "tools": {"allow": ["bash"]}}],
        [
            {"tier": "text-only", "tools": {"allow": []}},
            {"tier": "tool-restricted", "tools": {"allow": ["bash"]}},
        ],
    ),
    (
        "env-loader",
        "warning",
        [
            {"env": {"LD_PRELOAD": "/tmp/x.so"}},
            {"env": {"PYTHONPATH": "/workspace"}},
            {"env": {"LD_DEBUG": "all"}},
            {"env": {"BASH_ENV": "/tmp/rc"}},
        ],
        [{"env": {"LANG": "C.UTF-8", "PATH": "/usr/bin:/bin", "OLD_PRELOAD": "x"}}],
    ),
    (
        "workdir-not-writable",
        "warning",
        [{"filesystem": {"workdir": "/opt"}}, {"filesystem": {"workdir": "/workspace2"}}],
        [
            {"filesystem": {"workdir": "/workspace/sub"}},
            {"filesystem": {"workdir": "/tmp"}},
            {"filesystem": {"read_only_root": False, "workdir": "/opt"}},
        ],
    ),
    (
        "env-secret",
        "warning",
        [
            {"env": {"OPENAI_API_KEY": "x"}},
            {"env": {"GITHUB_TOKEN": "x"}},
            {"env": {"db_password": "x"}},
        ],
        [{"env": {"LANG": "C.UTF-8", "HOME": "/workspace", "MONKEY_COUNT": "3"}}],
    ),
]


def _ids(cases: list[dict[str, Any]]) -> list[str]:
    return [str(i) for i in range(len(cases))]


@pytest.mark.parametrize(
    ("rule", "severity", "over"),
    [pytest.param(r, s, o, id=f"{r}-{i}") for r, s, trips, _ in CASES for i, o in enumerate(trips)],
)
def test_rule_trips(tmp_path: Path, rule: str, severity: str, over: dict[str, Any]) -> None:
    assert fired(lint(tmp_path, over)).get(rule) == severity


@pytest.mark.parametrize(
    ("rule", "over"),
    [pytest.param(r, o, id=f"{r}-{i}") for r, _, _, near in CASES for i, o in enumerate(near)],
)
def test_rule_near_miss(tmp_path: Path, rule: str, over: dict[str, Any]) -> None:
    assert rule not in fired(lint(tmp_path, over))


def test_every_rule_has_cases() -> None:
    covered = {c[0] for c in CASES} | FILE_RULES | {"limit-range", "limit-unit"} | LADDER_RULES
    assert covered == {r.id for r in RULES}
    assert all(r.severity in ("error", "warning") for r in RULES)


def test_base_is_clean(tmp_path: Path) -> None:
    assert lint(tmp_path, {}) == []


def test_symlinked_parent_of_the_docker_socket(tmp_path: Path) -> None:
    link = tmp_path / "sneaky"
    os.symlink("/run", link)
    assert fired(lint(tmp_path, mounts(f"{link}/docker.sock"))).get("runtime-mount") == "error"
    (tmp_path / "real").mkdir()
    os.symlink(tmp_path / "real", tmp_path / "fine")
    assert "runtime-mount" not in fired(lint(tmp_path, mounts(f"{tmp_path}/fine/docker.d")))


def test_host_path_forms() -> None:
    assert "/run/docker.sock" in host_path_forms("/var//run/./x/../docker.sock/")
    assert host_path_forms("relative/path") == frozenset()


def test_seccomp_profile_is_resolved_next_to_the_policy(tmp_path: Path) -> None:
    assert (
        fired(lint(tmp_path, proc(seccomp="profiles/s.json"))).get("seccomp-profile-missing")
        == "error"
    )
    (tmp_path / "profiles").mkdir()
    (tmp_path / "profiles" / "s.json").write_text(ERRNO_PROFILE)
    assert "seccomp-profile-missing" not in fired(lint(tmp_path, proc(seccomp="profiles/s.json")))


def test_seccomp_profile_of_a_parent_resolves_next_to_the_parent(tmp_path: Path) -> None:
    (tmp_path / "base").mkdir()
    (tmp_path / "base" / "prof.json").write_text(ERRNO_PROFILE)
    parent = merge(BASE, proc(seccomp="prof.json"))
    (tmp_path / "base" / "parent.yaml").write_text(yaml.safe_dump(parent))
    (tmp_path / "child.yaml").write_text("extends: base/parent.yaml\nname: child\n")
    loaded = load_policy_file(tmp_path / "child.yaml")
    assert loaded.resolve_path(("process", "seccomp"), "prof.json") == tmp_path / "base/prof.json"
    assert lint_policy(loaded.policy, source=loaded) == []


def test_capability_spellings() -> None:
    assert normalize_capability("cap_sys_admin") == "SYS_ADMIN"
    assert normalize_capability(" Cap_All ") == "ALL"
    assert normalize_capability("SYS_ADMINN") is None
    assert is_root_user("0:0") and not is_root_user("1000:0")


def test_lint_problem_points_at_the_offending_entry(tmp_path: Path) -> None:
    p = tmp_path / "p.yaml"
    p.write_text(
        "name: p\ntier: tool-restricted\nprocess:\n  capabilities:\n    add:\n"
        "      - NET_BIND_SERVICE\n      - CAP_SYS_ADMIN\nfilesystem:\n  mounts:\n"
        "    - {source: /var/run/docker.sock, target: /s}\n"
    )
    loaded = load_policy_file(p)
    lines = [str(x) for x in lint_policy(loaded.policy, source=loaded)]
    assert any(
        line.startswith(f"{p}:7:9: process.capabilities.add[1]: capability SYS_ADMIN")
        for line in lines
    ), lines
    assert any(
        line.startswith(
            f"{p}:10:16: filesystem.mounts[0].source: host mount "
            "/var/run/docker.sock (= /run/docker.sock) exposes the container "
            "runtime"
        )
        for line in lines
    ), lines


ERRNO_PROFILE = '{"defaultAction": "SCMP_ACT_ERRNO", "syscalls": []}'
FILE_RULES = {
    "seccomp-profile-missing", "seccomp-profile-invalid", "seccomp-allow-all", "seccomp-denylist",
    "approval-file",
}  # fmt: skip


LADDER_RULES = {"ladder-order", "ladder-skip", "ladder-drop"}  # tests: test_policy_ladder.py


UNSAFE = {"unsafe": {"allow": ["privileged"], "reason": "a kernel test needs a privileged box"}}


def test_unsafe_downgrades_exactly_the_named_errors(tmp_path: Path) -> None:
    problems = lint(tmp_path, {**UNSAFE, **proc(privileged=True, no_new_privileges=False)})
    assert fired(problems) == {"privileged": "warning", "new-privileges": "error"}
    assert "downgraded by unsafe.allow" in next(
        p.message for p in problems if p.rule == "privileged"
    )


def test_unsafe_reason_stays_on_the_policy(tmp_path: Path) -> None:
    p = tmp_path / "u.yaml"
    p.write_text(yaml.safe_dump(merge(BASE, {**UNSAFE, **proc(privileged=True)})))
    policy, warnings = load_runnable_policy(p)
    assert policy.unsafe is not None and policy.unsafe.reason.startswith("a kernel test")
    assert [w.rule for w in warnings] == ["privileged"]


def test_unsafe_unknown_unused_and_undowngradable(tmp_path: Path) -> None:
    over = {
        "unsafe": {
            "allow": ["no-such-rule", "writable-root", "network-tier"],
            "reason": "testing the unsafe block itself",
        }
    }
    problems = lint(tmp_path, over)
    got = [(p.rule, p.severity, p.location.key) for p in problems]
    assert got == [
        ("unsafe-unknown-rule", "error", "unsafe.allow[0]"),
        ("unsafe-unused", "warning", "unsafe.allow[1]"),
        ("unsafe-unknown-rule", "error", "unsafe.allow[2]"),
    ]
    assert all(p.location.line for p in problems)


def test_load_runnable_policy_refuses_errors(tmp_path: Path) -> None:
    p = tmp_path / "r.yaml"
    p.write_text(yaml.safe_dump(merge(BASE, {**proc(privileged=True), "limits": {"cpus": None}})))
    with pytest.raises(PolicyError) as e:
        load_runnable_policy(p)
    assert [x.rule for x in e.value.problems] == ["privileged", "no-cpu-limit"]
    assert e.value.lines()[0].startswith(f"{p}:")


def test_lint_without_a_source_names_the_key() -> None:
    from tierlock.sandbox import Policy

    problems = lint_policy(
        Policy(name="x", tier="text-only", limits={"pids": None}),  # type: ignore[arg-type]
        source="x.yaml",
    )
    assert [str(p) for p in problems] == [
        "x.yaml: limits.pids: no pids limit (fork bombs); set one, e.g. 256 [no-pids-limit]"
    ]


# --- files a policy names: seccomp profiles and approval policies ---------------------------------

SECCOMP_FILES: list[tuple[str, str | None, str]] = [
    # (profile text, rule that fires or None, text the message must contain)
    (ERRNO_PROFILE, None, ""),
    ('{"defaultAction": "SCMP_ACT_ALLOW"}', "seccomp-allow-all", "allows every syscall"),
    ('{"defaultAction": "SCMP_ACT_LOG", "syscalls": []}', "seccomp-allow-all", "SCMP_ACT_LOG"),
    (
        '{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": '
        '[{"names": ["mkdir"], "action": "SCMP_ACT_ALLOW"}]}',
        "seccomp-allow-all",
        "no rule that denies",
    ),
    (
        '{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": '
        '[{"names": ["mkdir"], "action": "SCMP_ACT_ERRNO"}]}',
        "seccomp-denylist",
        "does not list",
    ),
    ("{}", "seccomp-profile-invalid", "defaultAction is missing"),
    ('{"defaultAction": "ALLOW"}', "seccomp-profile-invalid", "not a seccomp action"),
    ("[1, 2]", "seccomp-profile-invalid", "not a seccomp profile"),
    ('{"defaultAction": "SCMP_ACT_ERRNO",\n "syscalls": [}', "seccomp-profile-invalid", ":2:"),
    ("root:x:0:0:root:/root:/bin/bash\n", "seccomp-profile-invalid", "is not JSON"),
    (
        '{"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{"names": "mkdir"}]}',
        "seccomp-profile-invalid",
        "names must list",
    ),
]


@pytest.mark.parametrize(("text", "rule", "says"), SECCOMP_FILES)
def test_seccomp_profile_files(tmp_path: Path, text: str, rule: str | None, says: str) -> None:
    (tmp_path / "prof.json").write_text(text)
    problems = lint(tmp_path, proc(seccomp="prof.json"))
    got = {p.rule: p for p in problems if p.rule.startswith("seccomp")}
    assert list(got) == ([rule] if rule else [])
    if rule:
        assert says in got[rule].message and "prof.json" in got[rule].message
        assert got[rule].location.key == "process.seccomp" and got[rule].location.line
        assert "root:x" not in got[rule].message


def test_seccomp_profile_that_is_a_fifo_does_not_block(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "prof.json")
    got = fired(lint(tmp_path, proc(seccomp="prof.json")))
    assert got.get("seccomp-profile-invalid") == "error"


APPROVALS: list[tuple[str | None, str]] = [
    # (approval file text or None for no file, text the message must contain; "" = clean)
    ("approvers:\n  - name: auto\n    tools: '*'\n", ""),
    ("approvers:\n  - name: auto\n    tools: [bash, python]\n    decision: reject\n", ""),
    ('{"approvers": [{"name": "human", "tools": "bash*"}]}', ""),
    (None, "not found"),
    ("", "is empty"),
    ("approvers:\n  - name: nobody-knows-me\n    tools: '*'\n", "approver 'nobody-knows-me'"),
    ("approvers:\n  - tools: '*'\n", "approvers[0].name is missing"),
    ("approvers: 3\n", "approvers has the wrong type"),
    ("approvers:\n  - name: auto\n    tools: [\n", "invalid YAML"),
    ("root:x:0:0:root:/root:/bin/bash\n", "not an approval policy"),
    ("- a\n- b\n", "not an approval policy"),
]


@pytest.mark.parametrize(("text", "says"), APPROVALS)
def test_approval_policy_files(tmp_path: Path, text: str | None, says: str) -> None:
    if text is not None:
        (tmp_path / "approval.yaml").write_text(text)
    problems = [p for p in lint(tmp_path, {"tools": {"approval": "approval.yaml"}})]
    if not says:
        assert problems == []
        return
    assert [p.rule for p in problems] == ["approval-file"]
    assert says in problems[0].message, problems[0].message
    assert problems[0].location.key == "tools.approval" and problems[0].location.line
    assert "root:x" not in problems[0].message


def test_approval_file_error_names_its_line(tmp_path: Path) -> None:
    (tmp_path / "approval.yaml").write_text(
        "approvers:\n  - name: auto\n    tools: '*'\n  - name: nope\n    tools: '*'\n"
    )
    (problem,) = lint(tmp_path, {"tools": {"approval": "approval.yaml"}})
    assert "approval.yaml:4:11 names approver 'nope'" in problem.message


# --- limits built in code are checked too -----------------------------------------------------


def test_limit_range_catches_values_set_in_code() -> None:
    from tierlock.sandbox import Policy

    p = Policy(name="x", tier="tool-restricted")
    assert lint_policy(p) == []
    broken = p.model_copy(
        update={"limits": p.limits.model_copy(update={"memory": 0, "cpus": 0.001, "pids": -1})}
    )
    got = [(x.location.key, x.rule) for x in lint_policy(broken)]
    assert got == [
        ("limits.memory", "limit-range"),
        ("limits.cpus", "limit-range"),
        ("limits.pids", "limit-range"),
    ]
    fs = p.filesystem.model_copy(
        update={"writable": [p.filesystem.writable[0].model_copy(update={"size": 0})]}
    )
    got = [
        (x.location.key, x.message) for x in lint_policy(p.model_copy(update={"filesystem": fs}))
    ]
    assert got == [
        (
            "filesystem.writable[0].size",
            "0 would mean no limit (Docker and the kernel read 0 and -1 as unlimited); "
            "the smallest allowed is 4k",
        )
    ]


def test_every_limit_field_has_bounds() -> None:
    from tierlock.sandbox import Policy
    from tierlock.sandbox._bounds import BOUNDS
    from tierlock.sandbox._lint_limits import limit_values

    fields = {f for _p, f, _v in limit_values(Policy(name="x", tier="networked"))}
    assert fields == set(BOUNDS)
    from tierlock.sandbox._policy import Limits

    assert {f"limits.{k}" for k in Limits.model_fields} <= set(BOUNDS)


def test_task_build_does_not_echo_a_foreign_approval_file(tmp_path: Path) -> None:
    """The tier tasks read the approval file with Inspect, whose errors quote the whole file;
    the policy layer's reader runs first, so the error names the file only."""
    from tierlock.tasks._sandboxed import approval_policies

    secret = tmp_path / "secret.txt"
    secret.write_text("root:x:0:0:hunter2-not-for-printing:/root:/bin/bash\n")
    p = tmp_path / "p.yaml"
    p.write_text(yaml.safe_dump(merge(BASE, {"tools": {"approval": str(secret)}})))
    with pytest.raises(PolicyError) as e:
        approval_policies(p)
    (line,) = e.value.lines()
    assert "is not an approval policy" in line and "hunter2" not in line and "root:x" not in line


@pytest.mark.parametrize(
    ("over", "rule", "says"),
    [
        (proc(seccomp="loop"), "seccomp-profile-invalid", "cannot be read (Too many levels"),
        ({"tools": {"approval": "loop"}}, "approval-file", "cannot be read (Too many levels"),
        (proc(seccomp="dangling"), "seccomp-profile-missing", "not found (looked for"),
    ],
)
def test_named_files_that_are_symlink_loops(
    tmp_path: Path, over: dict[str, Any], rule: str, says: str
) -> None:
    os.symlink("loop2", tmp_path / "loop")
    os.symlink("loop", tmp_path / "loop2")
    os.symlink("nowhere", tmp_path / "dangling")
    (problem,) = [p for p in lint(tmp_path, over) if p.severity == "error"]
    assert problem.rule == rule and says in problem.message, problem.message
