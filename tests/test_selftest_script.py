"""The in-sandbox half of `tierlock selftest` is one self-contained script joined from its parts.

No Docker here: the script is assembled and parsed, and its `main` is run with a `probe` that
records each probe instead of running it (running the probes on the host would try them as the
test's user, e.g. root setting the host name).
"""

from __future__ import annotations

import ast
import json
import sys
from collections.abc import Callable
from importlib import resources
from typing import Any

import pytest

from tierlock.sandbox._selftest import BATTERY_FILES, CATEGORIES, INSIDE_PARTS, inside_source

FACTS = {
    "writable": [{"path": "/tmp", "size": 1 << 20}],
    "network": "none",
    "memory": 1 << 28,
    "pids": 64,
    "cpus": 1.0,
    "env": [],
    "workdir": "/tmp",
}


def _part_names() -> set[str]:
    folder = resources.files("tierlock.sandbox")
    return {p.name for p in folder.iterdir() if p.name.startswith("_selftest_inside")}


def _recorded_probes(source: str, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    monkeypatch.setattr(sys, "argv", ["-", json.dumps(FACTS)])
    namespace: dict[str, Any] = {"__name__": "selftest_inside_under_test"}
    exec(compile(source, "<selftest inside>", "exec"), namespace)
    ids: list[str] = []

    def record(pid: str, fn: Callable[[], tuple[bool, str]]) -> None:
        assert callable(fn)
        ids.append(pid)

    namespace["probe"] = record
    namespace["main"]()
    return ids


def test_every_part_is_joined_and_hashed_into_the_battery() -> None:
    assert set(INSIDE_PARTS) == _part_names()
    assert INSIDE_PARTS[-1] == "_selftest_inside.py"  # `main` and its call come last
    assert set(INSIDE_PARTS) <= set(BATTERY_FILES)


def test_the_joined_script_imports_nothing_of_tierlock_and_one_future() -> None:
    tree = ast.parse(inside_source())
    body = tree.body
    assert isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant)  # docstring
    first = body[1]
    assert isinstance(first, ast.ImportFrom) and first.module == "__future__"
    later_futures = [
        n for n in body[2:] if isinstance(n, ast.ImportFrom) and n.module == "__future__"
    ]
    assert later_futures == []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            assert node.level == 0 and not (node.module or "").startswith("tierlock")
        elif isinstance(node, ast.Import):
            assert not any(a.name.startswith("tierlock") for a in node.names)


def test_the_joined_script_defines_what_every_part_defines() -> None:
    joined = {
        n.name for n in ast.parse(inside_source()).body if isinstance(n, ast.FunctionDef)
    }
    folder = resources.files("tierlock.sandbox")
    for part in INSIDE_PARTS:
        defined = {
            n.name
            for n in ast.parse(folder.joinpath(part).read_text()).body
            if isinstance(n, ast.FunctionDef)
        }
        assert defined and defined <= joined, part


def test_main_runs_its_probes_each_with_a_known_category(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    ids = _recorded_probes(inside_source(), monkeypatch)
    assert len(ids) > 100
    assert {i.split(".", 1)[0] for i in ids} <= set(CATEGORIES)
    assert "filesystem.capped.tmp" in ids  # a probe the facts ask for


def test_a_part_left_out_breaks_the_script(monkeypatch: pytest.MonkeyPatch) -> None:
    """The check above can fail: without the leak probes, `main` cannot run."""
    monkeypatch.setattr(
        "tierlock.sandbox._selftest.INSIDE_PARTS",
        tuple(p for p in INSIDE_PARTS if p != "_selftest_inside_leak.py"),
    )
    with pytest.raises(NameError):
        _recorded_probes(inside_source(), monkeypatch)


def test_a_battery_command_that_times_out_is_a_failed_probe_not_a_crash() -> None:
    """gVisor's pids accounting made the in-sandbox battery time out, and `tierlock run` ended
    with an internal error; now the probe group fails (the sandbox did not hold), and the gate
    refuses the tier with its usual one line."""
    import anyio

    from tierlock.sandbox._selftest import ProbeResult, _unless_stuck

    async def stuck() -> list[ProbeResult]:
        raise TimeoutError("Command timed out before completing.")

    async def fine() -> list[ProbeResult]:
        return [ProbeResult("x", True, "ok")]

    (failed,) = anyio.run(_unless_stuck, "selftest.inside-ran", stuck())
    assert failed.id == "selftest.inside-ran" and not failed.held
    assert "timed out" in failed.detail
    assert anyio.run(_unless_stuck, "y", fine()) == [ProbeResult("x", True, "ok")]
