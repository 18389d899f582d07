"""Property: whatever the file holds, the loader yields a valid policy or clean problems."""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tierlock.sandbox import Policy, PolicyError, diff_policies, lint_policy, load_policy_file
from tierlock.sandbox._errors import display_path

_DIR = Path(tempfile.mkdtemp(prefix="tierlock-prop-"))
atexit.register(shutil.rmtree, _DIR, True)
SETTINGS = settings(
    max_examples=int(os.environ.get("PROP_N", "150")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
BASE = Policy(name="base", tier="tool-restricted")

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=20),
    st.sampled_from(
        [
            "none",
            "open",
            "allowlist",
            "ALL",
            "SYS_ADMIN",
            "512m",
            "1g",
            "30s",
            "/var/run/docker.sock",
            "root",
            "0:0",
            "bash",
            "python",
            "networked",
            "text-only",
            "unconfined",
            "host",
            "*.example.org",
            "a.org:443",
        ]
    ),
)
json_like = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(st.text(max_size=12), inner, max_size=4),
    ),
    max_leaves=20,
)

KEYS = {
    "": [
        "name",
        "description",
        "tier",
        "image",
        "network",
        "filesystem",
        "process",
        "limits",
        "tools",
        "env",
        "unsafe",
        "extends",
        "bogus",
    ],
    "network": ["mode", "allow", "services"],
    "filesystem": ["read_only_root", "writable", "mounts", "workdir"],
    "process": [
        "user",
        "capabilities",
        "no_new_privileges",
        "privileged",
        "seccomp",
        "apparmor",
        "runtime",
        "namespaces",
        "devices",
        "init",
    ],
    "limits": ["memory", "cpus", "pids", "command_timeout", "output_bytes", "sample_time"],
    "tools": ["allow", "approval"],
    "unsafe": ["allow", "reason"],
}


@st.composite
def policy_shaped(draw: st.DrawFn) -> dict[str, Any]:
    """A valid policy with a few keys removed or replaced by arbitrary data."""
    data: dict[str, Any] = BASE.model_dump(mode="json", exclude_none=True)
    data.pop("extends", None)
    for _ in range(draw(st.integers(1, 4))):
        section = draw(st.sampled_from(sorted(KEYS)))
        key = draw(st.sampled_from(KEYS[section]))
        target = data if section == "" else data.setdefault(section, {})
        if not isinstance(target, dict):
            continue
        if draw(st.booleans()):
            target.pop(key, None)  # removing an optional key keeps the policy valid
        else:
            target[key] = draw(json_like)
    return data


yaml_tokens = st.lists(
    st.sampled_from(
        [
            "name: x\n",
            "tier: networked\n",
            "network:\n",
            "  mode: open\n",
            "- a\n",
            "&a ",
            "*a\n",
            "<<: *a\n",
            "!!str ",
            "!!binary x\n",
            "? [k]\n",
            ": v\n",
            "---\n",
            "...\n",
            "{",
            "}",
            "[",
            "]",
            "'",
            '"',
            "\t",
            "  ",
            "#c\n",
            "extends: other.yaml\n",
            "extends: p.yaml\n",
            "1:2\n",
            "\x00",
            "\ufeff",
        ]
    ),
    max_size=12,
).map("".join)


def check_loads_cleanly(text: str) -> None:
    path = _DIR / "p.yaml"
    path.write_text(text, encoding="utf-8")
    try:
        loaded = load_policy_file(path)
    except PolicyError as e:
        assert e.problems
        for p in e.problems:
            assert p.message and "\n" not in str(p)
            assert p.location.file.endswith(".yaml")
            assert p.location.line >= 0 and p.location.column >= 0
        return
    assert isinstance(loaded.policy, Policy)
    assert loaded.source == display_path(path)
    lint_policy(loaded.policy, source=loaded)  # lint never crashes on a valid policy
    diff_policies(BASE, loaded.policy)


@SETTINGS
@given(st.text(max_size=200))
def test_arbitrary_text(text: str) -> None:
    check_loads_cleanly(text)


@SETTINGS
@given(json_like)
def test_arbitrary_yaml_data(data: Any) -> None:
    check_loads_cleanly(yaml.safe_dump(data))


@SETTINGS
@given(policy_shaped())
def test_policy_shaped_data(data: dict[str, Any]) -> None:
    check_loads_cleanly(yaml.safe_dump(data, sort_keys=False))


@SETTINGS
@given(yaml_tokens)
def test_yaml_token_soup(text: str) -> None:
    (_DIR / "other.yaml").write_text("name: other\ntier: text-only\n")
    check_loads_cleanly(text)


# --- policy diff: a mirror, and never both ways for an ordered field --------------------------

_sizes = st.integers(min_value=6, max_value=4096).map(lambda n: f"{n}m")
policies_data = st.fixed_dictionaries(
    {
        "name": st.just("g"),
        "tier": st.sampled_from(["text-only", "tool-restricted", "networked"]),
        "image": st.sampled_from(["tierlock-base", "other"]),
        "network": st.fixed_dictionaries(
            {
                "mode": st.sampled_from(["none", "internal", "allowlist", "open"]),
                "allow": st.lists(st.sampled_from(["a.org", "b.org:443", "*.c.org"]), max_size=3),
                "services": st.lists(st.sampled_from(["api", "db"]), max_size=2),
            }
        ),
        "filesystem": st.fixed_dictionaries(
            {
                "read_only_root": st.booleans(),
                "writable": st.lists(
                    st.fixed_dictionaries(
                        {
                            "path": st.sampled_from(["/workspace", "/tmp", "/tmp/", "/data"]),
                            "size": _sizes,
                        }
                    ),
                    max_size=3,
                ),
                "mounts": st.lists(
                    st.fixed_dictionaries(
                        {
                            "source": st.sampled_from(["/srv/a", "/srv/b"]),
                            "target": st.just("/m"),
                            "mode": st.sampled_from(["ro", "rw"]),
                        }
                    ),
                    max_size=2,
                ),
            }
        ),
        "process": st.fixed_dictionaries(
            {
                "user": st.sampled_from(["1000:1000", "0", "root", "1234"]),
                "capabilities": st.fixed_dictionaries(
                    {
                        "drop": st.sampled_from([["ALL"], [], ["NET_RAW"]]),
                        "add": st.lists(st.sampled_from(["CHOWN", "NET_ADMIN", "ALL"]), max_size=2),
                    }
                ),
                "privileged": st.booleans(),
                "no_new_privileges": st.booleans(),
                "seccomp": st.sampled_from(["default", "unconfined", "p.json"]),
                "apparmor": st.sampled_from([None, "unconfined", "custom"]),
                "runtime": st.sampled_from(["runc", "runsc"]),
                "namespaces": st.fixed_dictionaries(
                    {ns: st.sampled_from(["private", "host"]) for ns in ("network", "pid")}
                ),
                "devices": st.lists(st.sampled_from(["/dev/fuse", "/dev/kvm"]), max_size=2),
            }
        ),
        "limits": st.fixed_dictionaries(
            {
                "memory": st.one_of(st.none(), _sizes),
                "cpus": st.one_of(st.none(), st.sampled_from([0.01, 0.5, 1.0, 2.0])),
                "pids": st.one_of(st.none(), st.integers(1, 4096)),
                "command_timeout": st.integers(1, 3600),
                "output_bytes": st.integers(1, 4096).map(lambda n: f"{n}k"),
                "sample_time": st.integers(1, 7200).map(lambda n: f"{n}s"),
            }
        ),
        "tools": st.fixed_dictionaries(
            {
                "allow": st.lists(st.sampled_from(["bash", "python"]), max_size=2, unique=True),
                "approval": st.sampled_from([None, "a.yaml", "b.yaml"]),
            }
        ),
        "env": st.dictionaries(st.sampled_from(["A", "B"]), st.sampled_from(["1", "2"])),
    }
).map(Policy.model_validate)

ORDERED = (
    ("network", "mode"), ("filesystem", "read_only_root"), ("process", "user"),
    ("process", "privileged"), ("process", "no_new_privileges"), ("process", "runtime"),
    ("process", "namespaces"), ("limits",),
)  # fmt: skip


@SETTINGS
@given(policies_data, policies_data)
def test_diff_is_a_mirror_and_ordered_fields_go_one_way(a: Policy, b: Policy) -> None:
    from tierlock.sandbox._ladder import LIMIT_LABELS, grants

    assert diff_policies(a, b) == tuple(reversed(diff_policies(b, a)))
    assert diff_policies(a, a) == ([], [])
    wider, narrower = grants(a, b), grants(b, a)
    for prefix in ORDERED:
        depth = len(prefix) + (1 if prefix in (("limits",), ("process", "namespaces")) else 0)
        one = {g.path[:depth] for g in wider if g.path[: len(prefix)] == prefix}
        other = {g.path[:depth] for g in narrower if g.path[: len(prefix)] == prefix}
        assert not one & other, (prefix, one & other)
    inf = float("inf")
    for key in LIMIT_LABELS:
        va, vb = getattr(a.limits, key), getattr(b.limits, key)
        va, vb = inf if va is None else va, inf if vb is None else vb
        assert (("limits", key) in {g.path for g in wider}) == (vb > va)
        assert (("limits", key) in {g.path for g in narrower}) == (va > vb)
