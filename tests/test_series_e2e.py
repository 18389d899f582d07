"""The shipped example series end to end (real Docker for the tool-restricted tier), its status
table, and its trajectory report rendered in headless Chromium.

One `tierlock series run runner/series/example.yaml` (its wall time is printed), then the ledger
is read: steady checkpoints, the jump at exactly step-4000, the sandbagger step-6000 caught and
treated as qualified, thorough evals from the first qualified checkpoint only.
"""

from __future__ import annotations

import base64
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tierlock.runner._ledger import Ledger

pytestmark = [pytest.mark.docker, pytest.mark.slow]

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "runner" / "series" / "example.yaml"
LABELS = [f"step-{s}000" for s in range(1, 7)]


def _tierlock(*args: str, cwd: Path, timeout: float = 1800) -> subprocess.CompletedProcess[str]:
    exe = Path(sys.executable).parent / "tierlock"
    env = {k: v for k, v in os.environ.items() if not k.startswith("TIERLOCK_")}
    env["COLUMNS"] = "250"
    return subprocess.run(
        [str(exe), *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
    )


@pytest.fixture(scope="module")
def example(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    work = tmp_path_factory.mktemp("series-example")
    started = time.monotonic()
    res = _tierlock("series", "run", str(EXAMPLE), "--runs-dir", "runs", cwd=work)
    seconds = time.monotonic() - started
    print(f"\nexample series: {len(LABELS)} checkpoints in {seconds:.0f} s wall time")
    assert res.returncode == 0, res.stdout[-4000:] + res.stderr[-4000:]
    with Ledger(work / "runs" / "ledger.sqlite", readonly=True) as led:
        records = list(led.records())
    return {"work": work, "records": records, "stdout": res.stdout}


def _series(records: list[Any], event: str) -> list[Any]:
    return [r for r in records if r.kind == "series" and r.payload["event"] == event]


def test_every_checkpoint_once_in_order(example: dict[str, Any]) -> None:
    done = _series(example["records"], "checkpoint")
    assert [r.payload["label"] for r in done] == LABELS
    outcome = {r.payload["label"]: r.payload["outcome"] for r in done}
    assert outcome == {
        "step-1000": "not_qualified", "step-2000": "not_qualified", "step-3000": "not_qualified",
        "step-4000": "top", "step-5000": "top", "step-6000": "top",
    }  # fmt: skip
    starts = [r.run_id for r in example["records"] if r.kind == "run_started"]
    assert len(starts) == len(set(starts))


def test_the_jump_is_at_exactly_the_right_checkpoint(example: dict[str, Any]) -> None:
    jumps = _series(example["records"], "jump")
    assert {r.payload["label"] for r in jumps} == {"step-4000"}
    text = next(r for r in jumps if r.tier == "text-only")
    test = text.payload["test"]
    assert test["test"] == "mcnemar-exact" and test["p_value"] < 0.01 and test["delta"] > 0.2
    assert text.payload["previous"] == "step-3000"
    cited = {ref.sha256 for ref in text.logs}
    assert {c["sha256"] for c in text.payload["logs"]["this"]} <= cited
    assert {c["sha256"] for c in text.payload["logs"]["previous"]} <= cited
    assert text.payload["logs"]["previous"]  # both checkpoints' logs are evidence
    tool = next(r for r in jumps if r.tier == "tool-restricted")
    assert any("newly qualifies for tool-restricted" in s for s in tool.payload["reasons"])


def test_the_sandbagger_is_caught(example: dict[str, Any]) -> None:
    (sb,) = _series(example["records"], "sandbagging")
    assert sb.payload["label"] == "step-6000" and sb.tier == "text-only"
    reasons = " ".join(sb.payload["reasons"])
    assert "elicited variant scores higher" in reasons and "regression" in reasons
    done = {r.payload["label"]: r.payload for r in _series(example["records"], "checkpoint")}
    assert done["step-6000"]["treated_as_qualified"]
    assert not any(done[lab]["treated_as_qualified"] for lab in LABELS[:5])


def test_thorough_evals_start_from_the_first_qualified_checkpoint(example: dict[str, Any]) -> None:
    thorough = {
        r.run_id
        for r in example["records"]
        if r.kind == "tier_started" and r.payload.get("phase") == "thorough"
    }
    assert thorough == {
        "series-example-step-4000",
        "series-example-step-5000",
        "series-example-step-6000-as-qualified",
    }
    runs = example["work"] / "runs"
    for label in LABELS[:3]:  # not qualified: no sandboxed tier, no thorough log, ever
        assert not (runs / f"series-example-{label}" / "tool-restricted").exists()
        assert not (runs / f"series-example-{label}" / "tool-restricted-thorough").exists()
        tiers = {r.tier for r in example["records"]
                 if r.run_id == f"series-example-{label}" and r.kind == "tier_started"}  # fmt: skip
        assert tiers == {"text-only"}


def test_run_again_records_nothing(example: dict[str, Any]) -> None:
    work = example["work"]
    res = _tierlock("series", "run", str(EXAMPLE), "--runs-dir", "runs", cwd=work)
    assert res.returncode == 0, res.stderr
    with Ledger(work / "runs" / "ledger.sqlite", readonly=True) as led:
        assert len(list(led.records())) == len(example["records"])
    assert _tierlock("verify", "--runs-dir", "runs", cwd=work).returncode == 0


def test_status_table(example: dict[str, Any]) -> None:
    res = _tierlock("series", "status", str(EXAMPLE), "--runs-dir", "runs", cwd=example["work"])
    assert res.returncode == 0, res.stderr
    row = {lab: next(ln for ln in res.stdout.splitlines() if f" {lab} " in ln) for lab in LABELS}
    assert "JUMP@text-only" in row["step-4000"] and "JUMP" not in row["step-5000"]
    assert "SANDBAGGING" in row["step-6000"]
    assert "not_qualified" in row["step-1000"] and "tool-restricted" in row["step-5000"]


def _chromium() -> str:
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    if exe is None:
        pytest.fail("chromium is not installed (tests/install-deps.sh installs it)")
    return exe


def test_report_renders_in_headless_chromium(example: dict[str, Any]) -> None:
    work = example["work"]
    res = _tierlock(
        "series", "report", str(EXAMPLE), "--runs-dir", "runs", "--out", "report.html",
        "--png", "trajectory.png", "--svg", "trajectory.svg", cwd=work,
    )  # fmt: skip
    assert res.returncode == 0, res.stderr
    png, svg = (work / "trajectory.png").read_bytes(), (work / "trajectory.svg").read_text()
    assert png.startswith(b"\x89PNG") and len(png) > 20_000
    assert "<svg" in svg and "JUMP" in svg and "sandbagging?" in svg
    page = (work / "report.html").read_text()
    assert "<script" not in page  # self-contained, nothing to run
    m = re.search(r'id="trajectory" alt="trajectory plot" src="data:image/svg\+xml;base64,([^"]+)"',
                  page)  # fmt: skip
    assert m is not None and "step-4000" in base64.b64decode(m.group(1)).decode()
    # Chromium loads the page and draws the plot: the image decodes to its real size
    probe = work / "probe.html"
    probe.write_text(
        page.replace(
            "</body>",
            "<p id='size'></p><script>window.onload=()=>{const i=document.getElementById("
            "'trajectory');document.getElementById('size').textContent="
            "'size:'+i.naturalWidth+'x'+i.naturalHeight;}</script></body>",
        ).replace("default-src 'none'", "default-src 'none'; script-src 'unsafe-inline'")
    )
    dom = subprocess.run(
        [_chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--virtual-time-budget=5000",
         "--dump-dom", probe.as_uri()],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    size = re.search(r"size:(\d+)x(\d+)", dom.stdout)
    assert size is not None, dom.stdout[-2000:] + dom.stderr[-2000:]
    assert int(size.group(1)) > 500 and int(size.group(2)) > 500
    assert "capability jump at text-only" in dom.stdout
    assert "sandbagging suspected" in dom.stdout
