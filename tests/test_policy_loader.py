"""Loading policy files: every mistake is one line naming file:line:col and key path."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from tierlock.sandbox import PolicyError, lint_policy, load_policy, load_policy_file
from tierlock.sandbox._units import format_size

REPO = Path(__file__).resolve().parent.parent
DATA = "tests/data/policies"
SHIPPED = ["policies/text-only.yaml", "policies/tool-restricted.yaml", "policies/networked.yaml"]


@pytest.fixture(autouse=True)
def _repo_cwd(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(REPO)  # display paths are relative to the working directory


def problems_of(path: str | Path) -> list[str]:
    with pytest.raises(PolicyError) as e:
        load_policy(path)
    assert e.value.problems, "a PolicyError always carries its problems"
    return e.value.lines()


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        (
            "bad-mode.yaml",
            [
                "bad-mode.yaml:5:9: network.mode: 'hosts' is not one of none, internal, allowlist, open"
            ],
        ),
        (
            "unknown-key.yaml",
            [
                "unknown-key.yaml:5:3: limits.memroy: unknown key (did you mean 'memory'?); allowed here: "
                "memory, cpus, pids, command_timeout, output_bytes, sample_time"
            ],
        ),
        (
            "wrong-type.yaml",
            [
                "wrong-type.yaml:4:19: filesystem.read_only_root: expected true or false, got 'maybe'",
                "wrong-type.yaml:6:26: filesystem.writable[0].size: 'lots' is not a size; "
                "write e.g. 512m or 64KiB (k/KiB, m/MiB, g/GiB, t/TiB, or b for bytes) [limit-unit]",
                "wrong-type.yaml:8:9: limits.pids: expected a whole number, got a list",
                "wrong-type.yaml:10:17: tools.allow[1]: 'perl' is not one of bash, python",
            ],
        ),
        (
            "malformed.yaml",
            ["malformed.yaml:5:9: invalid YAML: mapping values are not allowed here"],
        ),
        (
            "empty.yaml",
            ["empty.yaml:1:1: the file is empty; a policy needs at least `name` and `tier`"],
        ),
        (
            "top-list.yaml",
            [
                "top-list.yaml:1:1: the top level must be a mapping of policy keys "
                "(name, tier, network, ...), not a list"
            ],
        ),
        ("dup-key.yaml", ["dup-key.yaml:6:3: limits.memory: duplicate key (first set at line 4)"]),
        ("missing-name.yaml", ["missing-name.yaml:2:1: name: required key is missing"]),
        (
            "extends-missing.yaml",
            [
                "extends-missing.yaml:2:10: extends: parent policy 'does-not-exist.yaml' does not exist "
                f"(looked for {DATA}/does-not-exist.yaml)"
            ],
        ),
        (
            "cycle-a.yaml",
            [
                f"cycle-b.yaml:1:10: extends: `extends` cycle: {DATA}/cycle-a.yaml → {DATA}/cycle-b.yaml "
                f"→ {DATA}/cycle-a.yaml"
            ],
        ),
        # an error inside a parent points into the parent file
        (
            "child-of-bad.yaml",
            ["parent-bad.yaml:6:12: process.runtime: 'kata' is not one of runc, runsc"],
        ),
    ],
)
def test_error_lines_name_file_line_column_and_key(name: str, expected: list[str]) -> None:
    assert problems_of(f"{DATA}/{name}") == [f"{DATA}/{line}" for line in expected]


def test_missing_file_and_directory(tmp_path: Path) -> None:
    assert problems_of(tmp_path / "nope.yaml") == [f"{tmp_path}/nope.yaml: no such file"]
    assert problems_of(tmp_path) == [f"{tmp_path}: is a directory, not a policy file"]


def write(tmp_path: Path, name: str, text: str) -> Path:
    p = tmp_path / name
    p.write_text(text)
    return p


def test_self_extends_is_a_cycle(tmp_path: Path) -> None:
    p = write(tmp_path, "self.yaml", "name: s\ntier: text-only\nextends: self.yaml\n")
    (line,) = problems_of(p)
    assert line.startswith(f"{p}:3:10: extends: `extends` cycle: ")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("name: x\ntier: text-only\nextends: 5\n", "3:10: extends: expected the path of a parent"),
        (
            "name: x\ntier: gpu\n",
            "2:7: tier: 'gpu' is not one of text-only, tool-restricted, networked",
        ),
        ("name: ''\ntier: text-only\n", "1:7: name: must not be empty"),
        (
            "name: x\ntier: text-only\nnetwork: {allow: ['http://x']}\n",
            "3:19: network.allow[0]: 'http://x' is not a domain",
        ),
        (
            "name: x\ntier: text-only\nlimits: {cpus: .inf}\n",
            "3:16: limits.cpus: inf would mean no limit; every limit must be a real, positive "
            "value [limit-range]",
        ),
        (
            "name: x\ntier: text-only\nunsafe: {allow: [privileged], reason: short}\n",
            "3:39: unsafe.reason: must be at least 20 characters long",
        ),
        ("name: x\ntier: text-only\n? [a]\n: 1\n", "3:3: keys must be plain words"),
        ("name: !!python/object:os.system x\ntier: text-only\n", "1:7: name: invalid value"),
        ("name: x\ntier: text-only\nenv: {A: [1]}\n", "3:6: env: env values must be strings"),
        ("a: &a [*a]\n", "1:4: a[0]: a YAML alias refers to itself"),
        ("name: x\ntier: text-only\x01\n", "2:16: invalid YAML: character #x0001 is not allowed"),
        (
            "name: x\n---\nname: y\n",
            "2:1: invalid YAML: expected a single document in the stream, but found another",
        ),
    ],
)
def test_more_errors(tmp_path: Path, text: str, expected: str) -> None:
    p = write(tmp_path, "p.yaml", text)
    lines = problems_of(p)
    if expected[0].isdigit():  # line:col given: exact place
        assert any(line.startswith(f"{p}:{expected}") for line in lines), lines
    else:
        assert any(expected in line for line in lines), lines
    assert all(line.startswith(str(p)) for line in lines)


def test_deep_nesting_and_alias_bombs(tmp_path: Path) -> None:
    deep = write(tmp_path, "deep.yaml", "name: x\ntier: text-only\nenv: " + "[" * 100 + "]" * 100)
    assert problems_of(deep) == [f"{deep}:3:70: nested more than 64 levels deep"]
    very_deep = write(tmp_path, "vdeep.yaml", "a: " + "[" * 5000 + "]" * 5000)
    (line,) = problems_of(very_deep)
    assert line.startswith(f"{very_deep}")
    bomb = "a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]\n" for i in range(1, 7)
    )
    (line,) = problems_of(write(tmp_path, "bomb.yaml", bomb))
    assert "document too large" in line


def test_not_utf8(tmp_path: Path) -> None:
    p = tmp_path / "latin1.yaml"
    p.write_bytes(b"name: caf\xe9\ntier: text-only\n")
    assert problems_of(p) == [f"{p}:1:10: not UTF-8 text"]


def test_extends_merges_field_by_field_and_lists_replace() -> None:
    child = load_policy(f"{DATA}/child-ok.yaml")
    parent = load_policy(f"{DATA}/parent-ok.yaml")
    assert child.name == "child-ok" and child.tier == "tool-restricted"
    assert format_size(child.limits.memory or 0) == "1g"
    assert child.limits.pids == parent.limits.pids == 64  # inherited, mapping merged
    assert child.tools.allow == ["python"]  # list replaced, not appended
    assert child.env == {"LANG": "C.UTF-8", "COLOR": "red"}
    assert child.filesystem.mounts == parent.filesystem.mounts
    assert child.extends == "parent-ok.yaml"


def test_positions_cover_the_extends_chain() -> None:
    loaded = load_policy_file(f"{DATA}/child-ok.yaml")
    assert [p.name for p in loaded.files] == ["child-ok.yaml", "parent-ok.yaml"]
    assert str(loaded.locate(("limits", "memory"))) == f"{DATA}/child-ok.yaml:4:11"
    assert str(loaded.locate(("limits", "pids"))) == f"{DATA}/parent-ok.yaml:15:9"
    assert str(loaded.locate(("filesystem", "mounts", 0, "mode"))) == f"{DATA}/parent-ok.yaml:12:13"
    # a default that no file wrote points at the nearest written ancestor
    loc = loaded.locate(("process", "seccomp"))
    assert (loc.file, loc.line, loc.key) == (f"{DATA}/child-ok.yaml", 9, "process.seccomp")


def test_lint_problems_point_into_the_file_that_wrote_the_key() -> None:
    loaded = load_policy_file(f"{DATA}/child-ok.yaml")
    lines = [str(p) for p in lint_policy(loaded.policy, source=loaded)]
    assert lines == [
        f"{DATA}/parent-ok.yaml:12:13: filesystem.mounts[0].mode: host mount /srv/datasets is "
        "writable: the sandbox can change host files; use mode: ro, or a writable tmpfs "
        "[writable-bind]",
        f"{DATA}/child-ok.yaml:13:9: process.capabilities.add[1]: capability SYS_PTRACE: traces "
        "and injects into other processes [dangerous-capability]",
    ]


def test_yaml_merge_keys_and_sexagesimal_lookalikes(tmp_path: Path) -> None:
    p = write(tmp_path, "m.yaml", "base: &b {name: m, tier: text-only}\n")
    assert f"{p}:1:1: name: required key is missing" in problems_of(p)
    assert any(line.startswith(f"{p}:1:1: base: unknown key") for line in problems_of(p))
    p = write(
        tmp_path,
        "m.yaml",
        "<<: {name: m, tier: text-only}\nname: own\n"
        "process: {user: 1000:50}\nenv: {T: 10:30, N: 5}\n",
    )
    pol = load_policy(p)
    assert pol.name == "own" and pol.tier == "text-only"
    assert pol.process.user == "1000:50" and pol.env == {"T": "10:30", "N": "5"}


def test_numeric_user_is_a_uid(tmp_path: Path) -> None:
    p = write(tmp_path, "u.yaml", "name: u\ntier: text-only\nprocess: {user: 1000}\n")
    assert load_policy(p).process.user == "1000"


@pytest.mark.parametrize("path", [*SHIPPED, "policies/examples/data-analysis.yaml"])
def test_shipped_policies_load_and_pass_their_lint(path: str) -> None:
    loaded = load_policy_file(path)
    assert lint_policy(loaded.policy, source=loaded) == []


def test_example_extends_tool_restricted() -> None:
    loaded = load_policy_file("policies/examples/data-analysis.yaml")
    assert [p.name for p in loaded.files] == ["data-analysis.yaml", "tool-restricted.yaml"]
    assert loaded.policy.tier == "tool-restricted"


def test_shipped_policies_are_strict() -> None:
    text_only, tool, net = (load_policy(p) for p in SHIPPED)
    assert text_only.tools.allow == [] and text_only.network.mode == "none"
    assert tool.tools.allow == ["bash", "python"] and tool.network.mode == "none"
    assert tool.filesystem.read_only_root
    assert {w.path for w in tool.filesystem.writable} == {"/workspace", "/tmp"}
    assert net.network.mode == "allowlist" and net.network.allow and net.network.services == ["api"]
    for p in (text_only, tool, net):
        assert p.process.capabilities.drop == ["ALL"] and p.process.no_new_privileges
        assert p.limits.memory and p.limits.pids and p.unsafe is None


@pytest.mark.parametrize("path", [*SHIPPED, f"{DATA}/child-ok.yaml", "unlimited"])
def test_effective_yaml_round_trips(tmp_path: Path, path: str) -> None:
    from tierlock.runner._cli_policy import effective_yaml

    if path == "unlimited":  # nulls must survive: a null limit is not the default limit
        path = str(
            write(
                tmp_path,
                "u.yaml",
                "name: u\ntier: tool-restricted\n"
                "limits: {memory: null, pids: null, cpus: null}\n"
                "unsafe: {allow: [no-pids-limit], reason: "
                "benchmarking a fork-heavy build}\n",
            )
        )
    pol = load_policy(path)
    out = write(tmp_path, "effective.yaml", effective_yaml(pol))
    again = load_policy(out)
    assert again.digest() == pol.digest()
    assert yaml.safe_load(out.read_text())["name"] == pol.name


# --- limits mean what they say ----------------------------------------------------------------

LIMIT_CASES = [
    # (limits or writable YAML, key path, rule ("" = a type error), text the message must contain)
    ("limits: {memory: 0}", "limits.memory", "limit-range", "0 would mean no limit"),
    ("limits: {memory: 16}", "limits.memory", "limit-unit", "16 has no unit; write e.g. 16m or 16MiB"),
    ("limits: {memory: '16'}", "limits.memory", "limit-unit", "has no unit"),
    ("limits: {memory: 16MB}", "limits.memory", "limit-unit", "write 16m or 16MiB"),
    ("limits: {memory: 16kb}", "limits.memory", "limit-unit", "write 16k or 16KiB"),
    ("limits: {memory: 1.5}", "limits.memory", "limit-unit", "no unit"),
    ("limits: {memory: 16b}", "limits.memory", "limit-range", "16b is below the minimum 6m"),
    ("limits: {memory: 5m}", "limits.memory", "limit-range", "below the minimum 6m"),
    ("limits: {memory: -1}", "limits.memory", "limit-range", "-1 would mean no limit"),
    ("limits: {memory: '-1'}", "limits.memory", "limit-range", "would mean no limit"),
    ("limits: {memory: -512m}", "limits.memory", "limit-range", "would mean no limit"),
    ("limits: {memory: unlimited}", "limits.memory", "limit-range", "'unlimited' would mean no"),
    ("limits: {memory: none}", "limits.memory", "limit-range", "would mean no limit"),
    ("limits: {memory: inf}", "limits.memory", "limit-range", "would mean no limit"),
    ("limits: {memory: .inf}", "limits.memory", "limit-range", "would mean no limit"),
    ("limits: {memory: 2t}", "limits.memory", "limit-range", "above the maximum 1t"),
    ("limits: {memory: 12 parsecs}", "limits.memory", "limit-unit", "unknown unit"),
    ("limits: {memory: true}", "limits.memory", "", "expected a size"),
    ("limits: {cpus: 0}", "limits.cpus", "limit-range", "0 would mean no limit"),
    ("limits: {cpus: 0.001}", "limits.cpus", "limit-range", "minimum 0.01"),
    ("limits: {cpus: -1}", "limits.cpus", "limit-range", "would mean no limit"),
    ("limits: {cpus: unlimited}", "limits.cpus", "limit-range", "would mean no limit"),
    ("limits: {cpus: lots}", "limits.cpus", "", "expected a number"),
    ("limits: {pids: 0}", "limits.pids", "limit-range", "0 would mean no limit"),
    ("limits: {pids: -1}", "limits.pids", "limit-range", "would mean no limit"),
    ("limits: {pids: max}", "limits.pids", "limit-range", "would mean no limit"),
    ("limits: {pids: 2.5}", "limits.pids", "", "whole number"),
    ("limits: {pids: 99999999}", "limits.pids", "limit-range", "pid_max"),
    ("limits: {command_timeout: 0}", "limits.command_timeout", "limit-range", "no limit"),
    ("limits: {command_timeout: 0.5s}", "limits.command_timeout", "limit-range", "minimum 1s"),
    ("limits: {command_timeout: -1}", "limits.command_timeout", "limit-range", "no limit"),
    ("limits: {command_timeout: forever}", "limits.command_timeout", "limit-unit", "duration"),
    ("limits: {command_timeout: 30d}", "limits.command_timeout", "limit-range", "maximum"),
    ("limits: {sample_time: inf}", "limits.sample_time", "limit-range", "no limit"),
    ("limits: {sample_time: 0s}", "limits.sample_time", "limit-range", "no limit"),
    ("limits: {output_bytes: 0}", "limits.output_bytes", "limit-range", "no limit"),
    ("limits: {output_bytes: 100}", "limits.output_bytes", "limit-unit", "no unit"),
    ("limits: {output_bytes: 100b}", "limits.output_bytes", "limit-range", "minimum 1k"),
    ("limits: {output_bytes: unlimited}", "limits.output_bytes", "limit-range", "no limit"),
    (
        "filesystem: {writable: [{path: /workspace, size: 0}]}",
        "filesystem.writable[0].size", "limit-range", "0 would mean no limit",
    ),
    (
        "filesystem: {writable: [{path: /workspace, size: 16}]}",
        "filesystem.writable[0].size", "limit-unit", "16 has no unit",
    ),
    (
        "filesystem: {writable: [{path: /workspace, size: 16MB}]}",
        "filesystem.writable[0].size", "limit-unit", "write 16m or 16MiB",
    ),
    (
        "filesystem: {writable: [{path: /workspace, size: unlimited}]}",
        "filesystem.writable[0].size", "limit-range", "would mean no limit",
    ),
    (
        "filesystem: {writable: [{path: /workspace, size: 50%}]}",
        "filesystem.writable[0].size", "limit-unit", "not a size",
    ),
]  # fmt: skip


@pytest.mark.parametrize(("yaml_text", "key", "rule", "says"), LIMIT_CASES)
def test_limits_mean_what_they_say(
    tmp_path: Path, yaml_text: str, key: str, rule: str, says: str
) -> None:
    p = write(tmp_path, "l.yaml", f"name: l\ntier: tool-restricted\n{yaml_text}\n")
    with pytest.raises(PolicyError) as e:
        load_policy(p)
    (problem,) = e.value.problems
    assert (problem.location.key, problem.rule) == (key, rule)
    assert problem.location.line == 3 and problem.location.column > 1
    assert says in problem.message, problem.message
    assert str(problem).startswith(f"{p}:3:")


@pytest.mark.parametrize(
    ("written", "size"),
    [
        ("512m", 512 * 1024**2), ("512M", 512 * 1024**2), ("512MiB", 512 * 1024**2),
        ("512mi", 512 * 1024**2), ("1g", 1024**3), ("1GiB", 1024**3), ("1.5g", 3 * 512 * 1024**2),
        ("6m", 6 * 1024**2), ("6291456b", 6 * 1024**2), (" 64 m ", 64 * 1024**2),
        ("8192k", 8 * 1024**2), ("8192KiB", 8 * 1024**2),
    ],
)  # fmt: skip
def test_size_spellings(tmp_path: Path, written: str, size: int) -> None:
    text = f"name: s\ntier: tool-restricted\nlimits: {{memory: '{written}'}}\n"
    assert load_policy(write(tmp_path, "s.yaml", text)).limits.memory == size


def test_sizes_from_code_are_bytes() -> None:
    from tierlock.sandbox import Policy

    p = Policy.model_validate({"name": "c", "tier": "networked", "limits": {"memory": 2**30}})
    assert p.limits.memory == 2**30
    with pytest.raises(ValueError, match="below the minimum 6m"):
        Policy.model_validate({"name": "c", "tier": "networked", "limits": {"memory": 16}})


def test_odd_byte_counts_round_trip(tmp_path: Path) -> None:
    from tierlock.runner._cli_policy import effective_yaml

    text = "name: o\ntier: tool-restricted\nlimits: {output_bytes: 1500b}\n"
    pol = load_policy(write(tmp_path, "o.yaml", text))
    assert "output_bytes: 1500b" in effective_yaml(pol)
    assert load_policy(write(tmp_path, "e.yaml", effective_yaml(pol))).digest() == pol.digest()


# --- nothing secret in messages ---------------------------------------------------------------

SECRET = "hunter2-s3cr3t-token-0123456789abcdef"


@pytest.mark.parametrize(
    "content",
    [
        f"root:x:0:0:{SECRET}:/root:/bin/bash\ndaemon:x:1:1::/:/usr/sbin/nologin\n",
        f"API_KEY={SECRET}\n",
        f"{SECRET}\n",
        f"[default]\naws_secret_access_key = {SECRET}\n",
        f"token: {SECRET}\n",
        f"name: {SECRET}\ntier: {SECRET}\n",
        f"{SECRET}: 1\n",
        f"- {SECRET}\n",
        f"key: '{SECRET}\n",
        f"a: b: {SECRET}\n",
        f"\t{SECRET}\n",
        f"limits: {{memory: {SECRET}}}\n",
        f"network: {{allow: ['{SECRET}/x']}}\n",
    ],
)
def test_a_foreign_file_is_never_echoed(tmp_path: Path, content: str) -> None:
    (tmp_path / "secret-file").write_text(content)
    child = write(tmp_path, "c.yaml", f"extends: {tmp_path}/secret-file\nname: c\n")
    for path in (child, tmp_path / "secret-file"):
        lines = problems_of(path)
        assert lines and all(SECRET[:12] not in line for line in lines), lines
        assert all(len(line) < 400 for line in lines)


def test_extends_etc_passwd_does_not_echo_it(tmp_path: Path) -> None:
    passwd = Path("/etc/passwd").read_text().splitlines()
    child = write(tmp_path, "c.yaml", "extends: /etc/passwd\nname: c\ntier: text-only\n")
    lines = problems_of(child)
    assert lines and all(p.startswith("/etc/passwd:") for p in lines), lines
    shown = " ".join(line.removeprefix("/etc/passwd") for line in lines)
    for entry in passwd:
        for field in entry.split(":"):
            if len(field) > 3:
                assert field not in shown, (field, lines)


def test_extends_a_symlink_loop(tmp_path: Path) -> None:
    import os

    os.symlink("b", tmp_path / "a")
    os.symlink("a", tmp_path / "b")
    child = write(tmp_path, "c.yaml", "extends: a\nname: c\n")
    (line,) = problems_of(child)
    assert line.startswith(f"{child}:1:10: extends: parent policy 'a' is not a regular file")


def test_a_huge_file_is_refused_unread(tmp_path: Path) -> None:
    p = tmp_path / "huge.yaml"
    with p.open("wb") as f:
        f.truncate(4 * 1024**3)  # sparse: 4 GiB that would be read into memory
    assert problems_of(p) == [f"{p}: larger than 1 MiB, not a policy"]
