"""Checkpoint series on the k8s backend, without a cluster (tests/_k8s_standin.py stands in for
inspect-k8s-sandbox's provider, as for `tierlock run`).

What is tested: `tierlock series run` runs a checkpoint on the campaign's backend (or
`--backend`), each checkpoint's run records it, the gate reads it back (absent evidence blocks a
clean verdict, or is accepted and says so), a series keeps the backend and absent_evidence it
started with (a series whose runs recorded none counts as docker), a policy the chart cannot
express fails before the first checkpoint, an unknown `--backend` is one line.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from tests._k8s_standin import (
    HERE,
    campaign_file,
    install_standin,
    records,
    tierlock,
    verdict,
)
from tierlock.runner import Ledger

RUN_ID = "series-k8s-c1"  # the one checkpoint's run


@pytest.fixture
def k8s_standin(monkeypatch: pytest.MonkeyPatch) -> list[tuple[Path, dict[str, Any]]]:
    return install_standin(monkeypatch)


def series_file(tmp: Path, campaign: Path) -> Path:
    path = tmp / "k8s.series.yml"
    data = {
        "name": "k8s",
        "campaign": str(campaign),
        "checkpoints": [{"label": "c1", "step": 1, "model": "tierlock/diligent"}],
    }
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def _series(runs: Path, *args: str) -> tuple[int, str, str]:
    return tierlock("series", "run", *args, "--runs-dir", str(runs))


def _one_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


def _checkpoints(runs: Path) -> list[dict[str, Any]]:
    return [r.payload for r in records(runs)
            if r.kind == "series" and r.payload["event"] == "checkpoint"]  # fmt: skip


def test_a_series_on_k8s_blocks_a_checkpoint_without_tierlocks_evidence_and_keeps_its_backend(
    tmp_path: Path, k8s_standin: list[tuple[Path, dict[str, Any]]]
) -> None:
    runs = tmp_path / "runs"
    series = series_file(tmp_path, campaign_file(tmp_path))  # the campaign says backend: k8s
    code, out, err = _series(runs, str(series))
    assert code == 3, (out, err)  # incomplete: the checkpoint is not clean
    assert "checkpoint c1 is incomplete" in out
    (started,) = [r for r in records(runs) if r.kind == "run_started"]
    assert started.run_id == RUN_ID
    assert started.payload["backend"] == {"name": "k8s", "absent_evidence": "block"}
    assert verdict(runs, "text-only")["outcome"] == "clean"
    v = verdict(runs, "tool-restricted")
    assert v["outcome"] == "incomplete"
    assert any("ran on the k8s backend" in r
               and "absent, not accepted (campaign absent_evidence: block)" in r
               for r in v["reasons"]), v["reasons"]  # fmt: skip
    (values_file, values) = k8s_standin[0]
    assert values_file == runs / RUN_ID / "tool-restricted" / "k8s" / "k8s_probe.values.yaml"
    assert values["services"]["default"]["networkIsolated"] is True
    (check,) = [r.payload for r in records(runs) if r.kind == "selftest"]
    assert check["backend"] == "k8s" and check["ok"]
    assert [t["values"] for t in check["tasks"]] == ["k8s_probe.values.yaml"]  # its own task
    assert _checkpoints(runs) == []
    before = len(records(runs))

    # the series keeps its backend and absent_evidence: a switch is one line, nothing runs
    code, out, err = _series(runs, str(series), "--backend", "docker")
    line = _one_line(err)
    assert code == 1 and line.startswith("tierlock: series k8s: backend changed (k8s → docker)")
    assert f"since the series started (run {RUN_ID})" in line and "--backend k8s" in line
    campaign_file(tmp_path, absent_evidence="accept")  # the campaign edited to accept it
    code, out, err = _series(runs, str(series))
    line = _one_line(err)
    assert code == 1 and "series k8s: absent_evidence changed (block → accept)" in line, line
    code, out, err = tierlock("series", "watch", str(series), "--interval", "0.1",
                              "--backend", "docker", "--runs-dir", str(runs))  # fmt: skip
    assert code == 1 and "series k8s: backend changed (k8s → docker)" in _one_line(err)
    assert len(records(runs)) == before  # refusals record nothing
    assert len(k8s_standin) == 1


def test_a_series_on_k8s_that_accepts_absent_evidence_is_clean_and_says_so(
    tmp_path: Path, k8s_standin: list[tuple[Path, dict[str, Any]]]
) -> None:
    runs = tmp_path / "runs"
    camp = campaign_file(tmp_path, backend="docker", absent_evidence="accept")
    series = series_file(tmp_path, camp)
    code, out, err = _series(runs, str(series), "--backend", "k8s")  # the command line wins
    assert code == 0, (out, err)
    v = verdict(runs, "tool-restricted")
    assert v["outcome"] == "clean"
    assert v["reasons"][0].endswith("; tierlock's sandbox evidence absent and accepted")
    (cited,) = v["evidence"]
    assert cited["absent_evidence"]["backend"] == "k8s"
    (done,) = _checkpoints(runs)
    assert done["label"] == "c1" and done["reached"] == "tool-restricted"
    assert done["runs"] == [RUN_ID]
    started = next(r for r in records(runs) if r.kind == "run_started").payload
    assert started["backend"] == {"name": "k8s", "absent_evidence": "accept"}
    assert len(k8s_standin) == 1
    # evaluated: run again with the same backend records nothing; the campaign's docker refused
    before = len(records(runs))
    assert _series(runs, str(series), "--backend", "k8s")[0] == 0
    code, out, err = _series(runs, str(series))
    assert code == 1 and "backend changed (k8s → docker)" in _one_line(err)
    assert len(records(runs)) == before


def test_a_series_whose_runs_recorded_no_backend_ran_on_docker(tmp_path: Path) -> None:
    """A series started before backends existed: its runs recorded none; k8s is refused."""
    runs = tmp_path / "runs"
    runs.mkdir()
    series = series_file(tmp_path, campaign_file(tmp_path))
    with Ledger(runs / "ledger.sqlite") as ledger:
        ledger.append("run_started", run_id=RUN_ID, campaign="k8s-test",
                      model="tierlock/diligent", payload={"campaign_file": "old"})  # fmt: skip
    code, _, err = _series(runs, str(series))
    line = _one_line(err)
    assert code == 1 and "series k8s: backend changed (docker → k8s)" in line, line
    assert "--backend docker" in line


def test_a_policy_the_chart_cannot_express_fails_before_the_first_checkpoint(
    tmp_path: Path, k8s_standin: list[tuple[Path, dict[str, Any]]]
) -> None:
    runs = tmp_path / "runs"
    camp = campaign_file(tmp_path, policy=HERE / "named-user.policy.yaml")
    code, _, err = _series(runs, str(series_file(tmp_path, camp)))
    line = _one_line(err)
    assert code == 1 and "named-user.policy.yaml:8:" in line, line
    assert "process.user: cannot run on Kubernetes" in line
    assert not (runs / "ledger.sqlite").exists() or records(runs) == []  # nothing started
    assert k8s_standin == []
    # an unknown backend: one line, nothing started
    code, _, err = _series(runs, str(series_file(tmp_path, camp)), "--backend", "kubernetes")
    assert code == 1 and "'kubernetes' is not one of 'docker', 'k8s'" in _one_line(err)
