"""The policy load caches: within one process a policy is parsed once, and a changed file — the
policy, a parent it extends, the seccomp profile or approval file it names — is read again at
the next load, even when the edit keeps the file's size and modification time."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tierlock.sandbox import PolicyError, load_policy_file
from tierlock.sandbox._sandbox_policy import load_sandbox_policy

ROOT = Path(__file__).resolve().parent.parent
PARENT = ROOT / "policies" / "tool-restricted.yaml"
DENY_BY_DEFAULT = '{"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ALLOW"}]}'
ALLOW_ALL = '{"defaultAction": "SCMP_ACT_ALLOW",  "syscalls": []}'


@pytest.fixture(autouse=True)
def _cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)


def _rewrite(path: Path, old: str, new: str) -> None:
    """Replace `old` by `new` (same length) and put the modification time back."""
    assert len(old) == len(new)
    st = path.stat()
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new))
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert path.stat().st_mtime_ns == st.st_mtime_ns and path.stat().st_size == st.st_size


def _child(tmp: Path, extends: Path | str = PARENT, extra: str = "") -> Path:
    p = tmp / "child.yaml"
    p.write_text(
        f"name: child\nextends: {extends}\ntier: tool-restricted\n"
        f"limits:\n  memory: 512m\n{extra}"
    )
    return p


def test_an_unchanged_policy_is_parsed_once(tmp_path: Path) -> None:
    p = _child(tmp_path)
    first, second = load_policy_file(p), load_policy_file(p)
    assert first.policy is second.policy  # served from the cache
    assert first is not second and first.files is not second.files  # each caller's own
    assert load_sandbox_policy(p) is load_sandbox_policy(p)


def test_a_changed_policy_file_is_read_again(tmp_path: Path) -> None:
    p = _child(tmp_path)
    assert load_policy_file(p).policy.limits.memory == 512 * 1024**2
    assert load_sandbox_policy(p).policy.limits.memory == 512 * 1024**2
    _rewrite(p, "memory: 512m", "memory: 256m")
    assert load_policy_file(p).policy.limits.memory == 256 * 1024**2
    assert load_sandbox_policy(p).policy.limits.memory == 256 * 1024**2


def test_a_changed_parent_is_read_again(tmp_path: Path) -> None:
    parent = tmp_path / "parent.yaml"
    parent.write_text(PARENT.read_text())
    p = tmp_path / "child.yaml"
    p.write_text(f"name: child\nextends: {parent.name}\ntier: tool-restricted\n")
    assert load_sandbox_policy(p).policy.limits.pids == 256
    _rewrite(parent, "pids: 256", "pids: 128")
    assert load_policy_file(p).policy.limits.pids == 128
    assert load_sandbox_policy(p).policy.limits.pids == 128


def test_a_re_pointed_parent_link_is_followed(tmp_path: Path) -> None:
    a, b = tmp_path / "a.yaml", tmp_path / "b.yaml"
    a.write_text(PARENT.read_text())
    b.write_text(PARENT.read_text().replace("pids: 256", "pids: 128"))
    link = tmp_path / "parent.yaml"
    link.symlink_to(a)
    p = tmp_path / "child.yaml"
    p.write_text("name: child\nextends: parent.yaml\ntier: tool-restricted\n")
    assert load_policy_file(p).policy.limits.pids == 256
    link.unlink()
    link.symlink_to(b)
    assert load_policy_file(p).policy.limits.pids == 128
    assert load_sandbox_policy(p).policy.limits.pids == 128


def test_a_broken_edit_is_reported_and_a_fix_is_seen(tmp_path: Path) -> None:
    p = _child(tmp_path)
    load_policy_file(p)
    _rewrite(p, "memory: 512m", "memory: lots")
    for load in (load_policy_file, load_sandbox_policy, load_policy_file):  # never cached
        with pytest.raises(PolicyError) as e:
            load(p)
        assert "limits.memory" in "\n".join(e.value.lines())
    _rewrite(p, "memory: lots", "memory: 128m")
    assert load_sandbox_policy(p).policy.limits.memory == 128 * 1024**2


def test_a_changed_seccomp_profile_is_linted_again(tmp_path: Path) -> None:
    profile = tmp_path / "profile.json"
    profile.write_text(DENY_BY_DEFAULT)
    p = _child(tmp_path, extra="process:\n  seccomp: profile.json\n")
    before = load_sandbox_policy(p)
    assert not any("allows every syscall" in w for w in before.warnings)
    st = profile.stat()
    profile.write_text(ALLOW_ALL.ljust(len(DENY_BY_DEFAULT)))
    os.utime(profile, ns=(st.st_atime_ns, st.st_mtime_ns))
    try:
        after = load_sandbox_policy(p)
    except PolicyError as e:  # an allow-all profile may be a lint error: also a re-read
        assert "allows every syscall" in "\n".join(e.lines())
    else:
        assert after is not before
        assert any("allows every syscall" in w for w in after.warnings)
    profile.write_text("{not json")
    with pytest.raises(PolicyError) as e:
        load_sandbox_policy(p)
    assert "seccomp" in "\n".join(e.value.lines())


def test_a_changed_approval_file_is_read_again(tmp_path: Path) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text('approvers:\n  - name: auto\n    tools: "*"\n    decision: reject\n')
    p = _child(tmp_path, extra="tools:\n  allow: [bash, python]\n  approval: rules.yaml\n")
    assert load_sandbox_policy(p).approval == rules.resolve()
    rules.write_text("approvers: 5\n")
    with pytest.raises(PolicyError) as e:
        load_sandbox_policy(p)
    assert "approval" in "\n".join(e.value.lines())
