"""`tierlock policy ...`: exit codes, output, and never a traceback."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest
import yaml

from tierlock.runner.cli import main

REPO = Path(__file__).resolve().parent.parent
DATA = "tests/data/policies"
SHIPPED = ["policies/text-only.yaml", "policies/tool-restricted.yaml", "policies/networked.yaml"]


@pytest.fixture(autouse=True)
def _repo_cwd(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(REPO)


def run(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], *args: str
) -> tuple[int, str, str]:
    """Run the real console entry point in-process: (exit code, stdout, stderr)."""
    monkeypatch.setattr(sys, "argv", ["tierlock", *args])
    with pytest.raises(SystemExit) as e:
        main()
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    code = e.value.code
    return (code if isinstance(code, int) else 1), out, err


def test_check_shipped_policies_exit_0(monkeypatch, capsys) -> None:
    code, out, _ = run(monkeypatch, capsys, "policy", "check", *SHIPPED)
    assert code == 0
    assert out.strip() == "ok: 3 files checked, 0 error(s), 0 warning(s)"


def test_check_prints_every_problem_of_every_file_and_exits_1(monkeypatch, capsys) -> None:
    code, out, _ = run(
        monkeypatch,
        capsys,
        "policy",
        "check",
        "--no-host",  # lint only: the host checks have their own tests
        f"{DATA}/bad-mode.yaml",
        f"{DATA}/child-ok.yaml",
        f"{DATA}/dup-key.yaml",
        SHIPPED[0],
    )
    assert code == 1
    lines = out.splitlines()
    assert lines == [
        f"{DATA}/bad-mode.yaml:5:9: network.mode: 'hosts' is not one of none, internal, "
        "allowlist, open",
        f"{DATA}/parent-ok.yaml:12:13: filesystem.mounts[0].mode: host mount /srv/datasets is "
        "writable: the sandbox can change host files; use mode: ro, or a writable tmpfs "
        "[writable-bind]",
        f"{DATA}/child-ok.yaml:13:9: process.capabilities.add[1]: capability SYS_PTRACE: traces "
        "and injects into other processes [dangerous-capability]",
        f"{DATA}/dup-key.yaml:6:3: limits.memory: duplicate key (first set at line 4)",
        "FAILED: 4 files checked, 4 error(s), 0 warning(s)",
    ]


def test_warnings_alone_exit_0(monkeypatch, capsys, tmp_path: Path) -> None:
    p = tmp_path / "w.yaml"
    p.write_text("name: w\ntier: networked\nnetwork: {mode: open}\n")
    code, out, _ = run(monkeypatch, capsys, "policy", "check", str(p))
    assert code == 0
    assert out.splitlines()[0] == (
        f"{p}:3:17: warning: network.mode: open network: unaudited "
        "access to anything the host can reach; prefer allowlist "
        "[network-open]"
    )


def test_check_ladder(monkeypatch, capsys) -> None:
    code, out, _ = run(monkeypatch, capsys, "policy", "check", "--ladder", *SHIPPED)
    assert code == 0 and "ladder of 3 files" in out
    # files are ordered by tier, whatever order they are named in; a file named twice counts once
    code, out, _ = run(monkeypatch, capsys, "policy", "check", "--ladder",
                       SHIPPED[2], SHIPPED[0], SHIPPED[1], SHIPPED[2])  # fmt: skip
    assert code == 0 and "ok: ladder of 3 files" in out, out
    code, out, _ = run(monkeypatch, capsys, "policy", "check", "--ladder", SHIPPED[2], SHIPPED[0])
    assert code == 0 and "the ladder skips tool-restricted [ladder-skip]" in out


def test_check_ladder_on_the_shipped_folder(monkeypatch, capsys) -> None:
    """Issue 20 item 5: the README's own example passes (examples/ is not part of the ladder
    unless named); named, the example is an alternative tool-restricted policy, checked against
    the networked tier above it (it grants more memory than the shipped networked policy)."""
    code, out, _ = run(monkeypatch, capsys, "policy", "check", "policies/", "--ladder")
    assert code == 0, out
    assert out.strip() == "ok: ladder of 3 files checked, 0 error(s), 0 warning(s)"
    code, out, _ = run(monkeypatch, capsys, "policy", "check", "policies/", "policies/examples",
                       "--ladder")  # fmt: skip
    assert code == 1
    assert "[ladder-order]" not in out  # two tool-restricted policies are alternatives
    drops = [line for line in out.splitlines() if line.endswith("[ladder-drop]")]
    assert drops and all(line.startswith("policies/examples/data-analysis.yaml:") for line in drops)
    assert "limits.memory: tier tool-restricted grants what the next tier networked" in out


def test_errors_are_not_repeated_when_both_outputs_are_one_file(tmp_path: Path) -> None:
    """`tierlock policy check ... 2>&1` (a CI log): each error once; with two pipes, errors are
    also on standard error."""
    bad = f"{DATA}/bad-mode.yaml"
    with open(tmp_path / "log", "w") as f:
        subprocess.run(["tierlock", "policy", "check", "--no-host", bad], cwd=REPO, stdout=f,
                       stderr=subprocess.STDOUT, timeout=120)  # fmt: skip
    log = (tmp_path / "log").read_text()
    assert log.count("'hosts' is not one of") == 1, log
    two = subprocess.run(["tierlock", "policy", "check", "--no-host", bad], cwd=REPO,
                         capture_output=True, text=True, timeout=120)  # fmt: skip
    assert two.returncode == 1
    assert "'hosts' is not one of" in two.stdout and "'hosts' is not one of" in two.stderr


def test_show_prints_the_effective_policy(monkeypatch, capsys, tmp_path: Path) -> None:
    code, out, _ = run(
        monkeypatch, capsys, "policy", "show", "policies/examples/data-analysis.yaml"
    )
    assert code == 0
    assert out.startswith(
        "# effective policy of policies/examples/data-analysis.yaml ← "
        "policies/tool-restricted.yaml\n"
    )
    data = yaml.safe_load(out)
    assert data["name"] == "data-analysis" and data["limits"]["memory"] == "1g"
    assert data["limits"]["pids"] == 256 and data["tools"]["allow"] == ["python"]
    assert "extends" not in data


def test_show_and_diff_of_a_bad_file_is_one_line_exit_1(monkeypatch, capsys) -> None:
    code, out, err = run(monkeypatch, capsys, "policy", "show", f"{DATA}/malformed.yaml")
    assert code == 1 and out == ""
    assert (
        err == f"tierlock: {DATA}/malformed.yaml:5:9: invalid YAML: mapping values are not "
        "allowed here\n"
    )
    code, _, err = run(monkeypatch, capsys, "policy", "diff", SHIPPED[0], f"{DATA}/cycle-a.yaml")
    assert code == 1 and err.count("\n") == 1 and "`extends` cycle" in err


def test_diff(monkeypatch, capsys) -> None:
    code, out, _ = run(monkeypatch, capsys, "policy", "diff", SHIPPED[1], SHIPPED[2])
    assert code == 0
    assert out.splitlines() == [
        f"granted by {SHIPPED[2]} only:",
        "  + network mode none → allowlist",
        "  + network: allowlist to allowed.test",
        "  + network: allowlist to api.allowed.test:443",
        "  + network: service api",
        f"granted by {SHIPPED[1]} only:",
        "  (nothing)",
    ]


def test_schema_validates_the_shipped_policies(monkeypatch, capsys) -> None:
    code, out, _ = run(monkeypatch, capsys, "policy", "schema")
    assert code == 0
    schema = json.loads(out)
    assert schema["additionalProperties"] is False
    for path in [*SHIPPED, f"{DATA}/parent-ok.yaml"]:
        jsonschema.validate(yaml.safe_load(Path(path).read_text()), schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(yaml.safe_load(Path(f"{DATA}/bad-mode.yaml").read_text()), schema)


def test_check_a_directory(monkeypatch, capsys, tmp_path: Path) -> None:
    code, out, _ = run(monkeypatch, capsys, "policy", "check", "policies")
    assert code == 0 and out.strip() == "ok: 4 files checked, 0 error(s), 0 warning(s)"
    code, _, err = run(monkeypatch, capsys, "policy", "check", str(tmp_path))
    assert code == 2 and "no *.yaml files" in err


def test_missing_argument_is_one_line(monkeypatch, capsys) -> None:
    code, _, err = run(monkeypatch, capsys, "policy", "check")
    # a usage error (a missing argument) is one line and click's usage exit code 2; a bad value
    # for an option that was given is a user error (exit 1), see runner/cli.py
    assert code == 2 and "Missing argument" in err and len(err.strip().splitlines()) == 1


def test_console_script_end_to_end() -> None:
    """The installed `tierlock` script: exit codes and a single clean line, no traceback."""
    ok = subprocess.run(
        ["tierlock", "policy", "check", *SHIPPED],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert ok.returncode == 0, ok.stderr
    bad = subprocess.run(
        ["tierlock", "policy", "show", f"{DATA}/empty.yaml"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert bad.returncode == 1
    assert bad.stderr == (
        f"tierlock: {DATA}/empty.yaml:1:1: the file is empty; a policy needs "
        "at least `name` and `tier`\n"
    )


def test_rules_lists_every_rule(monkeypatch, capsys) -> None:
    from tierlock.sandbox import RULES

    code, out, _ = run(monkeypatch, capsys, "policy", "rules")
    assert code == 0
    assert [line.split()[0] for line in out.splitlines()] == [r.id for r in RULES]


def _readme_policy_commands() -> list[list[str]]:
    """Every `tierlock policy ...` command in the code blocks of the README's "Writing a
    policy" section (they work on the shipped files), as argv lists: a
    trailing `# comment` and a `> file` redirection dropped, `[--flag]` tried both ways."""
    import re
    import shlex

    text = (REPO / "README.md").read_text()
    section = text.split("\n## Writing a policy", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"^```[a-z]*\n(.*?)^```", section, flags=re.S | re.M)
    out: list[list[str]] = []
    for block in blocks:
        for line in block.splitlines():
            line = line.split("#", 1)[0].split(">", 1)[0].strip()
            if not line.startswith("tierlock policy "):
                continue
            optional = re.findall(r"\[(--[a-z-]+)\]", line)
            bare = re.sub(r"\s*\[--[a-z-]+\]", "", line)
            out.append(shlex.split(bare))
            if optional:
                out.append([*shlex.split(bare), *optional])
    return out


def test_the_readmes_policy_commands_work_as_written() -> None:
    """Issue 20 item 5: the README's own examples pass on the shipped files."""
    commands = _readme_policy_commands()
    assert any("--ladder" in c for c in commands) and len(commands) >= 4, commands
    for argv in commands:
        r = subprocess.run(argv, cwd=REPO, capture_output=True, text=True, timeout=120)
        assert r.returncode == 0, f"{' '.join(argv)}: {r.stdout}{r.stderr}"
        assert "Traceback" not in r.stderr
