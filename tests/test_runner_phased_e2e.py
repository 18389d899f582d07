"""Phased testing end to end on the real daemon: the shipped default campaign with the three
offline scripted agents, each ending with a different outcome.

- diligent reaches the top; every thorough task ran exactly once, after its tier's screening
  verdict (qualification and safety) was recorded clean;
- weak is `not-qualified` at tool-restricted (exit 5): no thorough task and no higher tier ran;
- reckless is `unsafe` (exit 2) where it misbehaves; no thorough task of that tier ran.

Claims are read from the ledger and the log directories, not only from the exit code.
"""

from __future__ import annotations

import io
import os
import sys
import time
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path
from unittest.mock import patch

import pytest
import yaml
from inspect_ai.log import read_eval_log

from tierlock.runner import Ledger, load_campaign
from tierlock.runner._campaign import DEFAULT_CAMPAIGN
from tierlock.runner._phases import phase_log_dir
from tierlock.runner.cli import main
from tierlock.sandbox._labels import RUN_LABEL, run_id

pytestmark = [pytest.mark.docker, pytest.mark.slow]

CAMPAIGN = load_campaign()
THOROUGH = {t.tier: [s.name for s in t.thorough] for t in CAMPAIGN.tiers}


def tierlock(runs: Path, *args: str) -> tuple[int, str]:
    out = io.StringIO()
    argv = ["tierlock", *args, "--runs-dir", str(runs)]
    with (
        patch.object(sys, "argv", argv),
        redirect_stdout(out),
        redirect_stderr(io.StringIO()),
        pytest.raises(SystemExit) as exit_,
    ):
        main()
    return int(exit_.value.code or 0), out.getvalue()


def run(runs: Path, model: str, *campaign: str) -> tuple[int, str]:
    started = time.monotonic()
    code, out = tierlock(runs, "run", *campaign, "--model", model)
    print(f"tierlock run {model}: exit {code} in {time.monotonic() - started:.1f} s")
    return code, out


def records(runs: Path) -> list:
    with Ledger(runs / "ledger.sqlite") as ledger:
        assert ledger.verify().ok
        return list(ledger.records())


def eval_logs(directory: Path) -> dict[str, int]:
    """Task name -> number of `.eval` logs for it in `directory` (recursively)."""
    out: dict[str, int] = {}
    for path in directory.rglob("*.eval") if directory.is_dir() else ():
        task = read_eval_log(str(path), header_only=True).eval.task
        out[task] = out.get(task, 0) + 1
    return out


def leftovers(docker_client) -> list[str]:
    label = f"{RUN_LABEL}={run_id()}"
    containers = docker_client.containers.list(all=True, filters={"label": label})
    networks = docker_client.networks.list(filters={"label": label})
    return [c.name for c in containers] + [n.name for n in networks]


def final_verdicts(recs: list) -> dict[str, dict]:
    return {r.tier: r.payload for r in recs if r.kind == "verdict" and r.payload.get("final")}


def test_diligent_climbs_and_measures_each_tier_once_after_its_screening(
    tmp_path: Path, docker_client
) -> None:
    runs = tmp_path / "runs"
    code, out = run(runs, "tierlock/diligent")
    assert code == 0, out
    recs = records(runs)
    finals = final_verdicts(recs)
    assert {t: v["outcome"] for t, v in finals.items()} == dict.fromkeys(THOROUGH, "clean")
    (run_rec,) = [r for r in recs if r.kind == "run_started"]
    for tier, names in THOROUGH.items():
        seq = {
            (r.kind, r.payload.get("phase")): r.seq
            for r in recs
            if r.tier == tier and r.kind in ("tier_started", "verdict")
        }
        measured = [
            r
            for r in recs
            if r.kind == "log_written" and r.tier == tier and r.payload["task"] in names
        ]
        assert sorted(r.payload["task"] for r in measured) == sorted(names)  # once each
        if not names:
            assert ("tier_started", "thorough") not in seq
            continue
        # thorough started only after the screening verdict was recorded clean
        assert seq[("verdict", "screening")] < seq[("tier_started", "thorough")]
        assert all(r.seq > seq[("verdict", "screening")] for r in measured)
        assert all(r.payload.get("metrics") for r in measured)  # measurements: metrics + hash
        assert all(len(r.logs) == 1 for r in measured)
        # exactly one log per thorough task on disk, in the thorough directory only
        thorough_dir = phase_log_dir(runs, run_rec.run_id, tier, "thorough")
        assert sorted(eval_logs(thorough_dir).values()) == [1] * len(names)
        screening_dir = phase_log_dir(runs, run_rec.run_id, tier, "screening")
        assert not set(eval_logs(screening_dir)) & set(eval_logs(thorough_dir))
        cost = finals[tier]["cost"]
        assert set(cost) == {"qualification", "safety", "thorough"}
        assert all(c["samples"] > 0 and c["tokens"] > 0 for c in cost.values())
    code, status = tierlock(runs, "status")
    assert code == 0 and "thorough" in status and "clean" in status, status
    assert leftovers(docker_client) == []


def test_weak_is_not_qualified_at_tool_restricted_and_nothing_above_runs(
    tmp_path: Path, docker_client
) -> None:
    runs = tmp_path / "runs"
    code, out = run(runs, "tierlock/weak")
    assert code == 5, out
    assert "not qualified at tier tool-restricted" in out
    recs = records(runs)
    finals = final_verdicts(recs)
    assert {t: v["outcome"] for t, v in finals.items()} == {
        "text-only": "clean",
        "tool-restricted": "not-qualified",
    }
    verdict = finals["tool-restricted"]
    assert verdict["phase"] == "screening"
    assert any("tool_restricted_qualification" in r for r in verdict["reasons"])
    assert verdict["skipped"] == {
        "thorough": THOROUGH["tool-restricted"],
        "tiers": ["networked"],
    }
    started = [(r.tier, r.payload.get("phase")) for r in recs if r.kind == "tier_started"]
    assert started == [("text-only", "screening"), ("tool-restricted", "screening")]
    measured = [r for r in recs if r.kind == "log_written" and r.payload.get("kind") == "thorough"]
    assert measured == []
    (run_rec,) = [r for r in recs if r.kind == "run_started"]
    assert sorted(p.name for p in (runs / run_rec.run_id).iterdir()) == [
        "text-only",
        "tool-restricted",
    ]
    (finished,) = [r for r in recs if r.kind == "run_finished"]
    assert (finished.payload["outcome"], finished.payload["tier"]) == (
        "not_qualified",
        "tool-restricted",
    )
    code, status = tierlock(runs, "status")
    assert "not-qualified" in status or "not qualified" in status, status
    assert leftovers(docker_client) == []


def sandboxed_campaign(tmp_path: Path) -> Path:
    """The default campaign without its text-only tier (the reckless agent then meets the
    sandboxed tiers' audit first)."""
    data = yaml.safe_load(DEFAULT_CAMPAIGN.read_text())
    base = DEFAULT_CAMPAIGN.parent
    data["name"] = "sandboxed"
    data["tiers"] = data["tiers"][1:]
    for tier in data["tiers"]:
        tier["policy"] = os.path.normpath(base / tier["policy"])
        for t in tier["tasks"]:
            file, _, name = t["task"].partition("@")
            t["task"] = f"{os.path.normpath(base / file)}@{name}"
    camp = tmp_path / "sandboxed.yaml"
    camp.write_text(yaml.safe_dump(data, sort_keys=False))
    return camp


def test_reckless_is_unsafe_where_it_misbehaves_and_that_tier_measures_nothing(
    tmp_path: Path, docker_client
) -> None:
    runs = tmp_path / "runs"
    code, out = run(runs, "tierlock/reckless", str(sandboxed_campaign(tmp_path)))
    assert code == 2, out
    assert "halted at tier tool-restricted" in out and "unsafe" in out
    recs = records(runs)
    finals = final_verdicts(recs)
    assert {t: v["outcome"] for t, v in finals.items()} == {"tool-restricted": "unsafe"}
    assert finals["tool-restricted"]["skipped"] == {
        "thorough": THOROUGH["tool-restricted"],
        "tiers": ["networked"],
    }
    started = [(r.tier, r.payload.get("phase")) for r in recs if r.kind == "tier_started"]
    assert started == [("tool-restricted", "screening")]
    (run_rec,) = [r for r in recs if r.kind == "run_started"]
    assert [p.name for p in (runs / run_rec.run_id).iterdir()] == ["tool-restricted"]
    assert leftovers(docker_client) == []
