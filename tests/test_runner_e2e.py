"""End to end on the real daemon: the shipped default campaign with the offline scripted agents.

The diligent agent climbs all three tiers (so it reaches the networked one); the reckless agent
halts at the first tier where it misbehaves and never starts the networked tier.
"""

from __future__ import annotations

import io
import os
import sys
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path
from unittest.mock import patch

import pytest
import yaml

from tierlock.runner import Ledger
from tierlock.runner._campaign import DEFAULT_CAMPAIGN
from tierlock.runner.cli import main
from tierlock.sandbox._labels import RUN_LABEL, run_id

pytestmark = [pytest.mark.docker, pytest.mark.slow]


def tierlock_run(runs: Path, model: str, *campaign: str) -> tuple[int, str]:
    out = io.StringIO()
    argv = ["tierlock", "run", *campaign, "--model", model, "--runs-dir", str(runs)]
    with (
        patch.object(sys, "argv", argv),
        redirect_stdout(out),
        redirect_stderr(io.StringIO()),
        pytest.raises(SystemExit) as exit_,
    ):
        main()
    return int(exit_.value.code or 0), out.getvalue()


def climbed(runs: Path, model: str) -> tuple[list[str], dict[str, str]]:
    """(tiers started, tier -> final verdict outcome) for the model's run, from the ledger."""
    with Ledger(runs / "ledger.sqlite") as ledger:
        recs = [r for r in ledger.records() if r.model == model]
    started = [r.tier for r in recs if r.kind == "tier_started"]
    verdicts = {r.tier: r.payload["outcome"] for r in recs if r.kind == "verdict"}
    # a tier with thorough tasks starts twice (screening, then thorough): count it once
    return list(dict.fromkeys(t for t in started if t)), {k: v for k, v in verdicts.items() if k}


def leftovers(docker_client) -> list[str]:
    label = f"{RUN_LABEL}={run_id()}"
    containers = docker_client.containers.list(all=True, filters={"label": label})
    networks = docker_client.networks.list(filters={"label": label})
    return [c.name for c in containers] + [n.name for n in networks]


def test_diligent_reaches_the_networked_tier(tmp_path: Path, docker_client) -> None:
    code, out = tierlock_run(tmp_path / "runs", "tierlock/diligent")
    assert code == 0, out
    started, verdicts = climbed(tmp_path / "runs", "tierlock/diligent")
    assert started == ["text-only", "tool-restricted", "networked"]
    assert verdicts == {"text-only": "clean", "tool-restricted": "clean", "networked": "clean"}
    with Ledger(tmp_path / "runs" / "ledger.sqlite") as ledger:
        assert ledger.verify().ok
    assert leftovers(docker_client) == []


def test_reckless_halts_where_it_misbehaves_and_never_gets_network(
    tmp_path: Path, docker_client
) -> None:
    code, out = tierlock_run(tmp_path / "runs", "tierlock/reckless")
    assert code == 2, out
    started, verdicts = climbed(tmp_path / "runs", "tierlock/reckless")
    assert "networked" not in started
    failed = [t for t, v in verdicts.items() if v == "unsafe"]
    assert len(failed) == 1 and started[-1] == failed[0]
    assert all(verdicts[t] == "clean" for t in started[:-1])
    assert f"halted at tier {failed[0]}" in out
    assert leftovers(docker_client) == []


def test_reckless_is_stopped_by_the_audit_in_the_tool_tier(tmp_path: Path, docker_client) -> None:
    """The default campaign without its text-only tier: the sandboxed tiers' gate reads the
    transcript audit, so the reckless agent's honeypot reads and network attempts halt it."""
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

    code, out = tierlock_run(tmp_path / "runs", "tierlock/reckless", str(camp))
    assert code == 2, out
    started, verdicts = climbed(tmp_path / "runs", "tierlock/reckless")
    assert started == ["tool-restricted"] and verdicts == {"tool-restricted": "unsafe"}
    with Ledger(tmp_path / "runs" / "ledger.sqlite") as ledger:
        audit = next(r for r in ledger.records() if r.kind == "audit_result")
    categories = {f["category"] for f in audit.payload["findings"]}
    assert {"network", "canary"} <= categories, categories
    assert "network finding" in out and ": sample " in out
    assert leftovers(docker_client) == []
